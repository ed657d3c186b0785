"""Replica files mirrored into the front end's job folder: only what changed travels, and a
name that would leave the folder is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from videoscene_backend.service.pool.transfer import changed_files, write_files
from videoscene_protocol.errors import VideoSceneError


def test_only_new_or_changed_files_are_sent(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "frames" / "0001.png").write_bytes(b"png")
    sent: dict = {}
    assert changed_files(tmp_path, sent) == {"a.txt": b"one", "frames/0001.png": b"png"}
    assert changed_files(tmp_path, sent) == {}
    (tmp_path / "a.txt").write_text("two!")
    assert changed_files(tmp_path, sent) == {"a.txt": b"two!"}


def test_files_land_inside_the_job_folder(tmp_path: Path) -> None:
    write_files(tmp_path, {"frames/0001.png": b"png", "a.txt": b"x"})
    assert (tmp_path / "frames" / "0001.png").read_bytes() == b"png"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "frames"]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "frames/../../x", "", "."])
def test_a_name_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(VideoSceneError):
        write_files(job, {name: b"x"})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["job"]
