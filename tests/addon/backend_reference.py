"""The backend's render of a splat PLY at given cameras, for the display tests to compare with.

Runs in the backend's Python (torch), never inside bpy (each bundles native libraries):
    python backend_reference.py SCENE.ply CAMERAS.json OUT.npy
CAMERAS.json: [{"c2w": 4x4 OpenCV camera-to-splat, "K": 3x3 pixels, "width": W, "height": H}].
OUT.npy: (N, H, W, 3) float32 in [0, 1], black background, the CPU torch renderer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from videoscene_backend.render import render
from videoscene_backend.scene.ply import load_ply


def main(ply_path: str, cameras_path: str, out_path: str) -> None:
    scene = load_ply(ply_path)
    images = []
    for camera in json.loads(Path(cameras_path).read_text()):
        out = render(
            scene,
            torch.tensor(camera["c2w"], dtype=torch.float32),
            torch.tensor(camera["K"], dtype=torch.float32),
            int(camera["width"]),
            int(camera["height"]),
            backend="torch",
        )
        images.append(out.images[0].clamp(0, 1).numpy())
    np.save(out_path, np.stack(images).astype(np.float32))


if __name__ == "__main__":
    main(*sys.argv[1:4])
