"""Who may connect and what a bind address means (zmq.auth does the CurveZMQ work).

Endpoints: `tcp://HOST:PORT` with HOST a literal IPv4/IPv6 address or `localhost` and PORT a
number or `*`, or `ipc://PATH`. Anything else is refused before the socket listens: ZeroMQ reads
`tcp://A:P;B:Q` as source;bind and accepts interface names, so a text check of the host is not
enough. After binding, the socket's real endpoint (LAST_ENDPOINT) is checked again with
`ipaddress`: keyless only on loopback.

Key folder layout (made by `videoscene-backend keygen DIR [--client NAME] [--admin]`), every
file 0600 in 0700 folders:
    DIR/server.key, DIR/server.key_secret      the server's key pair (server.key goes to artists)
    DIR/clients/NAME.key, NAME.key_secret      one client key pair per artist
    DIR/authorized_clients/NAME.key            public keys allowed in (delete one to revoke)
    DIR/admin_clients/NAME.key                 public keys that may see every artist's jobs
The two allow-lists are reloaded while serving (every KEYS_RELOAD_S): a removed key is refused at
its next message, not only at its next connection.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.keys import (  # noqa: F401 (keygen lives with the protocol: the add-on makes local keys too)
    ADMINS,
    AUTHORIZED,
    CLIENTS,
    DEFAULT_CLIENT,
    generate_keys,
    revoke_client,
)
from videoscene_protocol.private_paths import check_secret_file
from zmq.auth.thread import ThreadAuthenticator

LOCAL_OWNER = "local"  # the owner of every job on a keyless (loopback or ipc) backend
KEYS_RELOAD_S = 2.0
_TCP = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]/]+):(?P<port>\d{1,5}|\*)$")


def _bad_bind(bind: str, why: str) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.BAD_BIND,
        f"Refusing to listen on {bind[:200]!r}: {why}.",
        "Use tcp://IP:PORT with a literal address (127.0.0.1, ::1, 0.0.0.0, a LAN address) "
        "or localhost, or ipc://PATH.",
    )


@dataclass(frozen=True)
class Endpoint:
    bind: str
    loopback: bool  # known before binding; checked again on the bound endpoint


def parse_bind(bind: str) -> Endpoint:
    """The endpoint, or BAD_BIND for anything that is not plainly one address."""
    if not isinstance(bind, str) or any(c in bind for c in ";, \t\r\n\0"):
        raise _bad_bind(str(bind), "only one address is allowed (no ';' source part)")
    if bind.startswith("ipc://"):
        if len(bind) <= len("ipc://") or bind.startswith("ipc://@"):
            raise _bad_bind(bind, "ipc needs a file path (abstract sockets have no permissions)")
        return Endpoint(bind, loopback=True)
    match = _TCP.match(bind)
    if match is None:
        raise _bad_bind(bind, "it is not tcp://HOST:PORT or ipc://PATH")
    host, port = match["host"], match["port"]
    if port != "*" and not 0 <= int(port) <= 65535:
        raise _bad_bind(bind, f"port {port} is out of range")
    if host == "localhost":
        return Endpoint(bind, loopback=True)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise _bad_bind(
            bind, f"{host!r} is not a literal IP address (interface names refused)"
        ) from None
    return Endpoint(bind, loopback=address.is_loopback)


def endpoint_is_loopback(last_endpoint: str) -> bool:
    """Whether a bound socket's LAST_ENDPOINT listens on loopback only."""
    if last_endpoint.startswith("ipc://"):
        return True
    match = _TCP.match(last_endpoint)
    if match is None:
        return False
    try:
        return ipaddress.ip_address(match["host"].strip("[]")).is_loopback
    except ValueError:
        return False


class Access:
    """The allow-lists of a Curve server, reloaded while it serves."""

    def __init__(self, authenticator: ThreadAuthenticator, keys: Path) -> None:
        self.authenticator = authenticator
        self.keys = keys
        self.allowed: set[str] = set()
        self.admins: set[str] = set()
        self._loaded_at = 0.0
        self.reload()

    def reload(self) -> None:
        allowed = self.keys / AUTHORIZED
        self.authenticator.configure_curve(domain="*", location=str(allowed))
        self.allowed = _public_keys(allowed)
        self.admins = _public_keys(self.keys / ADMINS) & self.allowed
        self._loaded_at = time.monotonic()

    def reload_if_due(self) -> None:
        if time.monotonic() - self._loaded_at >= KEYS_RELOAD_S:
            self.reload()

    def stop(self) -> None:
        self.authenticator.stop()


def _public_keys(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {key.decode() for key in zmq.auth.load_certificates(str(folder))}


def configure_security(
    context: zmq.Context, socket: zmq.Socket, bind: str, keys_dir: Path | str | None
) -> Access | None:
    """Make the ROUTER a Curve server when keys are given; refuse non-loopback binds without.
    The caller binds, then calls check_bound."""
    endpoint = parse_bind(bind)
    if keys_dir is None:
        if not endpoint.loopback:
            raise VideoSceneError(
                ErrorCode.BAD_BIND,
                f"Refusing to listen on {bind} without encryption.",
                "Remote use needs CurveZMQ keys: run `videoscene-backend keygen KEYS` and start "
                "with `--keys-dir KEYS`, or bind 127.0.0.1.",
            )
        return None
    keys = Path(keys_dir)
    secret = keys / "server.key_secret"
    if not secret.is_file() or not (keys / AUTHORIZED).is_dir():
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"{keys} lacks server.key_secret or the {AUTHORIZED}/ folder.",
            "Create them with `videoscene-backend keygen KEYS`.",
        )
    check_secret_file(secret)
    public, private = zmq.auth.load_certificate(str(secret))
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    try:
        access = Access(authenticator, keys)
    except BaseException:
        authenticator.stop()
        raise
    socket.curve_secretkey = private
    socket.curve_publickey = public
    socket.curve_server = True
    return access


def check_bound(socket: zmq.Socket, keyed: bool) -> str:
    """The bound endpoint; a keyless socket that ended up off loopback is refused."""
    address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    if not keyed and not endpoint_is_loopback(address):
        raise _bad_bind(address, "it is not a loopback address and no keys are given")
    return address
