"""The download command without touching the network: what it fetches from the hub, what it
says to fetch by hand (VideoScene's files are on wisemodel), offline mode, failures."""

from __future__ import annotations

import argparse

import pytest
from videoscene_backend.weights import download
from videoscene_backend.weights.sources import GROUPS, SOURCES


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    download.register_cli(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.fixture()
def fake_hub(monkeypatch) -> list[tuple[str, tuple[str, ...]]]:
    """snapshot_download recording what it was asked for and writing a marker file."""
    calls = []

    def snapshot_download(repo_id, local_dir, allow_patterns):
        calls.append((repo_id, tuple(allow_patterns)))
        local_dir.mkdir(parents=True, exist_ok=True)
        (local_dir / "fetched").write_text(repo_id)
        return str(local_dir)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    return calls


def test_sources_are_the_seeds_published_hosts() -> None:
    assert SOURCES["base"].repo == "feizhengcong/CogvideoX-Interpolation"
    assert SOURCES["noposplat"].repo == "botaoye/NoPoSplat"
    videoscene = SOURCES["videoscene"]
    assert videoscene.host == "wisemodel" and videoscene.repo == "hanyang/VideoScene"
    assert not videoscene.hub_patterns  # the hub client cannot fetch it
    assert [item.published_as for item in videoscene.manual] == [
        "VideoScene/checkpoints/model.safetensors",
        "VideoScene/checkpoints/prompt_embeds.pt",
    ]
    assert GROUPS["videoscene"] == ("base", "videoscene")
    assert set(GROUPS["all"]) == set(SOURCES)


def test_videoscene_fetches_the_base_and_says_what_to_fetch_by_hand(
    tmp_path, fake_hub, capsys
) -> None:
    args = _parse(["download", "--what", "videoscene", "--checkpoints", str(tmp_path)])
    assert args.func(args) == 1  # not complete until the by-hand files are in place
    assert fake_hub == [("feizhengcong/CogvideoX-Interpolation", SOURCES["base"].hub_patterns)]
    out = capsys.readouterr().out
    assert "https://wisemodel.cn/models/hanyang/VideoScene/file" in out
    for published, destination in (
        ("VideoScene/checkpoints/model.safetensors", "videoscene/model.safetensors"),
        ("VideoScene/checkpoints/prompt_embeds.pt", "videoscene/prompt_embeds.pt"),
    ):
        assert f"{published} from" in out and str(tmp_path / destination) in out
    assert f"videoscene-backend check --checkpoints {tmp_path}" in out


def test_once_the_by_hand_files_are_in_place_the_command_succeeds(
    tmp_path, fake_hub, capsys
) -> None:
    (tmp_path / "videoscene").mkdir()
    (tmp_path / "videoscene" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "videoscene" / "prompt_embeds.pt").write_bytes(b"x")
    args = _parse(["download", "--what", "videoscene", "--checkpoints", str(tmp_path)])
    assert args.func(args) == 0
    assert "by hand" not in capsys.readouterr().out


def test_offline_mode_downloads_nothing_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def forbidden(*_args, **_kwargs):
        raise AssertionError("the hub was contacted in offline mode")

    monkeypatch.setattr("huggingface_hub.snapshot_download", forbidden)
    args = _parse(["download", "--what", "all", "--checkpoints", str(tmp_path)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "HF_HUB_OFFLINE" in out and "botaoye/NoPoSplat" in out
    assert "wisemodel" in out  # the by-hand files are listed all the same
    assert list(tmp_path.iterdir()) == []


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


def test_noposplat_alone_is_complete_after_the_hub_fetch(tmp_path, fake_hub) -> None:
    outcome = download.download("noposplat", tmp_path)
    assert outcome.complete and outcome.fetched == [tmp_path / "noposplat"]
    assert fake_hub == [("botaoye/NoPoSplat", ("mixRe10kDl3dv_512x512.ckpt",))]
