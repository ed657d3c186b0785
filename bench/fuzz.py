"""Fuzzer: hostile messages at a live backend, in every category of issue #10.

    .venv/bin/python bench/fuzz.py [--messages 10000] [--seed 1] [--in-process]

Starts `videoscene-backend serve` in a subprocess (real handlers, a fresh output folder, a free
loopback port; --in-process runs the service in a thread instead), builds a real scene from the
sample photos while a second client watches the job, then sends --messages messages across the
categories below, interleaved, and finally checks that the backend still serves a real job.

Categories: crafted ids (paths, NUL, surrogates, emoji, long, empty; in job_id, msg_id and
scene_id), image bombs (PNG/JPEG headers declaring huge sizes or chunks, truncated and damaged
files, other formats; PLY files declaring a billion vertices), envelope shapes that used to get unaddressed or `internal` replies
(nesting, NaN/Infinity, 5000-digit numbers, over 1 MiB, huge shapes, bad versions, wrong field
types, unknown and server-only types), param nonsense (the params spec), byte mutations of
valid messages, well-formed requests, and a second client fetching a running job.

Counted, and expected to be 0: crashes (the backend died), dead_workers (the worker thread is
not alive or was restarted), internal (any `internal` error), unaddressed (a reply, other than
a heartbeat, to a message with a readable msg_id that lacks both reply_to and job_id, or no
reply at all), unexpected (an error code outside the category's expected codes),
watch_failures (a watching client that did not get the result). Memory: the backend's resident
set before and after the fuzzing (growth must stay under 200 MB). Baseline in the same run:
the round trip of a `status` request on the idle backend against the same request while the
fuzzer's messages are queued. ONE final JSON line.

tests/service/test_fuzz.py runs a bounded version of this fuzzer in the normal test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import zmq
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import BackendClient, ErrorEvent, ResultEvent, StateEvent
from videoscene_protocol.errors import VideoSceneError
from videoscene_protocol.wire import Message, decode, encode, is_valid_id

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
# RSS growth allowed while fuzzing: from after the warm-ups (a build, a weights check, a render)
# to the end of the drain, before the closing build (whose second scene is not growth).
MAX_RSS_GROWTH_MB = 200
IN_FLIGHT = 48  # addressed probes awaiting their reply
JOBS_IN_FLIGHT = 6  # accepted jobs awaiting their end (the backend queues 16)
DRAIN_S = 120.0

# ---- probes -------------------------------------------------------------------------------


@dataclass
class Probe:
    """One message to send. msg_id is the id the backend should read from it (None when the
    message is meant to be unreadable, sent on the anonymous socket). expect: the acceptable
    outcomes (error codes, or reply types such as "result"); empty = anything but internal."""

    category: str
    frames: list[bytes]
    msg_id: str | None
    expect: frozenset[str] = frozenset()
    note: str = ""


def new_id() -> str:
    return uuid.uuid4().hex


def envelope(kind: str, msg_id: Any, job_id: Any = None, body: Any = None, **fields) -> dict:
    return {
        "protocol": "videoscene",
        "version": PROTOCOL_VERSION,
        "type": kind,
        "msg_id": msg_id,
        "job_id": job_id,
        "body": {} if body is None else body,
        "buffers": [],
        **fields,
    }


def frames_of(env: dict, *buffers: bytes) -> list[bytes]:
    return [json.dumps(env).encode(), *buffers]


def message_frames(message: Message) -> list[bytes]:
    return [bytes(frame) for frame in encode(message)]


CRAFTED_IDS = (
    "../../victim",
    "..",
    ".",
    "/tmp/victim",
    ".x",
    "a/b",
    "a\\b",
    "C:",
    "C:\\Windows",
    "nul\x00byte",
    "lone\ud800surrogate",
    "\U0001f600" * 62,
    "x" * 65,
    "",
    " ",
    "a b",
    "a\nb",
    "٣",
    "%2e%2e",
    "~",
)
_ID_PIECES = ("..", "/", "\\", ".", "\x00", "~", "\ud800", "é", "\U0001f600", " ", "\n", "a", "9")


def crafted_ids(rng: random.Random) -> Iterator[str]:
    yield from CRAFTED_IDS
    while True:
        crafted = "".join(rng.choice(_ID_PIECES) for _ in range(rng.randint(1, 40)))
        if not is_valid_id(crafted):
            yield crafted


def id_probes(rng: random.Random, scene_id: str) -> Iterator[Probe]:
    """Crafted ids where they could name something: job_id (submit/fetch/cancel), scene_id
    (load_scene, render_video params) and msg_id (unaddressable on purpose)."""
    for crafted in crafted_ids(rng):
        for kind in ("submit", "fetch", "cancel", "fetch_frames"):
            body = {
                "submit": {"kind": "build_scene", "params": {}},
                "fetch_frames": {"kind": "refined", "first": 0, "count": 1},
            }.get(kind, {})
            env = envelope(kind, new_id(), crafted, body)
            yield Probe("crafted_ids", frames_of(env), env["msg_id"], frozenset({"bad_message"}))
        for kind, blob_name in (("load_scene", "scene.ply"), ("render_video", None)):
            body = {"kind": kind, "params": {"scene_id": crafted}}
            env = envelope("submit", new_id(), new_id(), body)
            frames = frames_of(env)
            if blob_name:  # a blob the handler reads only after the params
                env["buffers"] = [{"name": blob_name, "kind": "blob", "nbytes": 3}]
                frames = frames_of(env, b"ply")
            yield Probe(
                "crafted_ids", frames, env["msg_id"], frozenset({"bad_params", "queue_full"})
            )
        env = envelope("status", crafted)
        yield Probe("crafted_ids", frames_of(env), None, frozenset({"bad_message"}))


# -- image bombs --
def _png_chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return struct.pack(">I", size) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int, height: int, extra: bytes = b"", depth: int = 8, colour: int = 2
) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 header is rewritten to declare width x height."""
    ok, encoded = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def real_png(width: int = 96, height: int = 80, dtype=np.uint8) -> bytes:
    top = 65535 if dtype == np.uint16 else 255
    pixels = np.random.default_rng(width).integers(0, top, (height, width, 3)).astype(dtype)
    return cv2.imencode(".png", pixels)[1].tobytes()


