"""Loading the Lightning checkpoint strictly, and every way it can be wrong named."""

from __future__ import annotations

import os
import pathlib
import pickle

import pytest
import torch
from videoscene_backend.priors import select_prior
from videoscene_backend.priors.noposplat.checkpoint import find_checkpoint, load_network
from videoscene_backend.priors.noposplat.prior import NoPoSplatPrior
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import TINY, save_lightning_checkpoint


def test_a_lightning_checkpoint_loads_strictly_through_the_real_loader(
    tiny_checkpoint, tiny_network
) -> None:
    network = load_network(tiny_checkpoint, TINY)
    loaded = network.state_dict()
    for key, value in tiny_network.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert not network.training and not any(p.requires_grad for p in network.parameters())


def _invalid(path, config=TINY) -> str:
    with pytest.raises(VideoSceneError) as caught:
        load_network(path, config)
    assert caught.value.code == ErrorCode.WEIGHTS_INVALID
    assert "botaoye/NoPoSplat" in caught.value.hint
    return caught.value.message


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_network) -> None:
    state = dict(tiny_network.state_dict())
    state.pop("backbone.intrinsic_encoder.weight")
    state["backbone.extra_head.weight"] = torch.zeros(1)
    message = _invalid(save_lightning_checkpoint(tmp_path / "keys.ckpt", state))
    assert "1 missing keys (e.g. backbone.intrinsic_encoder.weight)" in message
    assert "1 unexpected keys (e.g. backbone.extra_head.weight)" in message


def test_wrong_shapes_are_named_with_both_shapes(tmp_path, tiny_network) -> None:
    state = dict(tiny_network.state_dict())
    state["backbone.intrinsic_encoder.weight"] = torch.zeros(32, 4)
    message = _invalid(save_lightning_checkpoint(tmp_path / "shape.ckpt", state))
    assert "backbone.intrinsic_encoder.weight: (32, 4) instead of (32, 9)" in message


def test_a_tiny_checkpoint_is_not_taken_for_the_real_network(tiny_checkpoint) -> None:
    message = _invalid(tiny_checkpoint, config=None)  # the real-size configuration
    assert "wrong shapes" in message and "missing keys" in message


def test_unreadable_files_are_weights_invalid_not_crashes(tmp_path) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    assert "not a torch checkpoint" in _invalid(garbage)
    # A bare pickle (not torch's zip format) is refused before anything is unpickled.
    hostile = tmp_path / "hostile.ckpt"
    hostile.write_bytes(pickle.dumps({"state_dict": {"x": print}}))
    assert "not a torch checkpoint" in _invalid(hostile)
    not_a_dict = tmp_path / "list.ckpt"
    torch.save([1, 2], not_a_dict)
    assert "holds a list" in _invalid(not_a_dict)


def test_training_state_beside_the_weights_does_not_stop_the_load(tmp_path, tiny_network) -> None:
    """Lightning writes hyper-parameters and loop state that weights_only refuses (here a
    pathlib object and a Lightning-style callback key); the network still loads."""
    path = save_lightning_checkpoint(
        tmp_path / "full.ckpt",
        tiny_network.state_dict(),
        hyper_parameters={"output_dir": pathlib.PurePosixPath("/runs/512")},
        callbacks={"ModelCheckpoint{'monitor': None}": {"kth_value": torch.tensor(1e9)}},
    )
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    network = load_network(path, TINY)
    for key, value in tiny_network.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key


class _RunsAProgram:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_runs_a_program_is_refused_without_running_it(
    tmp_path, tiny_network
) -> None:
    marker = tmp_path / "ran"
    path = save_lightning_checkpoint(
        tmp_path / "evil.ckpt", tiny_network.state_dict(), hyper_parameters=_RunsAProgram(marker)
    )
    assert "not a genuine checkpoint" in _invalid(path)
    assert not marker.exists()


def test_auto_picks_noposplat_when_its_checkpoint_is_present(tiny_checkpoint, tmp_path) -> None:
    checkpoints_dir = tiny_checkpoint.parent.parent
    assert find_checkpoint(checkpoints_dir) == tiny_checkpoint
    prior, reason = select_prior("auto", checkpoints_dir, pose_refine_steps=3)
    assert isinstance(prior, NoPoSplatPrior) and prior.pose_refine_steps == 3
    assert str(tiny_checkpoint) in reason
    prior, reason = select_prior("stereo", checkpoints_dir)
    assert prior.name == "stereo" and reason == "requested"
    prior, reason = select_prior("auto", tmp_path / "empty")
    assert prior.name == "stereo" and "no NoPoSplat checkpoint" in reason


def test_the_environment_variable_points_at_a_checkpoint_elsewhere(
    tiny_checkpoint, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("VIDEOSCENE_NOPOSPLAT_CKPT", str(tiny_checkpoint))
    prior, reason = select_prior("noposplat", tmp_path / "empty")
    assert prior.name == "noposplat" and str(tiny_checkpoint) in reason
