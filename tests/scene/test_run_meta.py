"""`videoscene-backend run` writes the build job's whole meta into result.json (issue #35):
where the field of view came from and what the prior says about its build."""

from __future__ import annotations

import json
from pathlib import Path

from videoscene_backend.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_run_result_carries_the_scene_meta(tmp_path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--image-a", str(SAMPLES / "view_a.jpg"),
            "--image-b", str(SAMPLES / "view_b.jpg"),
            "--out", str(out),
            "--prior", "stereo",
            "--frames", "2",
            "--width", "64",
            "--height", "48",
            "--no-refine",
        ]
    )  # fmt: skip
    assert code == 0
    scene = json.loads((out / "result.json").read_text())["scene"]
    assert scene["fov_source"] in {"user", "exif", "assumed"}
    assert scene["fov_sources"][0] == scene["fov_source"]
    assert scene["prior"] == "stereo"
    prior_meta = scene["prior_meta"]
    assert prior_meta["prior"] == "stereo" and prior_meta["mode"] in {
        "stereo",
        "sparse",
        "rotation",
    }
    assert prior_meta["gaussians_a"] > 0 and "matched_fraction" in prior_meta
    assert len(scene["photos"]) == 2 and len(scene["reference_cameras"]) == 2