def image_bombs() -> dict[str, bytes]:
    """Name -> bytes of every crafted image: each must come back `bad_image`, cheaply."""
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    iend = _png_chunk(b"IEND", b"")
    valid = real_png()
    return {
        "png_100k_x_100k": png_bytes(100_000, 100_000, idat + iend),
        "png_8000_x_8000": png_bytes(8000, 8000, idat + iend),
        "png_9000_x_100": png_bytes(9000, 100, idat + iend),
        "png_idat_claims_2gb": png_bytes(1000, 1000, _png_chunk(b"IDAT", b"\0" * 64, 0x7FFFFFFF)),
        "png_iccp_claims_2gb": png_bytes(1000, 1000, _png_chunk(b"iCCP", b"\0" * 64, 0x7FFFFFFF)),
        "png_216_bytes_huge_chunk": png_bytes(
            4000, 4000, _png_chunk(b"zTXt", b"\0" * 150, 0x7FFFFFF0)
        )[:216],
        "png_no_iend": valid[:-12],
        "png_truncated": valid[: len(valid) // 2],
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "png_bad_bit_depth": png_bytes(100, 100, idat + iend, depth=3),
        "jpeg_20000_x_20000": jpeg_declaring(20000, 20000),
        "jpeg_65500_x_65500": jpeg_declaring(65500, 65500),
        "jpeg_7000_x_7000": jpeg_declaring(7000, 7000),
        "jpeg_truncated": jpeg_declaring(200, 200)[:300],
        "jpeg_soi_only": b"\xff\xd8",
        "tiny_8_x_8": cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),
        "bmp": cv2.imencode(".bmp", np.zeros((80, 80, 3), np.uint8))[1].tobytes(),
        "gif_header": b"GIF89a" + b"\0" * 64,
        "garbage": bytes(range(256)) * 4,
        "empty": b"",
    }


PLY_BOMBS = {
    "ply_claims_1e9_vertices": b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\n"
    b"property float x\nproperty float y\nproperty float z\nend_header\n" + b"\0" * 64,
    "ply_truncated_ascii": b"ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nend_header\n1\n",
    "ply_garbage": b"not a ply at all",
}


