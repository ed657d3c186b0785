"""Folders of one user: the default output folder is in the user's cache, made 0700; a folder
another user made or can enter is refused; logs never follow a planted link."""

from __future__ import annotations

import os
import stat

import pytest
from videoscene_backend.paths import default_output_dir
from videoscene_backend.service import start_in_thread
from videoscene_protocol.client import BackendClient
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.private_paths import open_log

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def serves_a_job(output_dir) -> None:
    handle = start_in_thread(output_dir, output_dir.parent / "ckpt")
    try:
        client = BackendClient(handle.address)
        client.connect()
        assert client.wait(client.submit("echo", {}), timeout_s=20).files == ["note.txt"]
        client.close()
    finally:
        handle.stop()


def test_the_default_output_folder_is_the_users_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("VIDEOSCENE_OUTPUT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if os.uname().sysname == "Linux":
        assert default_output_dir() == tmp_path / "cache" / "videoscene" / "output"
    assert not str(default_output_dir()).startswith("/tmp/videoscene")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # XDG: a relative path counts as unset
    assert default_output_dir().is_absolute()


def test_a_folder_of_ours_open_to_others_is_tightened_and_serves(tmp_path, handlers) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o777)
    serves_a_job(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "jobs").stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder another uid owns")
def test_a_folder_another_user_made_first_is_refused(tmp_path, handlers) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)  # nobody made it first
    with pytest.raises(VideoSceneError) as info:
        start_in_thread(planted, tmp_path / "ckpt")
    assert info.value.code == ErrorCode.UNSAFE_PATH and "another user" in info.value.message
    (tmp_path / "link").symlink_to(planted)  # nor through a link of ours
    with pytest.raises(VideoSceneError):
        start_in_thread(tmp_path / "link", tmp_path / "ckpt")
    serves_a_job(tmp_path / "mine")


def test_a_fresh_default_folder_is_private(tmp_path, handlers) -> None:
    serves_a_job(tmp_path / "fresh" / "out")
    assert stat.S_IMODE((tmp_path / "fresh" / "out").stat().st_mode) == 0o700


def test_the_log_never_follows_a_planted_link(tmp_path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    (tmp_path / "backend.log").symlink_to(target)
    with pytest.raises(VideoSceneError) as info:
        open_log(tmp_path / "backend.log")
    assert info.value.code == ErrorCode.UNSAFE_PATH
    assert target.read_text() == "keep"
    (tmp_path / "backend.log").unlink()
    with open_log(tmp_path / "backend.log") as log:
        log.write(b"started\n")
    assert stat.S_IMODE((tmp_path / "backend.log").stat().st_mode) == 0o600
