"""CurveZMQ key folders (zmq.auth writes the certificates): one server pair, one client pair per
artist, the allow-lists the server reloads. Here, not in the backend, because the add-on makes
a private key folder of its own for its local backend (client_glue.py).

Layout, every file 0600 in 0700 folders:
    DIR/server.key, DIR/server.key_secret      the server's key pair (server.key goes to artists)
    DIR/clients/NAME.key, NAME.key_secret      one client key pair per artist
    DIR/authorized_clients/NAME.key            public keys allowed in (delete one to revoke)
    DIR/admin_clients/NAME.key                 public keys that may see every artist's jobs
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import zmq.auth

from .errors import ErrorCode, VideoSceneError
from .private_paths import make_private_dir, write_private_text

AUTHORIZED = "authorized_clients"
ADMINS = "admin_clients"
CLIENTS = "clients"
DEFAULT_CLIENT = "client"
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """zmq.auth's certificate files, made in a private temporary folder and moved in 0600."""
    staging = make_private_dir(folder / f".{name}.new", "key staging folder")
    try:
        public, secret = zmq.auth.create_certificates(str(staging), name)
        targets = folder / f"{name}.key", folder / f"{name}.key_secret"
        for source, target in zip((public, secret), targets, strict=True):
            write_private_text(target, Path(source).read_text())
        return targets
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_client_name(name: str) -> str:
    if not isinstance(name, str) or not CLIENT_NAME.match(name):
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"{str(name)[:80]!r} is not a usable client name.",
            "Use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.",
        )
    return name


def generate_keys(
    keys_dir: Path | str, client: str = DEFAULT_CLIENT, admin: bool = False
) -> dict[str, str]:
    """The server key pair (kept if it exists) and one client key pair named `client`, which is
    authorized (and made an admin with admin=True)."""
    keys = make_private_dir(Path(keys_dir), "keys folder")
    name = _check_client_name(client)
    server_public, server_secret = keys / "server.key", keys / "server.key_secret"
    if not server_secret.is_file():
        _key_pair(keys, "server")
    clients = make_private_dir(keys / CLIENTS, "client keys folder")
    client_public, client_secret = _key_pair(clients, name)
    allowed = make_private_dir(keys / AUTHORIZED, "allow-list folder")
    write_private_text(allowed / f"{name}.key", client_public.read_text())
    if admin:
        admins = make_private_dir(keys / ADMINS, "admin list folder")
        write_private_text(admins / f"{name}.key", client_public.read_text())
    public, secret = zmq.auth.load_certificate(str(client_secret))
    return {
        "server_public": zmq.auth.load_certificate(str(server_public))[0].decode(),
        "client_public": public.decode(),
        "client_secret": secret.decode(),
        "client_key_file": str(client_secret),
    }


def revoke_client(keys_dir: Path | str, client: str) -> bool:
    """Remove a client's public key from the allow-lists (the server reloads them)."""
    name = _check_client_name(client)
    removed = False
    for folder in (AUTHORIZED, ADMINS):
        path = Path(keys_dir) / folder / f"{name}.key"
        if path.exists():
            path.unlink()
            removed = True
    return removed


def load_client_keys(keys_dir: Path | str, client: str = DEFAULT_CLIENT) -> dict[str, bytes]:
    """BackendClient's key arguments for the client pair `client` of a key folder."""
    keys = Path(keys_dir)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    public, secret = zmq.auth.load_certificate(str(keys / CLIENTS / f"{client}.key_secret"))
    return {
        "server_public_key": server_public,
        "client_public_key": public,
        "client_secret_key": secret,
    }