def bomb_probes(rng: random.Random) -> Iterator[Probe]:
    bombs = list(image_bombs().items())
    valid = real_png()
    while True:
        if rng.random() < 0.15:  # a scene file instead of photos
            name, ply = rng.choice(list(PLY_BOMBS.items()))
            message = Message(
                "submit",
                body={"kind": "load_scene", "params": {}},
                job_id=new_id(),
                blobs={"scene.ply": ply},
            )
            expect = frozenset({"bad_params", "queue_full"})
            yield Probe("image_bombs", message_frames(message), message.msg_id, expect, name)
            continue
        name, bomb = rng.choice(bombs)
        first, second = (bomb, valid) if rng.random() < 0.5 else (valid, bomb)
        message = Message(
            "submit",
            body={"kind": "build_scene", "params": {"prior": "stereo"}},
            job_id=new_id(),
            blobs={"image_0": first, "image_1": second},
        )
        yield Probe(
            "image_bombs",
            message_frames(message),
            message.msg_id,
            frozenset({"bad_image", "queue_full"}),
            name,
        )


# -- envelope shapes --
def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw(head: str, rest: str, *buffers: bytes) -> list[bytes]:
    return [(head + rest).encode(), *buffers]


def _with_buffers(env: dict, descriptors: list, *buffers: bytes) -> list[bytes]:
    return frames_of({**env, "buffers": descriptors}, *buffers)


def _envelope_cases() -> list[tuple[str, str, Callable[[str, str, str], list[bytes]]]]:
    """(note, expected code, build(msg_id, job_id, head) -> frames); head is the start of a
    submit envelope's JSON text carrying the ids."""
    submit = '"type":"submit","body":'
    cases: list[tuple[str, str, Callable[[str, str, str], list[bytes]]]] = [
        ("1000 deep", "bad_json", lambda m, j, h: _raw(h, submit + _deep(1000) + "}")),
        ("40 deep", "bad_json", lambda m, j, h: _raw(h, submit + _deep(40) + "}")),
        (
            "seed Infinity",
            "bad_json",
            lambda m, j, h: _raw(h, submit + '{"kind":"render_video","params":{"seed":Infinity}}}'),
        ),
        ("NaN", "bad_json", lambda m, j, h: _raw(h, submit + '{"x":NaN}}')),
        ("5000 digits", "bad_json", lambda m, j, h: _raw(h, submit + '{"x":' + "9" * 5000 + "}}")),
        ("truncated", "bad_json", lambda m, j, h: _raw(h, submit + '{"kind"')),
        (
            "envelope over 1 MiB",
            "message_too_large",
            lambda m, j, h: _raw(h, submit + '{"pad":"' + "x" * (1 << 20) + '"}}'),
        ),
    ]
    for value in ({"a": 1}, ["build_scene"], 5, None, "x" * 5000):
        cases.append(
            (
                f"kind {type(value).__name__}",
                "unknown_job_kind",
                lambda m, j, h, value=value: frames_of(
                    envelope("submit", m, j, {"kind": value, "params": {}})
                ),
            )
        )
    for shape in ([10**200, 10**200], [0, 10**200], [2**40, 2**40], [-1], [1.5], "3"):
        descriptor = {
            "name": "c2w",
            "kind": "array",
            "dtype": "float64",
            "shape": shape,
            "nbytes": 8,
        }
        cases.append(
            (
                f"shape {str(shape)[:20]}",
                "shape_mismatch",
                lambda m, j, h, d=descriptor: _with_buffers(
                    envelope("submit", m, j, {"kind": "render_video"}), [d], b"\0" * 8
                ),
            )
        )
    for version in ("1", "1.x", "1.0.0", "2.0", "01.0", 1.0, None):
        cases.append(
            (
                f"version {version!r}",
                "version_mismatch",
                lambda m, j, h, v=version: frames_of(envelope("hello", m, version=v)),
            )
        )
    for kind in ("dance", "welcome", "result", "progress", 7):
        cases.append(
            (f"type {kind!r}", "unknown_type", lambda m, j, h, k=kind: frames_of(envelope(k, m, j)))
        )
    for field_name, value in (
        ("body", []),
        ("body", "x"),
        ("buffers", {}),
        ("protocol", "jupyter"),
    ):
        cases.append(
            (
                f"{field_name} {value!r}",
                "bad_message",
                lambda m, j, h, f=field_name, v=value: frames_of({**envelope("status", m), f: v}),
            )
        )
    for kind in ("submit", "fetch", "cancel"):
        cases.append(
            (
                f"{kind} without job_id",
                "bad_message",
                lambda m, j, h, k=kind: frames_of(envelope(k, m, None, {"kind": "build_scene"})),
            )
        )
    blob = {"name": "image_0", "kind": "blob", "nbytes": 3}
    build = {"kind": "build_scene"}
    cases += [
        (
            "params a list",
            "bad_params",
            lambda m, j, h: frames_of(
                envelope("submit", m, j, {"kind": "build_scene", "params": []})
            ),
        ),
        (
            "duplicate buffer names",
            "bad_message",
            lambda m, j, h: _with_buffers(
                envelope("submit", m, j, build), [blob, blob], b"abc", b"abc"
            ),
        ),
        (
            "nbytes lie",
            "shape_mismatch",
            lambda m, j, h: _with_buffers(
                envelope("submit", m, j, build), [{**blob, "nbytes": 9}], b"abc"
            ),
        ),
        (
            "dtype object",
            "bad_message",
            lambda m, j, h: _with_buffers(
                envelope("submit", m, j, build),
                [{"name": "x", "kind": "array", "dtype": "object", "shape": [1], "nbytes": 8}],
                b"\0" * 8,
            ),
        ),
        (
            "65 buffers",
            "bad_message",
            lambda m, j, h: _with_buffers(
                envelope("submit", m, j, build),
                [{"name": f"b{i}", "kind": "blob", "nbytes": 0} for i in range(65)],
                *[b""] * 65,
            ),
        ),
        (
            "frame without descriptor",
            "bad_message",
            lambda m, j, h: frames_of(envelope("submit", m, j, build), b"extra"),
        ),
        (
            "buffer named ..",
            "bad_message",
            lambda m, j, h: _with_buffers(
                envelope("submit", m, j, build), [{**blob, "name": ".."}], b"abc"
            ),
        ),
    ]
    return cases


