"""`videoscene-backend run` with any frame count, size and frame rate, refined by the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
from videoscene_backend.cli import main
from videoscene_backend.headless import scaled_camera

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_run_streams_any_length_size_and_rate(tmp_path, tiny_checkpoint) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--image-a", str(SAMPLES / "view_a.jpg"),
            "--image-b", str(SAMPLES / "view_b.jpg"),
            "--out", str(out),
            "--prior", "stereo",
            "--frames", "5",
            "--width", "80",
            "--height", "45",
            "--fps", "12.5",
            "--checkpoints", str(tiny_checkpoint),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "result.json").read_text())
    video = summary["video"]
    assert video["refined"] is True and video["num_frames"] == 5
    assert video["windowing"]["windows"] == 1  # 5 frames sampled up to the tiny model's 9
    frames = sorted((out / "frames").glob("*.png"))
    coarse = sorted((out / "coarse").glob("*.png"))
    assert len(frames) == len(coarse) == 5
    assert cv2.imread(str(frames[-1])).shape == (45, 80, 3)
    reader = imageio.get_reader(out / "video.mp4")
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(12.5)
        assert sum(1 for _ in reader) == 5
    finally:
        reader.close()


def test_reference_cameras_scale_uniformly_to_another_aspect() -> None:
    square = {
        "c2w": np.eye(4).tolist(),
        "K": [[400.0, 0, 256], [0, 400.0, 256], [0, 0, 1]],
        "width": 512,
        "height": 512,
    }
    camera = scaled_camera(square, 640, 360)
    assert camera.K[0, 0] == camera.K[1, 1] == pytest.approx(500.0)  # no stretch
    assert (camera.K[0, 2], camera.K[1, 2]) == pytest.approx((320.0, 180.0))


def test_run_refuses_out_of_range_flags(tmp_path, capsys) -> None:
    for flags in (["--frames", "0"], ["--frames", "10001"], ["--fps", "0"], ["--fps", "nan"]):
        with pytest.raises(SystemExit):
            main(["run", "--image-a", "a", "--image-b", "b", "--out", str(tmp_path), *flags])
    assert "must be" in capsys.readouterr().err
