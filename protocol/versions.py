"""Protocol versions: what each side needs of its peer, negotiated per job kind.

`version` is MAJOR.MINOR. Different MAJOR versions refuse each other's messages (wire.decode).
Within a MAJOR version a MINOR release adds message types and fields; where it changes what a
job kind returns, the kind names the oldest MINOR that understands it, and both sides refuse
that kind with `version_mismatch` (naming both versions and who must update) instead of
handing an older peer a result it cannot read:
- 1.3: render_video results stream as frame ranges (frames_ready events, fetch_frames) instead
  of arrays in the result message.
Standard library only: vendored into the Blender add-on.
"""

from __future__ import annotations

from . import PROTOCOL_VERSION
from .errors import ErrorCode, VideoSceneError
from .wire import VERSION_PATTERN

# Job kind -> the oldest protocol version whose peers understand that kind's results.
KIND_MIN_VERSION: dict[str, tuple[int, int]] = {"render_video": (1, 3)}


def parse(version: object) -> tuple[int, int] | None:
    """ "1.1" -> (1, 1); None for anything that is not MAJOR.MINOR."""
    match = VERSION_PATTERN.fullmatch(version) if isinstance(version, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def check_client(kind: object, client_version: object) -> None:
    """On the backend: VERSION_MISMATCH when the submitting client cannot read `kind`'s result."""
    needed = KIND_MIN_VERSION.get(kind) if isinstance(kind, str) else None
    version = parse(client_version)
    if needed is None or (version is not None and version >= needed):
        return
    raise VideoSceneError(
        ErrorCode.VERSION_MISMATCH,
        f"{kind} needs protocol {_text(needed)} or newer (its frames stream back in ranges); "
        f"this client speaks {client_version!r}, the backend {PROTOCOL_VERSION}.",
        "Update the Blender add-on (or your client) to this backend's release.",
    )


def check_backend(kind: str, backend_version: object) -> None:
    """On the client: VERSION_MISMATCH when the backend is too old for `kind`."""
    needed = KIND_MIN_VERSION.get(kind)
    version = parse(backend_version)
    if needed is None or (version is not None and version >= needed):
        return
    raise VideoSceneError(
        ErrorCode.VERSION_MISMATCH,
        f"{kind} needs a backend speaking protocol {_text(needed)} or newer; the backend "
        f"speaks {backend_version!r}, this client {PROTOCOL_VERSION}.",
        "Update the backend (videoscene-backend) to the add-on's release.",
    )