def envelope_probes(rng: random.Random) -> Iterator[Probe]:
    """Shapes that used to get `internal`, or replies carrying neither reply_to nor job_id."""
    cases = _envelope_cases()
    while True:
        note, expect, build = rng.choice(cases)
        m, j = new_id(), new_id()
        head = (
            f'{{"protocol":"videoscene","version":"{PROTOCOL_VERSION}",'
            f'"msg_id":"{m}","job_id":"{j}",'
        )
        yield Probe("envelopes", build(m, j, head), m, frozenset({expect}), note)


# -- param nonsense (the params spec) --
RENDER_NONSENSE: tuple[dict, ...] = (
    {"refine": "no"},
    {"refine": 0},
    {"seed": 2**70},
    {"seed": "12"},
    {"seed": 1.5},
    {"mode": []},
    {"mode": "three_step"},
    {"memory_mode": "garbage"},
    {"memory_mode": "full"},
    {"near": 5.0, "far": 1.0},
    {"near": 1.0, "far": 1.0},
    {"near": -1.0},
    {"width": 0},
    {"width": 10**9},
    {"height": "480"},
    {"steps": True},
    {"steps": 10**6},
    {"guidance_scale": -3},
    {"leap_timestep": 10**9},
    {"leap_timestep": 2.5},
    {"background": [2, 0, 0]},
    {"background": [0, 0]},
    {"background": "black"},
    {"condition_source": 1},
    {"no_such_param": 1},
)
BUILD_NONSENSE: tuple[dict, ...] = (
    {"prior": "magic"},
    {"prior": None},
    {"fov_deg": 1000},
    {"fov_deg": "60"},
    {"fov_deg": True},
    {"pose_refine_steps": -1},
    {"pose_refine_steps": "5"},
    {"pose_refine_steps": 2**70},
    {"no_such_param": 1},
)


