"""Multipart framing: one JSON envelope frame, then one raw frame per declared buffer.

No pickle anywhere: arrays travel as raw little-endian bytes whose dtype and shape the envelope
declares; the receiver checks every declaration against the bytes before using them.
docs/protocol.md is the normative description.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import PROTOCOL_VERSION
from .errors import ErrorCode, VideoSceneError
from .params import ID_PATTERN, ID_RULE

PROTOCOL_NAME = "videoscene"
MESSAGE_TYPES = frozenset(
    {
        "hello",
        "welcome",
        "submit",
        "accepted",
        "progress",
        "result",
        "error",
        "cancel",
        "cancelled",
        "heartbeat",
        "status",
        "status_reply",
        "release_models",
        "released",
        "fetch",
        "check_weights",  # 1.1
        "weights_report",  # 1.1
        "fetch_frames",  # 1.1
        "frames",  # 1.1
        "frames_ready",  # 1.1
    }
)
ALLOWED_DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32", "float64", "bool"})
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
MAX_BUFFERS = 64
MAX_ENVELOPE_BYTES = 1 << 20
MAX_DIMS = 8
MAX_JSON_DEPTH = 32  # envelope nesting; the deepest real message (result meta) uses 7

# Ids (msg_id, job_id, scene_id) name folders on the backend. ID_PATTERN (declared in params.py,
# which checks scene_id with it) is a closed character set: an id is never a path ("..", "/",
# NUL, drive letters) and is safe in any file system.
# Buffer names become file names in a job's result folder ("scene.ply", "frames.npy").
BUFFER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
BUFFER_NAME_RULE = "1-64 characters from A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.'"
# MAJOR.MINOR, each a decimal number without leading zeros: "1.0", never "1", "1.x" or "1.0.0".
VERSION_PATTERN = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")

# The backend sends a heartbeat every HEARTBEAT_INTERVAL_S to every client it heard from in the
# last CLIENT_FORGET_S; a client that hears nothing for HEARTBEAT_MISSES intervals (3 s) calls
# the backend dead: within 3.1 s of a kill, well inside the 5 s the add-on promises.
HEARTBEAT_INTERVAL_S = 0.5
HEARTBEAT_MISSES = 6
CLIENT_FORGET_S = 60.0


def is_valid_id(value: object) -> bool:
    """True for a string that may name a job, scene or message (ID_PATTERN)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def is_valid_buffer_name(value: object) -> bool:
    return isinstance(value, str) and BUFFER_NAME_PATTERN.fullmatch(value) is not None


def check_id(value: object, what: str) -> str:
    """value, when it is a valid id; else VideoSceneError(BAD_MESSAGE) naming the rule."""
    if not is_valid_id(value):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE, f"{what} {shown} is not a valid id.", f"Use {ID_RULE}."
        )
    return value


@dataclass
class Message:
    type: str
    body: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes | memoryview] = field(default_factory=dict)
    # The sender's protocol version (decode fills it in; encode always sends this side's).
    version: str = PROTOCOL_VERSION


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and np.little_endian is False):
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def encode(message: Message) -> list[bytes | memoryview]:
    """Message -> frames. Array frames are memoryviews of the (contiguous) arrays: zero-copy."""
    descriptors: list[dict[str, Any]] = []
    frames: list[bytes | memoryview] = []
    for name, array in message.arrays.items():
        array = _little_endian(np.asarray(array))
        if array.dtype.name not in ALLOWED_DTYPES:
            raise VideoSceneError(
                ErrorCode.BAD_MESSAGE,
                f"Array {name!r} has dtype {array.dtype.name}, which the protocol does not carry.",
                f"Convert it to one of: {', '.join(sorted(ALLOWED_DTYPES))}.",
            )
        descriptors.append(
            {
                "name": name,
                "kind": "array",
                "dtype": array.dtype.name,
                "shape": list(array.shape),
                "nbytes": array.nbytes,
            }
        )
        frames.append(memoryview(array.reshape(-1).view(np.uint8)) if array.size else b"")
    for name, blob in message.blobs.items():
        view = memoryview(blob)
        descriptors.append({"name": name, "kind": "blob", "nbytes": view.nbytes})
        frames.append(view)
    envelope = {
        "protocol": PROTOCOL_NAME,
        "version": PROTOCOL_VERSION,
        "type": message.type,
        "msg_id": message.msg_id,
        "job_id": message.job_id,
        "body": message.body,
        "buffers": descriptors,
    }
    try:
        text = json.dumps(envelope, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN or infinity: peers refuse them, so never send one
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"A {message.type} message holds a number JSON cannot carry: {exc}.",
            "Send finite numbers only (NaN and infinity are not JSON).",
        ) from exc
    return [text.encode("utf-8"), *frames]


