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
from videoscene_protocol.wire import (
    ALLOWED_DTYPES,
    MESSAGE_TYPES,
    Message,
    decode,
    encode,
    peek_ids,
)


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


# ---- hardening (issue #10): ids, strict JSON, shapes, versions, error addressing -------------
def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


CRAFTED_IDS = [
    "../../victim",
    "..",
    ".",
    "/etc/passwd",
    ".x",
    "a/b",
    "a\\b",
    "C:",
    "nul\x00byte",
    "lone\ud800surrogate",
    "\U0001f600" * 62,
    "x" * 65,
    "",
    "a b",
    "a\nb",
    "٣",  # a non-ASCII digit
]


@pytest.mark.parametrize("job_id", CRAFTED_IDS)
def test_crafted_job_ids_are_refused_at_the_wire(job_id: str) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(job_id=job_id)))
    assert info.value.code == ErrorCode.BAD_MESSAGE and "A-Z" in info.value.hint


@pytest.mark.parametrize("job_id", [5, True, [], {"a": 1}])
def test_non_string_job_ids_are_refused(job_id) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(job_id=job_id)))
    assert info.value.code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize("msg_id", ["../m", "", None, 7, "m" * 65])
def test_msg_ids_follow_the_id_rule_too(msg_id) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(msg_id=msg_id)))
    assert info.value.code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    "job_id", ["a", "A-z_09", "f" * 64, "5f0c3e0d-1f2e-4c55-9a1c-2e8d9c1b2a3f"]
)
def test_good_ids_pass(job_id: str) -> None:
    assert decode(_frames(_envelope(job_id=job_id))).job_id == job_id


@pytest.mark.parametrize("version", ["1", "1.x", "1.0.0", "01.0", "1.00", " 1.0", "1.0\n", "", 1.0])
def test_malformed_versions_are_refused(version) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(version=version)))
    assert info.value.code == ErrorCode.VERSION_MISMATCH and "MAJOR.MINOR" in info.value.message


def test_a_newer_minor_version_is_accepted() -> None:
    assert decode(_frames(_envelope(version="1.7"))).type == "submit"


@pytest.mark.parametrize(
    "frame0",
    [
        b'{"protocol": "videoscene", "version": "1.0", "type": "submit", "msg_id": "m", "body": {"seed": NaN}}',
        b'{"protocol": "videoscene", "version": "1.0", "type": "submit", "msg_id": "m", "body": {"seed": Infinity}}',
        b'{"protocol": "videoscene", "version": "1.0", "type": "submit", "msg_id": "m", "body": {"seed": -Infinity}}',
        b'{"protocol": "videoscene", "version": "1.0", "type": "submit", "msg_id": "m", "body": {"seed": '
        + b"9" * 5000
        + b"}}",
        json.dumps(_envelope(body={"a": _nested(40)})).encode(),
        b'{"protocol": "videoscene", "msg_id": "m", "body": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ],
    ids=["nan", "infinity", "minus-infinity", "5000-digit-int", "40-deep", "1000-deep"],
)
def test_non_strict_json_is_bad_json(frame0: bytes) -> None:
    with pytest.raises(VideoSceneError) as info:
        decode([frame0])
    assert info.value.code == ErrorCode.BAD_JSON


def test_moderate_nesting_is_fine() -> None:
    assert decode(_frames(_envelope(body={"a": _nested(20)}))).body["a"]["a"]


@pytest.mark.parametrize(
    "shape",
    [[10**200, 10**200], [0, 10**200], [0, 2**40, 2**40], [2**70], [1.5], ["3"], [True]],
)
def test_absurd_shapes_are_shape_mismatch(shape) -> None:
    descriptor = {"name": "a", "kind": "array", "dtype": "uint8", "shape": shape, "nbytes": 0}
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(buffers=[descriptor]), b""))
    assert info.value.code == ErrorCode.SHAPE_MISMATCH


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "", "x" * 65, 5])
def test_buffer_names_cannot_be_paths(name) -> None:
    descriptor = {"name": name, "kind": "blob", "nbytes": 1}
    with pytest.raises(VideoSceneError) as info:
        decode(_frames(_envelope(buffers=[descriptor]), b"x"))
    assert info.value.code == ErrorCode.BAD_MESSAGE


def test_envelopes_over_one_mib_are_too_large() -> None:
    frames = _frames(_envelope(body={"pad": "x" * (1 << 20)}))
    with pytest.raises(VideoSceneError) as info:
        decode(frames)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_nan_is_never_sent() -> None:
    with pytest.raises(VideoSceneError) as info:
        encode(Message("result", body={"meta": {"loss": float("nan")}}))
    assert info.value.code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize(
    ("frame0", "ids"),
    [
        (json.dumps(_envelope(msg_id="m1", job_id="j1", version="9.0")).encode(), ("m1", "j1")),
        (
            b'{"msg_id": "m2", "job_id": "j2", "body": ' + b"[" * 2000 + b"]" * 2000 + b"}",
            ("m2", "j2"),
        ),
        (b'{"msg_id": "m3", "job_id": "../x", "body": {"seed": NaN}}', ("m3", None)),
        (
            json.dumps({"msg_id": "m4", "job_id": "j4", "body": {"pad": "x" * (2 << 20)}}).encode(),
            ("m4", "j4"),
        ),
        (b'{"body": {"msg_id": "inner"}, "msg_id": "outer"}', ("outer", None)),
        (b'{"msg_id": "m5", "job_id": "j5", "body": {"unterminated', ("m5", "j5")),
        (b"\xff\xfe garbage", (None, None)),
        (b'["msg_id", "m"]', (None, None)),
        (b'"' + b'\\"' * 100_000, (None, None)),
    ],
    ids=[
        "bad-version",
        "2000-deep",
        "nan",
        "over-1mib",
        "nested-key",
        "truncated",
        "binary",
        "list",
        "quotes",
    ],
)
def test_peek_ids_reads_the_top_level_ids_of_broken_envelopes(frame0: bytes, ids) -> None:
    assert peek_ids([frame0]) == ids


def test_unknown_error_codes_are_kept_not_refused() -> None:
    error = VideoSceneError.from_dict({"code": "gpu_on_fire", "message": "m", "hint": "h"})
    assert error.code.value == "gpu_on_fire" and not error.code.known
    assert error.code != ErrorCode.INTERNAL and ErrorCode.INTERNAL.known
    assert error.to_dict() == {"code": "gpu_on_fire", "message": "m", "hint": "h"}
    assert "[gpu_on_fire] m" in str(error)


@pytest.mark.parametrize("body", [{}, {"code": 5}, {"code": None, "message": None}, [], "text"])
def test_malformed_error_bodies_still_give_an_error(body) -> None:
    assert VideoSceneError.from_dict(body).code == ErrorCode.INTERNAL
