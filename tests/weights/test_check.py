"""`videoscene-backend check` on tiny installs saved in the real layouts: complete, missing
files, corrupt headers, subset and sharded files, bad configs, the NoPoSplat checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from noposplat.conftest import TINY, save_lightning_checkpoint
from safetensors.torch import load_file, save_file
from video.conftest import make_tiny_checkpoint
from videoscene_backend.check import check_weights
from videoscene_backend.cli import main
from videoscene_backend.priors.noposplat.checkpoint import inspect_checkpoint
from videoscene_backend.priors.noposplat.network import NoPoSplatNet

BASE = "cogvideox-interpolation"


@pytest.fixture(scope="module")
def tiny_install(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("install"))


@pytest.fixture()
def install(tiny_install: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_install, tmp_path / "checkpoints"))


def _rows(root: Path) -> dict:
    return {row.path: row for row in check_weights(root).rows}


def test_a_complete_install_passes_and_says_what_each_file_is(install, capsys) -> None:
    report = check_weights(install)
    assert report.ok
    statuses = {row.path: row.status for row in report.rows}
    assert statuses == {
        f"{BASE}/transformer/config.json": "ok",
        f"{BASE}/vae/config.json": "ok",
        f"{BASE}/scheduler/scheduler_config.json": "ok",
        f"{BASE}/transformer/diffusion_pytorch_model.safetensors": "ok",
        f"{BASE}/vae/diffusion_pytorch_model.safetensors": "ok",
        "videoscene/model.safetensors": "ok",
        "videoscene/prompt_embeds.pt": "ok",
        "videoscene/negative_prompt_embeds.pt": "missing",  # optional
        "noposplat/mixRe10kDl3dv_512x512.ckpt": "missing",  # optional
    }
    rows = _rows(install)
    assert (
        "2 layers, 2 heads x 16, 9 frames at 64x96" in rows[f"{BASE}/transformer/config.json"].what
    )
    assert "65 tensors" in rows[f"{BASE}/transformer/diffusion_pytorch_model.safetensors"].what
    assert "all 65 tensors of the model replaced" in rows["videoscene/model.safetensors"].what
    assert "(1, 16, 32)" in rows["videoscene/prompt_embeds.pt"].what

    assert main(["check", "--checkpoints", str(install)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Weights under {install}")
    assert "[ok] videoscene/model.safetensors" in out
    assert "[optional] noposplat/mixRe10kDl3dv_512x512.ckpt" in out
    assert "OK: Every file the video model needs is in place" in out


def test_a_missing_file_fails_and_says_where_to_get_it(install, capsys) -> None:
    (install / "videoscene" / "model.safetensors").unlink()
    row = _rows(install)["videoscene/model.safetensors"]
    assert row.status == "missing" and row.required
    assert "https://wisemodel.cn/models/hanyang/VideoScene/file" in row.source
    assert "VideoScene/checkpoints/model.safetensors" in row.source
    assert main(["check", "--checkpoints", str(install)]) == 1
    out = capsys.readouterr().out
    assert "[MISSING] videoscene/model.safetensors" in out
    assert "source: VideoScene/checkpoints/model.safetensors in hanyang/VideoScene" in out
    assert "NOT READY: 1 file(s) missing or invalid: videoscene/model.safetensors" in out


def test_a_missing_base_model_points_at_the_hub(install) -> None:
    shutil.rmtree(install / BASE / "vae")
    rows = _rows(install)
    for rel in (f"{BASE}/vae/config.json", f"{BASE}/vae/diffusion_pytorch_model.safetensors"):
        assert rows[rel].status == "missing"
        assert "feizhengcong/CogvideoX-Interpolation" in rows[rel].source
        assert "download --what base" in rows[rel].source


def test_a_corrupt_header_is_invalid(install, capsys) -> None:
    path = install / "videoscene" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:8] + b"{not json" + data[17:])
    row = _rows(install)["videoscene/model.safetensors"]
    assert row.status == "invalid" and "not a readable safetensors file" in row.what
    assert main(["check", "--checkpoints", str(install)]) == 1
    assert "[INVALID] videoscene/model.safetensors" in capsys.readouterr().out


def test_a_subset_release_is_reported_with_its_groups(install) -> None:
    path = install / "videoscene" / "model.safetensors"
    weights = load_file(path)
    save_file({f"module.{k}": v for k, v in weights.items() if "to_q" in k}, path)
    row = _rows(install)["videoscene/model.safetensors"]
    assert row.status == "ok"
    assert "4 of 65 tensors replaced (transformer_blocks.*.attn1.to_q)" in row.what
    assert "(key prefix 'module.' stripped)" in row.what


def test_a_file_for_another_model_is_invalid_and_named(install) -> None:
    path = install / "videoscene" / "model.safetensors"
    weights = load_file(path)
    weights["proj_out.bias"] = torch.zeros(5)
    save_file(weights, path)
    row = _rows(install)["videoscene/model.safetensors"]
    assert row.status == "invalid"
    assert "proj_out.bias: (5,) instead of (64,)" in row.what
    assert "the base transformer's config" in row.what


def test_without_a_base_config_the_release_is_compared_with_the_real_model(install) -> None:
    (install / BASE / "transformer" / "config.json").unlink()
    rows = _rows(install)
    row = rows["videoscene/model.safetensors"]
    assert row.status == "invalid"  # the tiny file is not the real-size transformer
    assert "real-size CogvideoX-Interpolation transformer" in row.what
    assert "(1, 16, 32), expected (1, 226, 4096)" in rows["videoscene/prompt_embeds.pt"].what


def test_configs_that_do_not_parse_or_name_another_class_are_invalid(install) -> None:
    (install / BASE / "vae" / "config.json").write_text("{ nope")
    scheduler = install / BASE / "scheduler" / "scheduler_config.json"
    config = json.loads(scheduler.read_text())
    scheduler.write_text(json.dumps({**config, "prediction_type": "epsilon"}))
    rows = _rows(install)
    assert rows[f"{BASE}/vae/config.json"].status == "invalid"
    assert "not readable JSON" in rows[f"{BASE}/vae/config.json"].what
    assert rows[f"{BASE}/scheduler/scheduler_config.json"].status == "invalid"
    assert "'epsilon'" in rows[f"{BASE}/scheduler/scheduler_config.json"].what
    transformer = install / BASE / "transformer" / "config.json"
    transformer.write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    row = _rows(install)[f"{BASE}/transformer/config.json"]
    assert row.status == "invalid" and "expected CogVideoXTransformer3DModel" in row.what


def test_sharded_base_weights_are_checked_through_their_index(install) -> None:
    from diffusers import CogVideoXTransformer3DModel

    folder = install / BASE / "transformer"
    model = CogVideoXTransformer3DModel.from_pretrained(folder)
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    model.save_pretrained(folder, max_shard_size="100KB")
    assert (folder / "diffusion_pytorch_model.safetensors.index.json").is_file()
    row = _rows(install)[f"{BASE}/transformer/diffusion_pytorch_model-*.safetensors"]
    assert row.status == "ok" and "shards, match the config" in row.what
    shard = sorted(folder.glob("diffusion_pytorch_model-*.safetensors"))[0]
    shard.unlink()
    row = _rows(install)[f"{BASE}/transformer/diffusion_pytorch_model.safetensors"]
    assert row.status == "invalid" and f"shard {shard.name}" in row.what


def test_negative_prompt_embeddings_are_checked_when_present(install) -> None:
    path = install / "videoscene" / "negative_prompt_embeds.pt"
    torch.save(torch.zeros(1, 16, 32), path)
    assert _rows(install)["videoscene/negative_prompt_embeds.pt"].status == "ok"
    torch.save(torch.zeros(1, 8, 32), path)
    row = _rows(install)["videoscene/negative_prompt_embeds.pt"]
    assert row.status == "invalid" and not row.required
    assert not check_weights(install).ok  # installed but broken fails the check


def test_the_noposplat_checkpoint_is_read_safely_and_matched(install) -> None:
    ckpt = install / "noposplat" / "mixRe10kDl3dv_512x512.ckpt"
    save_lightning_checkpoint(ckpt, NoPoSplatNet(TINY).state_dict(), hyper_parameters={"lr": 1})
    row = inspect_checkpoint(install, TINY)
    assert row.status == "ok"
    assert "tensors under 'encoder.', 1 training-only tensors ignored" in row.what
    # against the real-size network (what `check` uses) the tiny file is named as wrong
    row = _rows(install)["noposplat/mixRe10kDl3dv_512x512.ckpt"]
    assert row.status == "invalid" and "does not match the NoPoSplat network" in row.what
    ckpt.write_bytes(b"truncated")
    assert inspect_checkpoint(install, TINY).status == "invalid"
