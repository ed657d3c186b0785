"""The download command's behaviour without touching the network."""

from __future__ import annotations

import argparse

import pytest
from videoscene_backend.video import download


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    download.register_cli(parser.add_subparsers())
    return parser.parse_args(argv)


def test_offline_mode_downloads_nothing_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = _parse(["download", "--what", "all", "--checkpoints", str(tmp_path)])
    assert args.func(args) == 1
    assert "HF_HUB_OFFLINE" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_videoscene_group_includes_its_base_model() -> None:
    assert download.GROUPS["videoscene"] == ["base", "videoscene"]
    assert set(download.GROUPS["all"]) == set(download.ITEMS)


def test_unknown_group_is_rejected() -> None:
    with pytest.raises(SystemExit):
        _parse(["download", "--what", "everything"])


def test_network_failure_is_reported_plainly(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(*_args, **_kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("huggingface_hub.snapshot_download", unreachable)
    args = _parse(["download", "--what", "noposplat", "--checkpoints", str(tmp_path)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "botaoye/NoPoSplat" in out and "Name or service not known" in out


def test_nested_checkpoint_folder_is_flattened(tmp_path) -> None:
    nested = tmp_path / "checkpoints"
    nested.mkdir()
    (nested / "model.safetensors").write_bytes(b"x")
    download._flatten_nested_checkpoint(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == b"x"
