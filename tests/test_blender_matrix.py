"""The Blender releases the add-on supports and the ones `bash dev.sh test` (hence CI) runs its
suite under say the same thing: tools/blender_matrix.txt, the manifest's blender_version_min,
pyproject's addon-build pin and the zips build_addon.py makes."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "tools" / "blender_matrix.txt"
TESTED = {"lts", "newest"}


def series_of(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def matrix_rows() -> list[dict[str, str]]:
    rows = []
    for line in MATRIX.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            series, bpy, python, status = line.split()
            rows.append({"series": series, "bpy": bpy, "python": python, "status": status})
    return rows


def build_addon():
    spec = importlib.util.spec_from_file_location("build_addon_matrix", ROOT / "build_addon.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_rows_run_from_the_manifests_oldest_blender_to_the_newest():
    rows = matrix_rows()
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert series_of(rows[0]["series"]) == series_of(manifest["blender_version_min"])
    series = [series_of(row["series"]) for row in rows]
    assert series == sorted(set(series)), "one row a series, oldest first"
    assert [row["status"] for row in rows].count("newest") == 1
    assert rows[-1]["status"] == "newest"
    assert {row["status"] for row in rows} <= TESTED | {"superseded"}


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda row: row["series"])
def test_each_supported_lts_and_the_newest_release_are_tested(row):
    if row["status"] in TESTED:
        assert re.fullmatch(r"\d+\.\d+\.\d+", row["bpy"]), f"{row['series']} must be tested"
        assert series_of(row["bpy"]) == series_of(row["series"])
    # Blender 5.1 moved to CPython 3.13: the bpy module of a series needs that Python.
    python_313_from = series_of(build_addon().PYTHON_313_FROM)
    expected = "3.13" if series_of(row["series"]) >= python_313_from else "3.11"
    assert row["python"] == expected


def test_the_main_venv_tests_the_oldest_blender():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = pyproject["project"]["optional-dependencies"]["addon-build"]
    assert pin == f"bpy=={matrix_rows()[0]['bpy']}"


def test_the_zips_cover_every_supported_series():
    variants = build_addon().VARIANTS.values()
    for row in matrix_rows():
        series = series_of(row["series"])
        serving = [
            v
            for v in variants
            if series_of(v.version_min) <= series
            and (v.version_max is None or series < series_of(v.version_max))
        ]
        assert len(serving) == 1, f"Blender {row['series']} gets exactly one zip"
