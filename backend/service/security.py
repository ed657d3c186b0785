"""CurveZMQ for remote use: required on any non-loopback address (zmq.auth does the work).

Key folder layout (made by `videoscene-backend keygen DIR`):
    DIR/server.key, DIR/server.key_secret          the server's key pair
    DIR/client.key, DIR/client.key_secret          a client key pair to hand to an artist
    DIR/authorized_clients/*.key                   public keys of clients allowed in
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import zmq
import zmq.auth
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from zmq.auth.thread import ThreadAuthenticator

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
AUTHORIZED = "authorized_clients"


def is_loopback(bind: str) -> bool:
    if bind.startswith(("ipc://", "inproc://")):
        return True
    host = urlparse(bind).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def configure_security(
    context: zmq.Context, socket: zmq.Socket, bind: str, keys_dir: Path | str | None
) -> ThreadAuthenticator | None:
    """Make the ROUTER a Curve server when keys are given; refuse non-loopback binds without."""
    if keys_dir is None:
        if not is_loopback(bind):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Refusing to listen on {bind} without encryption.",
                "Remote use needs CurveZMQ keys: run `videoscene-backend keygen KEYS` and start "
                "with `--keys-dir KEYS`, or bind 127.0.0.1.",
            )
        return None
    keys = Path(keys_dir)
    secret = keys / "server.key_secret"
    allowed = keys / AUTHORIZED
    if not secret.is_file() or not allowed.is_dir():
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"{keys} lacks server.key_secret or the {AUTHORIZED}/ folder.",
            "Create them with `videoscene-backend keygen KEYS`.",
        )
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(allowed))
    public, private = zmq.auth.load_certificate(str(secret))
    socket.curve_secretkey = private
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def generate_keys(keys_dir: Path | str) -> dict[str, str]:
    """Server and client key pairs; the client's public key is authorized."""
    keys = Path(keys_dir)
    keys.mkdir(parents=True, exist_ok=True)
    server_public, _ = zmq.auth.create_certificates(str(keys), "server")
    client_public, _ = zmq.auth.create_certificates(str(keys), "client")
    (keys / AUTHORIZED).mkdir(exist_ok=True)
    shutil.copy(client_public, keys / AUTHORIZED / "client.key")
    return {
        "server_public": zmq.auth.load_certificate(server_public)[0].decode(),
        "client_public": zmq.auth.load_certificate(client_public)[0].decode(),
        "client_secret": zmq.auth.load_certificate(str(keys / "client.key_secret"))[1].decode(),
    }
