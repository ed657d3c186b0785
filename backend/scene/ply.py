"""3DGS PLY files in the layout other splat tools read.

Vertex properties: x y z, nx ny nz (zeros), f_dc_0..2, f_rest_* (channel-major: all red rest
coefficients, then green, then blue, as 3DGS writes them), opacity (logit), scale_0..2 (log),
rot_0..3 (w, x, y, z). Reference cameras and the prior's name travel in a JSON `comment` line.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .gaussians import GaussianScene, PinholeCamera

COMMENT_PREFIX = "videoscene "
REQUIRED = [
    "x",
    "y",
    "z",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def to_ply_data(scene: GaussianScene) -> PlyData:
    n, coeffs = scene.num_gaussians, scene.sh.shape[1]
    sh = scene.sh.detach().cpu().float().numpy()
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    columns = {
        "x": scene.means[:, 0],
        "y": scene.means[:, 1],
        "z": scene.means[:, 2],
    }
    columns = {k: v.detach().cpu().float().numpy() for k, v in columns.items()}
    zeros = np.zeros(n, np.float32)
    columns.update({"nx": zeros, "ny": zeros, "nz": zeros})
    for c in range(3):
        columns[f"f_dc_{c}"] = sh[:, 0, c]
    for i in range(rest.shape[1]):
        columns[f"f_rest_{i}"] = rest[:, i]
    columns["opacity"] = _logit(scene.opacities.detach().cpu().double().numpy()).astype(np.float32)
    scales = np.log(scene.scales.detach().cpu().double().numpy().clip(1e-12)).astype(np.float32)
    quats = scene.quats.detach().cpu().float().numpy()
    for i in range(3):
        columns[f"scale_{i}"] = scales[:, i]
    for i in range(4):
        columns[f"rot_{i}"] = quats[:, i]
    vertex = np.empty(n, dtype=[(name, "f4") for name in columns])
    for name, values in columns.items():
        vertex[name] = values
    info = {
        "sh_coefficients": coeffs,
        "meta": {k: v for k, v in scene.meta.items() if isinstance(v, str | int | float | bool)},
        "reference_cameras": [
            {
                "c2w": np.asarray(c.c2w).tolist(),
                "K": np.asarray(c.K).tolist(),
                "width": c.width,
                "height": c.height,
            }
            for c in scene.reference_cameras
        ],
    }
    return PlyData(
        [PlyElement.describe(vertex, "vertex")], comments=[COMMENT_PREFIX + json.dumps(info)]
    )


def save_ply(scene: GaussianScene, path: Path | str) -> None:
    to_ply_data(scene).write(str(path))


def ply_bytes(scene: GaussianScene) -> bytes:
    buffer = io.BytesIO()
    to_ply_data(scene).write(buffer)
    return buffer.getvalue()


def load_ply(source: Path | str | bytes | memoryview) -> GaussianScene:
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            data = PlyData.read(io.BytesIO(bytes(source)))
        else:
            data = PlyData.read(str(source))
        vertex = data["vertex"].data
    except Exception as exc:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Not a readable PLY file: {exc}",
            "Send the scene.ply the backend wrote (3DGS layout).",
        ) from exc
    names = set(vertex.dtype.names or ())
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"The PLY lacks Gaussian splat fields: {', '.join(missing)}.",
            "Use a 3D Gaussian Splatting PLY (x, y, z, f_dc_*, f_rest_*, opacity, scale_*, rot_*).",
        )
    n = len(vertex)
    rest_names = sorted(
        (k for k in names if k.startswith("f_rest_")), key=lambda k: int(k.split("_")[-1])
    )
    coeffs = 1 + len(rest_names) // 3
    if len(rest_names) % 3 or round(coeffs**0.5) ** 2 != coeffs:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"The PLY has {len(rest_names)} f_rest fields, not 3 x (a square - 1).",
            "Export SH degree 0-4 splats.",
        )
    sh = np.zeros((n, coeffs, 3), np.float32)
    for c in range(3):
        sh[:, 0, c] = vertex[f"f_dc_{c}"]
    if rest_names:
        rest = np.stack([vertex[k] for k in rest_names], axis=1).reshape(n, 3, coeffs - 1)
        sh[:, 1:, :] = rest.transpose(0, 2, 1)

    def stack(keys):
        return torch.from_numpy(np.stack([np.asarray(vertex[k], np.float32) for k in keys], axis=1))

    quats = torch.nn.functional.normalize(stack(["rot_0", "rot_1", "rot_2", "rot_3"]), dim=-1)
    scene = GaussianScene(
        means=stack(["x", "y", "z"]),
        quats=quats,
        scales=torch.exp(stack(["scale_0", "scale_1", "scale_2"])),
        opacities=torch.sigmoid(torch.from_numpy(np.asarray(vertex["opacity"], np.float32))),
        sh=torch.from_numpy(sh),
    )
    for comment in data.comments:
        if comment.startswith(COMMENT_PREFIX):
            info = json.loads(comment[len(COMMENT_PREFIX) :])
            scene.meta.update(info.get("meta", {}))
            scene.reference_cameras = [
                PinholeCamera(
                    np.array(c["c2w"]), np.array(c["K"]), int(c["width"]), int(c["height"])
                )
                for c in info.get("reference_cameras", [])
            ]
    try:
        scene.validate()
    except ValueError as exc:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS, f"The PLY's splats are invalid: {exc}", "Re-export the scene."
        ) from exc
    return scene