FRAME_RANGE_NONSENSE: list[Any] = [
    {"kind": "coarse", "first": 0, "count": 1},
    {"kind": "masks", "first": 0, "count": 1},
    {"kind": "refined", "first": -1, "count": 1},
    {"kind": "refined", "first": 2**70, "count": 1},
    {"kind": "refined", "first": 0, "count": 0},
    {"kind": "refined", "first": 0, "count": 10**9},
    {"kind": "refined", "first": True, "count": 1},
    {"kind": "refined", "first": 0.5, "count": 1},
    {"kind": ["refined"], "first": 0, "count": 1},
    {"first": "0"},
    [],
]


def param_probes(rng: random.Random, scene_id: str) -> Iterator[Probe]:
    c2w = np.eye(4)[None]
    K = np.array([[[20.0, 0, 8], [0, 20, 8], [0, 0, 1]]])
    blobs = {"image_0": real_png(), "image_1": real_png(100, 90)}
    while True:
        if rng.random() < 0.2:  # frame ranges of a job that has none, or nonsense ranges
            body = rng.choice(FRAME_RANGE_NONSENSE)
            message = Message("fetch_frames", job_id=new_id(), body=body)
            yield Probe(
                "params",
                message_frames(message),
                message.msg_id,
                frozenset({"bad_params", "bad_message", "unknown_job"}),
                json.dumps(body),
            )
            continue
        if rng.random() < 0.7:
            nonsense = rng.choice(RENDER_NONSENSE)
            params = {"scene_id": scene_id, "width": 16, "height": 16, **nonsense}
            message = Message(
                "submit",
                body={"kind": "render_video", "params": params},
                job_id=new_id(),
                arrays={"c2w": c2w, "K": K},
            )
        else:
            nonsense = rng.choice(BUILD_NONSENSE)
            message = Message(
                "submit",
                body={"kind": "build_scene", "params": nonsense},
                job_id=new_id(),
                blobs=blobs,
            )
        yield Probe(
            "params",
            message_frames(message),
            message.msg_id,
            frozenset({"bad_params", "queue_full"}),
            json.dumps(nonsense),
        )


# -- byte mutations of valid messages (sent on the anonymous socket) --
def _valid_messages() -> list[Message]:
    return [
        Message("hello", body={"client": "fuzz", "version": PROTOCOL_VERSION}),
        Message("fetch_frames", job_id=new_id(), body={"kind": "coarse", "first": 0, "count": 1}),
        Message("status"),
        Message("heartbeat"),
        Message("release_models"),
        Message("fetch", job_id=new_id()),
        Message("cancel", job_id=new_id()),
        Message(
            "submit",
            body={"kind": "build_scene", "params": {"prior": "stereo"}},
            job_id=new_id(),
            blobs={"image_0": b"\x89PNG junk", "image_1": b"\xff\xd8 junk"},
        ),
        Message(
            "submit",
            body={"kind": "render_video", "params": {"scene_id": "nosuchscene"}},
            job_id=new_id(),
            arrays={"c2w": np.eye(4)[None], "K": np.eye(3)[None]},
        ),
    ]


def mutate(frames: list[bytes], rng: random.Random) -> list[bytes]:
    frames = list(frames)
    target = 0 if rng.random() < 0.8 else rng.randrange(len(frames))
    data = bytearray(frames[target])
    operation = rng.randrange(7)
    if operation == 0 and data:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif operation == 1:  # insert JSON-ish noise
        noise = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"NaN", b"\\u0000", b"1e999"])
        data[rng.randint(0, len(data)) : rng.randint(0, len(data))] = noise
    elif operation == 2 and data:  # truncate
        del data[rng.randrange(len(data)) :]
    elif operation == 3:  # drop or duplicate a frame
        if len(frames) > 1 and rng.random() < 0.5:
            frames.pop(rng.randrange(1, len(frames)))
        else:
            frames.append(frames[-1])
        return frames
    elif operation == 4:  # swap frames
        rng.shuffle(frames)
        return frames
    elif operation == 5:  # replace a value with another type
        text = data.decode("utf-8", "replace")
        for key in ('"body":{', '"shape":[', '"nbytes":', '"version":"'):
            if key in text and rng.random() < 0.5:
                text = text.replace(
                    key, key + rng.choice(['"x",', "null,", "[],", "-1,", "1e400,"]), 1
                )
        data = bytearray(text.encode("utf-8", "surrogatepass"))
    else:  # random bytes
        data = bytearray(rng.randbytes(rng.randint(0, 64)))
    frames[target] = bytes(data)
    return frames


