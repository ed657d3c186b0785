"""Keys: 0600 files in 0700 folders, a readable server secret refused, one key pair per
artist, and revoking one artist (the server reloads its allow-list) keeps the others in."""

from __future__ import annotations

import os
import stat
import time

import pytest
from videoscene_backend.cli import main
from videoscene_backend.service import start_in_thread
from videoscene_backend.service.security import KEYS_RELOAD_S, generate_keys
from videoscene_protocol.client import BackendClient
from videoscene_protocol.errors import ErrorCode, VideoSceneError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def modes(root) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode)
        for path in [root, *root.rglob("*")]
    }


def client_for(handle, keys: dict) -> BackendClient:
    client = BackendClient(
        handle.address,
        server_public_key=keys["server_public"],
        client_public_key=keys["client_public"],
        client_secret_key=keys["client_secret"],
    )
    client.connect(timeout_s=10)
    return client


def test_keygen_writes_private_files_in_private_folders(tmp_path) -> None:
    assert main(["keygen", str(tmp_path / "keys"), "--client", "ana"]) == 0
    assert main(["keygen", str(tmp_path / "keys"), "--client", "ben", "--admin"]) == 0
    found = modes(tmp_path / "keys")
    folders = {name for name in found if (tmp_path / "keys" / name).is_dir()}
    assert {".", "clients", "authorized_clients", "admin_clients"} <= folders
    assert {"clients/ana.key_secret", "clients/ben.key_secret", "server.key_secret"} <= set(found)
    assert {found[name] for name in folders} == {0o700}
    assert {mode for name, mode in found.items() if name not in folders} == {0o600}
    assert main(["keygen", str(tmp_path / "keys"), "--client", "../x"]) == 2


def test_a_readable_server_secret_is_refused_then_a_fixed_one_serves(tmp_path, handlers) -> None:
    keys = generate_keys(tmp_path / "keys")
    secret = tmp_path / "keys" / "server.key_secret"
    secret.chmod(0o644)
    with pytest.raises(VideoSceneError) as info:
        start_in_thread(tmp_path / "out", keys_dir=tmp_path / "keys")
    assert info.value.code == ErrorCode.UNSAFE_PATH and "chmod 600" in info.value.hint
    secret.chmod(0o600)
    handle = start_in_thread(tmp_path / "out", keys_dir=tmp_path / "keys")
    try:
        client = client_for(handle, keys)
        assert client.wait(client.submit("echo", {}), timeout_s=20).files == ["note.txt"]
        client.close()
    finally:
        handle.stop()


def test_one_artist_is_revoked_the_other_keeps_working(tmp_path, handlers) -> None:
    ana = generate_keys(tmp_path / "keys", "ana")
    ben = generate_keys(tmp_path / "keys", "ben")
    handle = start_in_thread(tmp_path / "out", keys_dir=tmp_path / "keys")
    try:
        ana_client, ben_client = client_for(handle, ana), client_for(handle, ben)
        assert main(["keygen", str(tmp_path / "keys"), "--revoke", "ana"]) == 0
        deadline = time.monotonic() + KEYS_RELOAD_S * 10
        while True:  # the server reloads the allow-list within KEYS_RELOAD_S
            try:
                ana_client.status(timeout_s=2)
            except VideoSceneError as error:
                assert error.code == ErrorCode.NOT_AUTHORIZED
                break
            assert time.monotonic() < deadline, "the revoked key is still served"
            time.sleep(0.2)
        fresh = BackendClient(
            handle.address,
            server_public_key=ana["server_public"],
            client_public_key=ana["client_public"],
            client_secret_key=ana["client_secret"],
        )
        with pytest.raises(VideoSceneError):
            fresh.connect(timeout_s=1.5)  # refused during the handshake now
        fresh.close()
        ana_client.close()
        assert ben_client.wait(ben_client.submit("echo", {}), timeout_s=20).files == ["note.txt"]
        ben_client.close()
    finally:
        handle.stop()
