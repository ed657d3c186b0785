"""Multipart framing: one JSON envelope frame, then one raw frame per declared buffer.

No pickle anywhere: arrays travel as raw little-endian bytes whose dtype and shape the envelope
declares; the receiver checks every declaration against the bytes before using them.
docs/protocol.md is the normative description.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import PROTOCOL_VERSION
from .errors import ErrorCode, VideoSceneError

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
    }
)
ALLOWED_DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32", "float64", "bool"})
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
MAX_BUFFERS = 64
MAX_ENVELOPE_BYTES = 1 << 20
MAX_DIMS = 8


@dataclass
class Message:
    type: str
    body: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes | memoryview] = field(default_factory=dict)


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
    return [json.dumps(envelope, separators=(",", ":")).encode("utf-8"), *frames]


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
            ErrorCode.MESSAGE_TOO_LARGE, "Envelope frame exceeds 1 MiB.", "Put data in buffers."
        )
    try:
        envelope = json.loads(views[0].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(
            ErrorCode.BAD_JSON,
            f"Envelope is not UTF-8 JSON: {exc}",
            "Frame 0 must be a JSON object.",
        ) from exc
    if not isinstance(envelope, dict):
        raise _bad(
            ErrorCode.BAD_JSON, "Envelope is not a JSON object.", "Frame 0 must be a JSON object."
        )
    if envelope.get("protocol") != PROTOCOL_NAME:
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "Envelope field 'protocol' is not 'videoscene'.",
            "See docs/protocol.md.",
        )
    version = envelope.get("version")
    if not isinstance(version, str) or version.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
        raise _bad(
            ErrorCode.VERSION_MISMATCH,
            f"Protocol version mismatch: peer speaks {version!r}, this side speaks {PROTOCOL_VERSION!r}.",
            "Update the Blender add-on and the backend to the same release.",
        )
    kind = envelope.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise _bad(
            ErrorCode.UNKNOWN_TYPE,
            f"Unknown message type {kind!r}.",
            f"Use one of: {', '.join(sorted(MESSAGE_TYPES))}.",
        )
    body = envelope.get("body", {})
    msg_id = envelope.get("msg_id")
    job_id = envelope.get("job_id")
    descriptors = envelope.get("buffers", [])
    if (
        not isinstance(body, dict)
        or not isinstance(msg_id, str)
        or not isinstance(descriptors, list)
    ):
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "Envelope fields body/msg_id/buffers have wrong types.",
            "See docs/protocol.md.",
        )
    if job_id is not None and (not isinstance(job_id, str) or not 0 < len(job_id) <= 64):
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "job_id must be a string of 1..64 characters.",
            "Use a uuid4 hex.",
        )
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
    message = Message(type=kind, body=body, job_id=job_id, msg_id=msg_id)
    for descriptor, view in zip(descriptors, views[1:], strict=True):
        _decode_buffer(descriptor, view, message)
    return message


def _decode_buffer(descriptor: Any, view: memoryview, message: Message) -> None:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("name"), str):
        raise _bad(
            ErrorCode.BAD_MESSAGE,
            "A buffer descriptor lacks a string 'name'.",
            "See docs/protocol.md.",
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
            f"Buffer {name!r} declares {descriptor.get('nbytes')!r} bytes but carries {view.nbytes}.",
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
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise _bad(
            ErrorCode.SHAPE_MISMATCH,
            f"Buffer {name!r} has an invalid shape {shape!r}.",
            "Shape is a list of non-negative integers.",
        )
    itemsize = np.dtype(dtype).itemsize
    expected = int(np.prod(shape, dtype=np.float64)) * itemsize if shape else itemsize
    if expected != view.nbytes:
        raise _bad(
            ErrorCode.SHAPE_MISMATCH,
            f"Buffer {name!r}: shape {shape} of {dtype} needs {expected} bytes, the frame has {view.nbytes}.",
            "Declare the array's real shape and dtype.",
        )
    array = np.frombuffer(view, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    message.arrays[name] = array


def error_message(error: VideoSceneError, job_id: str | None = None) -> Message:
    return Message("error", body=error.to_dict(), job_id=job_id)