def mutation_probes(rng: random.Random) -> Iterator[Probe]:
    while True:
        base = message_frames(rng.choice(_valid_messages()))
        yield Probe("mutations", mutate(base, rng), None)


def request_probes(rng: random.Random) -> Iterator[Probe]:
    """Well-formed requests between the hostile ones: each must get its proper answer."""
    while True:
        kind, expect = rng.choice(
            [
                ("hello", "welcome"),
                ("status", "status_reply"),
                ("release_models", "released"),
                ("fetch", "unknown_job"),
                ("cancel", "unknown_job"),
                ("check_weights", "weights_report"),
            ]
        )
        job_id = new_id() if kind in ("fetch", "cancel") else None
        message = Message(kind, job_id=job_id)
        yield Probe("requests", message_frames(message), message.msg_id, frozenset({expect}))


# ---- the run ------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    replies: int = 0
    internal: int = 0
    unaddressed: int = 0
    unanswered: int = 0
    unexpected: int = 0
    watch_failures: int = 0
    samples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.samples) < 20:
            self.samples.append(text)


class Fuzzer:
    def __init__(self, address: str, tally: Tally) -> None:
        self.tally = tally
        self.context = zmq.Context()
        self.addressed = self._socket(address)  # probes with a readable msg_id
        self.anonymous = self._socket(address)  # probes meant to be unreadable
        self.waiting: dict[str, tuple[Probe, float]] = {}  # msg_id -> probe
        self.jobs: dict[str, Probe] = {}  # accepted job id -> its probe

    def _socket(self, address: str) -> zmq.Socket:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, 0)
        socket.setsockopt(zmq.SNDHWM, 0)
        socket.connect(address)
        return socket

    def close(self) -> None:
        self.addressed.close()
        self.anonymous.close()
        self.context.term()

    def send(self, probe: Probe) -> None:
        while len(self.waiting) >= IN_FLIGHT or len(self.jobs) >= JOBS_IN_FLIGHT:
            if not self.receive(2.0):
                break
        self.tally.sent[probe.category] += 1
        if probe.msg_id is None:
            self.anonymous.send_multipart(probe.frames)
        else:
            self.waiting[probe.msg_id] = (probe, time.monotonic())
            self.addressed.send_multipart(probe.frames)

    def receive(self, timeout_s: float) -> bool:
        poller = zmq.Poller()
        poller.register(self.addressed, zmq.POLLIN)
        poller.register(self.anonymous, zmq.POLLIN)
        ready = dict(poller.poll(timeout_s * 1000))
        for socket in (self.addressed, self.anonymous):
            while socket in ready:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._classify(decode(frames), addressed=socket is self.addressed)
        return bool(ready)

    def _classify(self, message: Message, addressed: bool) -> None:
        if message.type == "heartbeat":
            return
        self.tally.replies += 1
        body = message.body
        outcome = str(body.get("code")) if message.type == "error" else message.type
        self.tally.codes[outcome] += 1
        if outcome == "internal":
            self.tally.internal += 1
            self.tally.note(f"internal: {body.get('message')}")
        reply_to = body.get("reply_to")
        if addressed and not reply_to and not message.job_id:
            self.tally.unaddressed += 1
            self.tally.note(f"unaddressed {message.type}: {body}")
        if reply_to in self.waiting:
            probe, _ = self.waiting.pop(reply_to)
            if outcome == "accepted" and message.job_id:
                self.jobs[message.job_id] = probe
            else:
                self._check(probe, outcome)
        elif not reply_to and message.job_id in self.jobs and message.type != "progress":
            self._check(self.jobs.pop(message.job_id), outcome)

    def _check(self, probe: Probe, outcome: str) -> None:
        if probe.expect and outcome not in probe.expect:
            self.tally.unexpected += 1
            self.tally.note(
                f"{probe.category} {probe.note}: got {outcome}, expected {sorted(probe.expect)}"
            )

    def drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while (self.waiting or self.jobs) and time.monotonic() < deadline:
            self.receive(0.5)
        self.tally.unanswered += len(self.waiting) + len(self.jobs)
        for probe, _ in self.waiting.values():
            self.tally.note(f"unanswered {probe.category} {probe.note}")


