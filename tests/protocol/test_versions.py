"""Version negotiation per job kind (protocol/versions.py), and the docs naming every code."""

from __future__ import annotations

from pathlib import Path

import pytest
from videoscene_protocol import PROTOCOL_VERSION, versions
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import MESSAGE_TYPES

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("1.1", (1, 1)), ("2.10", (2, 10)), ("1", None), ("1.x", None), ("", None), (1.1, None)],
)
def test_parse(text, parsed) -> None:
    assert versions.parse(text) == parsed


def test_render_video_needs_a_1_3_client_and_backend() -> None:
    versions.check_client("render_video", PROTOCOL_VERSION)
    versions.check_client("build_scene", "1.0")  # the other kinds still serve 1.0 clients
    for check, hint in ((versions.check_client, "add-on"), (versions.check_backend, "backend")):
        for old in ("1.0", "1.2", None, "garbage"):
            with pytest.raises(VideoSceneError) as info:
                check("render_video", old)
            assert info.value.code == ErrorCode.VERSION_MISMATCH and hint in info.value.hint


def test_the_protocol_doc_names_every_message_type_and_error_code() -> None:
    assert f"version {PROTOCOL_VERSION}" in DOCS
    assert [t for t in sorted(MESSAGE_TYPES) if f"`{t}`" not in DOCS] == []
    assert [c.value for c in ErrorCode if f"`{c.value}`" not in DOCS] == []
