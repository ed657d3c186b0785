"""The job params spec: validation, and everything derived from it (docs tables, run flags)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from videoscene_backend.param_flags import add_param_flags, params_from_flags
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import (
    BUILD_SCENE,
    JOB_SPECS,
    RENDER_VIDEO,
    documented_table,
    markdown_table,
    validate_params,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _refused(kind: str, params) -> VideoSceneError:
    with pytest.raises(VideoSceneError) as info:
        validate_params(kind, params)
    assert info.value.code == ErrorCode.BAD_PARAMS and info.value.hint
    return info.value


def test_defaults_fill_in_and_values_come_back_normalized() -> None:
    checked = validate_params(
        "render_video", {"scene_id": "s1", "near": 1, "background": [1, 0, 0]}
    )
    assert checked["near"] == 1.0 and isinstance(checked["near"], float)
    assert checked["background"] == [1.0, 0.0, 0.0]
    assert checked["seed"] == 111123 and checked["guidance_scale"] == 6.0
    assert checked["leap_timestep"] is None and checked["refine"] is True
    assert set(checked) == {param.name for param in RENDER_VIDEO.params}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("refine", "no"),
        ("refine", 0),
        ("seed", 2**70),
        ("seed", "12"),
        ("seed", 1.5),
        ("seed", True),
        ("seed", -1),
        ("steps", math.inf),
        ("leap_timestep", 1000),
        ("guidance_scale", math.nan),
        ("guidance_scale", 10**400),
        ("mode", []),
        ("mode", {"one": 1}),
        ("memory_mode", "garbage"),
        ("memory_mode", "full"),
        ("condition_source", None),
        ("background", [0, 0]),
        ("background", [0, 0, 2]),
        ("background", "black"),
        ("near", 0),
        ("width", 8),
        ("width", 720.0),
        ("scene_id", "../../victim"),
        ("scene_id", "a/b"),
        ("scene_id", "x" * 65),
        ("scene_id", ""),
        ("scene_id", None),
    ],
)
def test_nonsense_is_refused_naming_the_param(name, value) -> None:
    error = _refused("render_video", {"scene_id": "s1", name: value})
    assert repr(name) in error.message


def test_a_huge_value_is_not_echoed_whole() -> None:
    error = _refused("render_video", {"scene_id": "s1", "mode": "x" * 1_000_000})
    assert len(error.message) < 300


def test_near_must_be_below_far() -> None:
    error = _refused("render_video", {"scene_id": "s1", "near": 10.0, "far": 10.0})
    assert "near < far" in error.message


def test_unknown_and_missing_params() -> None:
    assert "guidance" in _refused("render_video", {"scene_id": "s", "guidance": 3}).message
    assert "scene_id" in _refused("render_video", {}).message
    assert "JSON object" in _refused("build_scene", ["prior", "auto"]).message


def test_an_unknown_job_kind() -> None:
    with pytest.raises(VideoSceneError) as info:
        validate_params({"kind": 1}, {})
    assert info.value.code == ErrorCode.UNKNOWN_JOB_KIND


def test_nullable_params_take_null_and_non_nullable_do_not() -> None:
    assert validate_params("build_scene", {"fov_deg": None})["fov_deg"] is None
    assert validate_params("build_scene", {"fov_deg": 45})["fov_deg"] == 45.0
    _refused("build_scene", {"fov_deg": 170})  # the stereo prior's range is the spec's range
    _refused("build_scene", {"prior": None})


def test_every_default_passes_its_own_check() -> None:
    for spec in JOB_SPECS.values():
        for param in spec.params:
            if not param.required:
                param.check(param.default)
            if param.nullable and param.setting:
                assert param.manual_default is not None, param.name
                param.check(param.manual_default)


@pytest.mark.parametrize("kind", sorted(JOB_SPECS))
def test_docs_tables_are_the_specs(kind) -> None:
    table = documented_table(DOCS.read_text(), kind)
    assert table is not None, f"docs/protocol.md has no param table for {kind}"
    assert table == markdown_table(JOB_SPECS[kind]), (
        "docs/protocol.md is out of date: run `python -m videoscene_protocol.params --write "
        "docs/protocol.md`"
    )


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_param_flags(parser, BUILD_SCENE)
    add_param_flags(parser, RENDER_VIDEO, skip=("scene_id",))
    return parser.parse_args(list(argv))


def test_run_flags_come_from_the_spec() -> None:
    args = _parse(
        "--memory-mode", "fp32", "--no-refine", "--background", "0", "0.5", "1",
        "--leap-timestep", "300", "--fov-deg", "50", "--prior", "stereo",
    )  # fmt: skip
    render = params_from_flags(args, RENDER_VIDEO)
    assert render == {
        "memory_mode": "fp32",
        "refine": False,
        "background": [0.0, 0.5, 1.0],
        "leap_timestep": 300,
    }
    assert params_from_flags(args, BUILD_SCENE) == {"prior": "stereo", "fov_deg": 50.0}
    validate_params("render_video", {**render, "scene_id": "s"})
    assert params_from_flags(_parse(), RENDER_VIDEO) == {}  # nothing given: backend defaults


def test_run_flags_offer_only_the_specs_choices() -> None:
    with pytest.raises(SystemExit):
        _parse("--memory-mode", "full")
    for param in RENDER_VIDEO.params:
        if param.name != "scene_id":
            assert f"--{param.name.replace('_', '-')}" in _parser_help()


def _parser_help() -> str:
    parser = argparse.ArgumentParser()
    add_param_flags(parser, RENDER_VIDEO, skip=("scene_id",))
    return parser.format_help()


def test_every_job_kind_the_backend_runs_has_a_params_spec() -> None:
    # The service validates a submit's params against JOB_SPECS before queueing it; a kind
    # without a spec would reach its handler unchecked.
    from videoscene_backend.pipeline.registry import HANDLERS

    assert sorted(HANDLERS) == sorted(JOB_SPECS)
