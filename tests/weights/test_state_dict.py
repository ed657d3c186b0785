"""Key/shape matching: exact (NoPoSplat) and subset-over-base (VideoScene), and header reading."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from videoscene_backend.weights.state_dict import (
    WeightsMismatch,
    exact_problems,
    match_subset,
    module_group,
    read_safetensors_header,
    read_sharded_header,
)

MODEL = {
    "patch_embed.proj.weight": (8, 4),
    "transformer_blocks.0.attn1.to_q.weight": (8, 8),
    "transformer_blocks.0.attn1.to_k.weight": (8, 8),
    "transformer_blocks.1.attn1.to_q.weight": (8, 8),
    "transformer_blocks.1.attn1.to_k.weight": (8, 8),
    "proj_out.weight": (4, 8),
    "proj_out.bias": (4,),
}


def test_module_groups_fold_the_block_index_only() -> None:
    assert (
        module_group("transformer_blocks.7.attn1.to_q.weight") == "transformer_blocks.*.attn1.to_q"
    )
    assert module_group("transformer_blocks.7.ff.net.0.proj.bias") == (
        "transformer_blocks.*.ff.net.0.proj"
    )
    assert module_group("backbone.enc_blocks.3.attn.qkv.weight") == "backbone.enc_blocks.*.attn.qkv"
    assert module_group("proj_out.weight") == "proj_out"
    assert module_group("pos") == "pos"


def test_a_complete_file_replaces_everything() -> None:
    match = match_subset(MODEL, dict(MODEL))
    assert match.complete and match.replaced == match.total == 7
    assert match.summary() == "all 7 tensors of the model replaced"
    assert match.groups_kept() == []


def test_a_subset_names_the_groups_it_replaces_and_those_that_keep_base_weights() -> None:
    subset = {k: v for k, v in MODEL.items() if "to_q" in k or k.startswith("proj_out")}
    match = match_subset(MODEL, subset)
    assert (match.replaced, match.total, match.complete) == (4, 7, False)
    assert match.groups_replaced() == ["transformer_blocks.*.attn1.to_q", "proj_out"]
    assert match.groups_kept() == ["patch_embed.proj", "transformer_blocks.*.attn1.to_k"]
    assert match.summary() == (
        "4 of 7 tensors replaced (transformer_blocks.*.attn1.to_q, proj_out); "
        "the other 3 keep the base model's weights"
    )
    meta = match.to_meta()
    assert meta["tensors_replaced"] == 4 and meta["prefix_stripped"] == ""


def test_a_nearly_complete_file_names_what_keeps_the_base_weights() -> None:
    found = dict(MODEL)
    del found["proj_out.bias"]
    match = match_subset(MODEL, found)
    assert match.summary() == (
        "6 of 7 tensors replaced; the base model's weights stay in proj_out (1 of 2 tensors)"
    )


@pytest.mark.parametrize("prefix", ["module.", "transformer.", "module.transformer."])
def test_distributed_training_prefixes_are_stripped_and_reported(prefix: str) -> None:
    match = match_subset(MODEL, {prefix + k: v for k, v in MODEL.items()})
    assert match.complete and match.prefix == prefix
    assert match.mapping[f"{prefix}proj_out.bias"] == "proj_out.bias"
    assert f"(key prefix {prefix!r} stripped)" in match.summary()


def test_a_prefix_on_only_some_keys_is_not_stripped() -> None:
    found = {"module.proj_out.weight": (4, 8), "proj_out.bias": (4,)}
    with pytest.raises(WeightsMismatch, match=r"1 unexpected keys \(e.g. module.proj_out.weight\)"):
        match_subset(MODEL, found)


def test_unexpected_keys_and_wrong_shapes_are_refused_by_name() -> None:
    found = dict(MODEL, **{"lora_A.weight": (2,)})
    with pytest.raises(WeightsMismatch, match=r"1 unexpected keys \(e.g. lora_A.weight\)"):
        match_subset(MODEL, found)
    found = dict(MODEL, **{"proj_out.bias": (3,)})
    with pytest.raises(WeightsMismatch, match=r"proj_out.bias: \(3,\) instead of \(4,\)"):
        match_subset(MODEL, found)


def test_empty_files_and_files_without_model_keys_are_refused() -> None:
    with pytest.raises(WeightsMismatch, match="holds no tensors"):
        match_subset(MODEL, {})
    with pytest.raises(WeightsMismatch, match=r"none of its 2 keys is a key of the model"):
        match_subset(MODEL, {"unet.a": (1,), "unet.b": (1,)})


def test_exact_matching_names_missing_keys() -> None:
    found = dict(MODEL)
    del found["proj_out.bias"]
    assert exact_problems(MODEL, found) == ["1 missing keys (e.g. proj_out.bias)"]
    assert exact_problems(MODEL, dict(MODEL)) == []


def test_headers_are_read_without_the_data(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2, 3, dtype=torch.bfloat16), "b": torch.zeros(4)}, path)
    header = read_safetensors_header(path)
    assert header["a"].shape == (2, 3) and header["a"].dtype == "BF16"
    assert header["b"].dtype == "F32"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsMismatch, match="not a readable safetensors file"):
        read_safetensors_header(path)


def test_sharded_weights_are_read_through_their_index(tmp_path) -> None:
    save_file({"a": torch.zeros(2)}, tmp_path / "m-00001-of-00002.safetensors")
    save_file({"b": torch.zeros(3)}, tmp_path / "m-00002-of-00002.safetensors")
    index = {
        "weight_map": {"a": "m-00001-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"}
    }
    (tmp_path / "m.safetensors.index.json").write_text(json.dumps(index))
    header, files = read_sharded_header(tmp_path, "m")
    assert {k: v.shape for k, v in header.items()} == {"a": (2,), "b": (3,)} and len(files) == 2


def test_a_shard_index_cannot_point_outside_its_folder(tmp_path) -> None:
    outside = tmp_path / "outside.safetensors"
    save_file({"a": torch.zeros(2)}, outside)
    folder = tmp_path / "model"
    folder.mkdir()
    index = {"weight_map": {"a": "../outside.safetensors"}}
    (folder / "m.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsMismatch, match="outside its folder"):
        read_sharded_header(folder, "m")
    (folder / "m.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.st"}}))
    with pytest.raises(WeightsMismatch, match="shard gone.st named by .* is missing"):
        read_sharded_header(folder, "m")
