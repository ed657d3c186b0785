"""Framing round trips, every declared-vs-actual check, and a fuzzed decoder."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import ALLOWED_DTYPES, MESSAGE_TYPES, Message, decode, encode


@pytest.mark.parametrize("dtype", sorted(ALLOWED_DTYPES))
def test_arrays_of_every_dtype_round_trip(dtype: str) -> None:
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    back = decode(encode(Message("result", arrays={"a": array}, job_id="j1")))
    assert back.arrays["a"].dtype == np.dtype(dtype) and back.arrays["a"].shape == (2, 3, 4)
    np.testing.assert_array_equal(back.arrays["a"], array)


@pytest.mark.parametrize("kind", sorted(MESSAGE_TYPES))
def test_every_message_type_round_trips(kind: str) -> None:
    message = Message(kind, body={"x": [1, 2], "s": "é"}, job_id="abc", blobs={"b": b"\x00\x01"})
    back = decode(encode(message))
    assert (back.type, back.body, back.job_id, back.msg_id) == (
        kind,
        message.body,
        "abc",
        message.msg_id,
    )
    assert bytes(back.blobs["b"]) == b"\x00\x01"


def test_big_endian_and_non_contiguous_arrays_are_sent_correctly() -> None:
    array = np.arange(12, dtype=">f4").reshape(3, 4).T
    back = decode(encode(Message("result", arrays={"a": array})))
    np.testing.assert_array_equal(back.arrays["a"], array)


def test_empty_and_scalar_arrays() -> None:
    back = decode(
        encode(Message("result", arrays={"e": np.zeros((0, 3), np.float32), "s": np.float64(2.5)}))
    )
    assert back.arrays["e"].shape == (0, 3) and back.arrays["s"].item() == 2.5


def test_unsupported_dtype_is_refused_on_send() -> None:
    with pytest.raises(VideoSceneError):
        encode(Message("result", arrays={"c": np.zeros(2, np.complex64)}))


def _envelope(**overrides) -> dict:
    envelope = {
        "protocol": "videoscene",
        "version": PROTOCOL_VERSION,
        "type": "submit",
        "msg_id": "m",
        "job_id": "j",
        "body": {},
        "buffers": [],
    }
    envelope.update(overrides)
    return envelope


def _frames(envelope: dict, *buffers: bytes) -> list[bytes]:
    return [json.dumps(envelope).encode(), *buffers]


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], ErrorCode.BAD_MESSAGE),
        ([b"\xff\xfe not json"], ErrorCode.BAD_JSON),
        ([b"[1, 2]"], ErrorCode.BAD_JSON),
        (_frames(_envelope(protocol="jupyter")), ErrorCode.BAD_MESSAGE),
        (_frames(_envelope(version="2.0")), ErrorCode.VERSION_MISMATCH),
        (_frames(_envelope(type="explode")), ErrorCode.UNKNOWN_TYPE),
        (_frames(_envelope(body=[])), ErrorCode.BAD_MESSAGE),
        (
            _frames(_envelope(buffers=[{"name": "a", "kind": "blob", "nbytes": 3}])),
            ErrorCode.BAD_MESSAGE,
        ),
        (
            _frames(_envelope(buffers=[{"name": "a", "kind": "blob", "nbytes": 3}]), b"ab"),
            ErrorCode.SHAPE_MISMATCH,
        ),
        (
            _frames(
                _envelope(
                    buffers=[
                        {
                            "name": "a",
                            "kind": "array",
                            "dtype": "float32",
                            "shape": [2, 2],
                            "nbytes": 12,
                        }
                    ]
                ),
                b"x" * 12,
            ),
            ErrorCode.SHAPE_MISMATCH,
        ),
        (
            _frames(
                _envelope(
                    buffers=[
                        {"name": "a", "kind": "array", "dtype": "object", "shape": [1], "nbytes": 8}
                    ]
                ),
                b"x" * 8,
            ),
            ErrorCode.BAD_MESSAGE,
        ),
        (
            _frames(
                _envelope(
                    buffers=[
                        {"name": "a", "kind": "array", "dtype": "uint8", "shape": [-1], "nbytes": 1}
                    ]
                ),
                b"x",
            ),
            ErrorCode.SHAPE_MISMATCH,
        ),
        (
            _frames(
                _envelope(job_id=""),
            ),
            ErrorCode.BAD_MESSAGE,
        ),
    ],
)
def test_malformed_messages_get_the_right_code(frames, code) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(frames)
    assert info.value.code == code
    assert info.value.hint


def test_version_mismatch_names_both_versions() -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(version="9.1")))
    assert "9.1" in info.value.message and PROTOCOL_VERSION in info.value.message


def test_oversize_messages_are_refused() -> None:
    frames = encode(Message("submit", job_id="j", blobs={"b": b"x" * 2000}))
    with pytest.raises(VideoSceneError) as info:
        decode(frames, max_message_bytes=1000)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_decoder_never_crashes_on_random_frames(frames: list[bytes]) -> None:
    with contextlib.suppress(VideoSceneError):
        decode(frames)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["protocol", "version", "type", "msg_id", "job_id", "body", "buffers"]),
        _json_values,
    ),
    st.lists(
        st.dictionaries(
            st.sampled_from(["name", "kind", "dtype", "shape", "nbytes"]), _json_values
        ),
        max_size=3,
    ),
    st.lists(st.binary(max_size=32), max_size=3),
)
def test_decoder_never_crashes_on_structured_envelopes(envelope, buffers, payloads) -> None:
    base = _envelope()
    base.update(envelope)
    if buffers:
        base["buffers"] = buffers
    try:
        message = decode(_frames(base, *payloads))
    except VideoSceneError:
        return
    for name, array in message.arrays.items():  # anything accepted is self-consistent
        assert array.nbytes == next(d["nbytes"] for d in base["buffers"] if d["name"] == name)