def sample_photos() -> dict[str, bytes]:
    return {
        "image_0": (SAMPLES / "view_a.jpg").read_bytes(),
        "image_1": (SAMPLES / "view_b.jpg").read_bytes(),
    }


def watched_build(address: str, tally: Tally, timeout_s: float = 600) -> str:
    """A real build_scene from client A, fetched mid-job by client B: both must get the result.
    Returns the scene id."""
    submitter, watcher = BackendClient(address), BackendClient(address)
    try:
        submitter.connect(timeout_s=60)
        watcher.connect(timeout_s=60)
        job = submitter.submit("build_scene", {"prior": "stereo"}, blobs=sample_photos())
        results: dict[str, Any] = {}
        watching = False

        def collect(name: str, client: BackendClient) -> bool:
            """Record the job's end for this client; True once the job is known to exist."""
            accepted = False
            for event in client.poll(timeout_ms=50):
                if isinstance(event, ResultEvent) and event.job_id == job:
                    results[name] = event.result
                elif isinstance(event, ErrorEvent):
                    tally.note(f"watched build failed for {name}: {event.error}")
                    results[name] = None
                accepted |= isinstance(event, StateEvent) and event.job_id == job
            return accepted

        deadline = time.monotonic() + timeout_s
        while len(results) < 2 and time.monotonic() < deadline:
            if collect("submitter", submitter) and not watching:
                watcher.fetch(job)  # once the job exists: two sockets do not order messages
                watching = True
            if watching:
                collect("watcher", watcher)
            elif "submitter" in results:
                break  # refused or failed before the watcher could join
        ok = [r for r in results.values() if r is not None]
        tally.watch_failures += 2 - len(ok)
        return ok[0].meta["scene_id"] if ok else "none"
    finally:
        submitter.close()
        watcher.close()


def status_ms(address: str, repeats: int = 5) -> float:
    client = BackendClient(address)
    try:
        client.connect(timeout_s=60)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            client.status(timeout_s=60)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        client.close()


def warm_up_weights_check(address: str) -> None:
    client = BackendClient(address)
    try:
        client.connect(timeout_s=60)
        client.check_weights(timeout_s=300)
    finally:
        client.close()


def warm_up_render(address: str, scene_id: str) -> None:
    """One small render of the scene, as the param probes submit: the renderer's one-time
    loading (the compiled kernels' LLVM, their cache) is not growth either."""
    client = BackendClient(address)
    try:
        client.connect(timeout_s=60)
        c2w = np.eye(4)[None]
        K = np.array([[[20.0, 0, 8], [0, 20, 8], [0, 0, 1]]])
        params = {"scene_id": scene_id, "width": 16, "height": 16}
        job = client.submit("render_video", params, arrays={"c2w": c2w, "K": K})
        client.wait(job, timeout_s=600)
    finally:
        client.close()


def worker_health(address: str) -> dict:
    client = BackendClient(address)
    try:
        client.connect(timeout_s=60)
        return client.status(timeout_s=60)["worker"]
    finally:
        client.close()


def categories(rng: random.Random, scene_id: str) -> dict[str, tuple[float, Iterator[Probe]]]:
    """Category -> (share of the messages, probe generator)."""
    return {
        "crafted_ids": (0.2, id_probes(rng, scene_id)),
        "image_bombs": (0.08, bomb_probes(rng)),
        "envelopes": (0.27, envelope_probes(rng)),
        "params": (0.1, param_probes(rng, scene_id)),
        "mutations": (0.25, mutation_probes(rng)),
        "requests": (0.1, request_probes(rng)),
    }


