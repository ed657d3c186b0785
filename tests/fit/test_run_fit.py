"""`videoscene-backend run ... --fit`: the main job, then fit_scene on its render, headless."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from videoscene_backend.cli import main
from videoscene_backend.scene.ply import load_ply

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_run_fit_writes_the_fitted_scene(tmp_path) -> None:
    photos = []
    for view in "ab":  # small photos: a small scene, a fast test
        path = tmp_path / f"{view}.png"
        image = cv2.imread(str(SAMPLES / f"view_{view}.jpg"))
        cv2.imwrite(str(path), cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA))
        photos.append(path)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--image-a", str(photos[0]),
            "--image-b", str(photos[1]),
            "--out", str(out),
            "--prior", "stereo",
            "--fov-deg", "60",
            "--frames", "3",
            "--width", "64",
            "--height", "48",
            "--no-refine",
            "--fit",
            "--iterations", "4",
            "--max-views", "2",
            "--downscale", "1",
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "result.json").read_text())
    fitted = summary["fitted_scene"]
    assert fitted["parent_scene"] == summary["scene"]["scene_id"]
    assert fitted["source"]["kind"] == "render_job" and fitted["source"]["frames"] == "coarse"
    assert fitted["fit"]["views"] == 2 and fitted["fit"]["photos"] == 2
    scene = load_ply((out / "scene_fitted.ply").read_bytes())
    assert scene.num_gaussians == fitted["num_gaussians"]
    assert scene.meta["parent_scene"] == fitted["parent_scene"]
    # The prior's placeholders beyond the photos (margins.py) are set aside while the fit seeds
    # (its frames, not the guesses, fill what the photos did not see), then put back last.
    placeholders = summary["scene"]["prior_meta"]["gaussians_beyond_frame"]
    assert placeholders > 0
    assert fitted["fit"]["gaussians_before"] == summary["scene"]["num_gaussians"] - placeholders
    start, end = scene.meta["placeholders_start"], scene.meta["placeholders_end"]  # via the PLY
    assert end == scene.num_gaussians and end - start == placeholders