def _bad(code: ErrorCode, message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(code, message, hint)


def _buffer_view(frame: Any) -> memoryview:
    """A zmq.Frame (copy=False), bytes or memoryview -> memoryview without copying."""
    buffer = getattr(frame, "buffer", frame)
    return memoryview(buffer)


def decode(frames: list[Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Frames -> Message, checking everything. Raises VideoSceneError with a code and a hint."""
    if not frames:
        raise _bad(ErrorCode.BAD_MESSAGE, "Empty message.", "Send a JSON envelope frame first.")
    views = [_buffer_view(frame) for frame in frames]
    total = sum(view.nbytes for view in views)
    if total > max_message_bytes:
        raise _bad(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"Message of {total} bytes exceeds the limit of {max_message_bytes} bytes.",
            "Send fewer or smaller frames (e.g. a shorter camera path or smaller images).",
        )
    if views[0].nbytes > MAX_ENVELOPE_BYTES:
        raise _bad(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"The envelope frame has {views[0].nbytes} bytes, over the {MAX_ENVELOPE_BYTES} limit.",
            "Put data in buffers, not in the JSON envelope.",
        )
    envelope = _parse_envelope(views[0])
    version = envelope.get("version")
    _check_version(version)
    kind = envelope.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise _bad(
            ErrorCode.UNKNOWN_TYPE,
            f"Unknown message type {kind!r:.80}.",
            f"Use one of: {', '.join(sorted(MESSAGE_TYPES))}.",
        )
    body = envelope.get("body", {})
    descriptors = envelope.get("buffers", [])
    if not isinstance(body, dict) or not isinstance(descriptors, list):
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "Envelope fields body/buffers have wrong types (an object and a list).",
            "See docs/protocol.md.",
        )
    msg_id = check_id(envelope.get("msg_id"), "msg_id")
    job_id = envelope.get("job_id")
    if job_id is not None:
        check_id(job_id, "job_id")
    if len(descriptors) > MAX_BUFFERS:
        raise _bad(
            ErrorCode.BAD_MESSAGE, f"More than {MAX_BUFFERS} buffers.", "Send fewer buffers."
        )
    if len(descriptors) != len(views) - 1:
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            f"Envelope declares {len(descriptors)} buffers but {len(views) - 1} frames follow.",
            "Send exactly one frame per declared buffer, in order.",
        )
    message = Message(type=kind, body=body, job_id=job_id, msg_id=msg_id, version=version)
    for descriptor, view in zip(descriptors, views[1:], strict=True):
        _decode_buffer(descriptor, view, message, max_message_bytes)
    return message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_envelope(view: memoryview) -> dict[str, Any]:
    """Frame 0 -> dict: strict JSON (no NaN/Infinity, no over-long integers), depth-limited."""
    try:
        envelope = json.loads(view.tobytes().decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError as exc:  # the json module recurses once per nesting level
        raise _bad(
            ErrorCode.BAD_JSON,
            f"The envelope is nested deeper than {MAX_JSON_DEPTH} levels.",
            "Send flat JSON objects.",
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, NaN, 5000-digit ints
        raise _bad(
            ErrorCode.BAD_JSON,
            f"Envelope is not strict UTF-8 JSON: {str(exc):.200}",
            "Frame 0 must be a JSON object; NaN and Infinity are not JSON.",
        ) from exc
    if not isinstance(envelope, dict):
        raise _bad(
            ErrorCode.BAD_JSON, "Envelope is not a JSON object.", "Frame 0 must be a JSON object."
        )
    if _json_depth(envelope) > MAX_JSON_DEPTH:
        raise _bad(
            ErrorCode.BAD_JSON,
            f"The envelope is nested deeper than {MAX_JSON_DEPTH} levels.",
            "Send flat JSON objects.",
        )
    if envelope.get("protocol") != PROTOCOL_NAME:
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "Envelope field 'protocol' is not 'videoscene'.",
            "See docs/protocol.md.",
        )
    return envelope


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the value may be hostile)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_version(version: Any) -> None:
    match = VERSION_PATTERN.fullmatch(version) if isinstance(version, str) else None
    if match is None or match.group(1) != PROTOCOL_VERSION.split(".")[0]:
        shape = "" if match else " (the form is MAJOR.MINOR, e.g. '1.0')"
        raise _bad(
            ErrorCode.VERSION_MISMATCH,
            f"Protocol version mismatch: peer speaks {version!r:.40}{shape}, this side speaks "
            f"{PROTOCOL_VERSION!r}.",
            "Update the Blender add-on and the backend to the same release.",
        )


# A JSON string (possibly unterminated, then it runs to the end: possessive, so linear time) or
# one structural character. Numbers and literals are not tokens: the scanner needs none.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[{}\[\]:,]')


PEEK_SCAN_BYTES = 64 << 10


def peek_ids(frames: list[Any]) -> tuple[str | None, str | None]:
    """The valid msg_id and job_id of an envelope that failed to decode, to address the error.

    The lenient parser (NaN allowed) reads most broken envelopes exactly. Where it gives up
    (nesting 1000 deep, truncated, over-long or undecodable envelopes) a hand-written scan,
    which cannot recurse, reads the top-level "msg_id" and "job_id" strings in the first
    PEEK_SCAN_BYTES: clients put them before the body.
    """
    try:
        view = _buffer_view(frames[0])
    except (IndexError, TypeError, ValueError):
        return None, None
    found: dict[str, Any] = {}
    if view.nbytes <= MAX_ENVELOPE_BYTES:
        try:
            parsed = json.loads(view.tobytes())
            found = parsed if isinstance(parsed, dict) else {}
        except (ValueError, RecursionError):
            found = _top_level_strings(
                view[:PEEK_SCAN_BYTES].tobytes().decode("utf-8", "replace"), ("msg_id", "job_id")
            )
    else:
        found = _top_level_strings(
            view[:PEEK_SCAN_BYTES].tobytes().decode("utf-8", "replace"), ("msg_id", "job_id")
        )
    msg_id, job_id = found.get("msg_id"), found.get("job_id")
    return (msg_id if is_valid_id(msg_id) else None, job_id if is_valid_id(job_id) else None)


def _top_level_strings(text: str, wanted: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    depth, state, key = 0, "start", None  # state: start | key | colon | value | after
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            if depth == 0 and token == "[":
                break  # not an object
            depth += 1
            state = "key" if depth == 1 else ("after" if depth == 2 else state)
        elif token in ("}", "]"):
            depth -= 1
            if depth <= 0:
                break
        elif depth != 1:
            continue
        elif token == ",":
            state = "key"
        elif token == ":":
            state = "value" if state == "colon" else "after"
        elif state == "key":
            key, state = _json_string(token), "colon"
        elif state == "value":
            value, state = _json_string(token), "after"
            if key in wanted and key not in found and value is not None:
                found[key] = value
                if len(found) == len(wanted):
                    break
    return found


def _json_string(token: str) -> str | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _decode_buffer(
    descriptor: Any, view: memoryview, message: Message, max_message_bytes: int
) -> None:
    if not isinstance(descriptor, dict) or not is_valid_buffer_name(descriptor.get("name")):
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "A buffer descriptor lacks a valid 'name'.",
            f"Buffer names are {BUFFER_NAME_RULE}.",
        )
    name = descriptor["name"]
    if name in message.arrays or name in message.blobs:
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            f"Buffer name {name!r} is used twice.",
            "Give each buffer its own name.",
        )
    if descriptor.get("nbytes") != view.nbytes:
        raise _bad(
            ErrorCode.SHAPE_MISMATCH,
            f"Buffer {name!r:.80} declares {descriptor.get('nbytes')!r:.40} bytes but carries {view.nbytes}.",
            "Declare nbytes as the frame's exact length.",
        )
    kind = descriptor.get("kind")
    if kind == "blob":
        message.blobs[name] = view
        return
    if kind != "array":
        raise _bad(
            ErrorCode.BAD_MESSAGE, f"Buffer {name!r} has kind {kind!r}.", "Use 'array' or 'blob'."
        )
    dtype, shape = descriptor.get("dtype"), descriptor.get("shape")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            f"Buffer {name!r} has dtype {dtype!r}.",
            f"Use one of: {', '.join(sorted(ALLOWED_DTYPES))}.",
        )
    itemsize = np.dtype(dtype).itemsize
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        # numpy refuses even an empty array whose other dimensions overflow: bound them too
        or math.prod(max(n, 1) for n in shape) * itemsize > max_message_bytes
    ):
        raise _bad(
            ErrorCode.SHAPE_MISMATCH,
            f"Buffer {name!r:.80} has an invalid shape {shape!r:.80}.",
            f"Shape is a list of at most {MAX_DIMS} non-negative integers within the message limit.",
        )
    expected = math.prod(shape) * itemsize  # exact integers: no float overflow
    if expected != view.nbytes:
        raise _bad(
            ErrorCode.SHAPE_MISMATCH,
            f"Buffer {name!r:.80}: shape {shape} of {dtype} needs {expected} bytes, the frame has {view.nbytes}.",
            "Declare the array's real shape and dtype.",
        )
    array = np.frombuffer(view, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    message.arrays[name] = array
