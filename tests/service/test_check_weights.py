"""The `check_weights` request: the backend checks its own weights folder off the socket loop
and answers with the report `videoscene-backend check` prints."""

from __future__ import annotations

from pathlib import Path

from video.conftest import make_tiny_checkpoint
from videoscene_backend.service import start_in_thread
from videoscene_protocol.client import BackendClient


def test_an_empty_weights_folder_is_reported_file_by_file(client, service) -> None:
    report = client.check_weights(timeout_s=120)
    assert report["ok"] is False
    assert report["root"] == str(service.service.checkpoints_dir)
    rows = {row["path"]: row for row in report["rows"]}
    model = rows["videoscene/model.safetensors"]
    assert model["status"] == "missing" and model["required"] is True
    assert "wisemodel" in model["source"]
    assert rows["noposplat/mixRe10kDl3dv_512x512.ckpt"]["required"] is False
    assert "missing or invalid" in report["summary"]
    assert client.status()["version"]  # the service keeps answering afterwards


def test_a_complete_tiny_install_is_reported_ready(tmp_path: Path) -> None:
    checkpoints = make_tiny_checkpoint(tmp_path / "checkpoints")
    handle = start_in_thread(tmp_path / "out", checkpoints)
    client = BackendClient(handle.address)
    try:
        client.connect()
        report = client.check_weights(timeout_s=120)
    finally:
        client.close()
        handle.stop()
    assert report["ok"] is True
    statuses = {row["path"]: row["status"] for row in report["rows"]}
    assert statuses["videoscene/model.safetensors"] == "ok"
    assert statuses["cogvideox-interpolation/transformer/config.json"] == "ok"