def fuzz(
    address: str,
    messages: int,
    seed: int,
    rss: Callable[[], float],
    alive: Callable[[], bool],
) -> dict[str, Any]:
    """Run the fuzzer against a backend at `address`; returns the figures (see module doc)."""
    started = time.perf_counter()
    tally = Tally()
    rng = random.Random(seed)
    scene_id = watched_build(address, tally)
    warm_up_weights_check(address)  # its one-time imports (diffusers) are not growth
    warm_up_render(address, scene_id)
    idle_ms = status_ms(address)
    rss_start = rss()
    generators = categories(rng, scene_id)
    names = list(generators)
    weights = [generators[name][0] for name in names]
    fuzzer = Fuzzer(address, tally)
    busy_ms = []
    try:
        for index in range(messages):
            name = rng.choices(names, weights)[0]
            fuzzer.send(next(generators[name][1]))
            if index % 1000 == 999:
                busy_ms.append(status_ms(address, repeats=1))
        fuzzer.drain(DRAIN_S)
    finally:
        fuzzer.close()
    rss_fuzzed = rss()  # before the closing build: a second scene's own memory is not growth
    watched_build(address, tally)  # still serves a real job, to two watchers
    worker = worker_health(address) if alive() else {"alive": False, "restarts": -1}
    rss_end = rss()
    busy = statistics.median(busy_ms) if busy_ms else math.nan
    return {
        "bench": "fuzz",
        "messages": sum(tally.sent.values()),
        "by_category": dict(tally.sent),
        "replies": tally.replies,
        "codes": dict(tally.codes.most_common()),
        "crashes": 0 if alive() else 1,
        "dead_workers": int(not worker["alive"]) + max(worker["restarts"], 0),
        "internal": tally.internal,
        "unaddressed": tally.unaddressed,
        "unanswered": tally.unanswered,
        "unexpected": tally.unexpected,
        "watch_failures": tally.watch_failures,
        "rss_start_mb": round(rss_start, 1),
        "rss_fuzzed_mb": round(rss_fuzzed, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_fuzzed - rss_start, 1),
        "status_ms_idle": round(idle_ms, 2),
        "status_ms_fuzzing": round(busy, 2),
        "status_ratio": round(busy / idle_ms, 2) if idle_ms else None,
        "seconds": round(time.perf_counter() - started, 1),
        "samples": tally.samples,
    }


def failures(figures: dict[str, Any]) -> list[str]:
    """The figures that must be 0 (or under the memory limit) and are not."""
    zero = ("crashes", "dead_workers", "internal", "unaddressed", "unanswered", "unexpected")
    bad = [f"{name} = {figures[name]}" for name in (*zero, "watch_failures") if figures[name]]
    if figures["rss_growth_mb"] >= MAX_RSS_GROWTH_MB:
        bad.append(f"rss_growth_mb = {figures['rss_growth_mb']}")
    return bad


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_subprocess(messages: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        address = f"tcp://127.0.0.1:{_free_port()}"
        log = open(Path(folder) / "backend.log", "w")  # noqa: SIM115 (the process's lifetime)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "videoscene_backend.cli",
                "serve",
                "--bind",
                address,
                "--output-dir",
                str(Path(folder) / "out"),
                "--checkpoints",
                str(Path(folder) / "none"),
                "--log-level",
                "error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        backend = psutil.Process(process.pid)
        try:
            figures = fuzz(
                address,
                messages,
                seed,
                rss=lambda: backend.memory_info().rss / 2**20,
                alive=lambda: process.poll() is None,
            )
        finally:
            if process.poll() is None:
                process.terminate()
            figures_exit = process.wait(60)
            log.close()
        figures["exit_code"] = figures_exit
        if figures_exit != 0:
            figures["crashes"] += 1
        return figures


def run_in_process(messages: int, seed: int) -> dict[str, Any]:
    from videoscene_backend.service import start_in_thread

    with tempfile.TemporaryDirectory() as folder:
        handle = start_in_thread(Path(folder) / "out", Path(folder) / "none")
        me = psutil.Process(os.getpid())
        try:
            return fuzz(
                handle.address,
                messages,
                seed,
                rss=lambda: me.memory_info().rss / 2**20,
                alive=handle.thread.is_alive,
            )
        finally:
            handle.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--in-process", action="store_true", help="service in a thread")
    args = parser.parse_args()
    run = run_in_process if args.in_process else run_subprocess
    try:
        figures = run(args.messages, args.seed)
    except VideoSceneError as error:
        print(json.dumps({"bench": "fuzz", "error": str(error)}))
        return 1
    print(json.dumps(figures))
    return 1 if failures(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
