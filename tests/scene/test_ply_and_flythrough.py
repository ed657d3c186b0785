"""3DGS PLY round trips and the default flythrough."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData
from videoscene_backend.scene.flythrough import default_flythrough, rays_closest_point
from videoscene_backend.scene.gaussians import GaussianScene, PinholeCamera
from videoscene_backend.scene.ply import load_ply, ply_bytes, save_ply
from videoscene_protocol.errors import ErrorCode, VideoSceneError


def random_scene(n: int = 50, degree: int = 3, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    K = np.array([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 0, 0]
    return GaussianScene(
        means=torch.randn(n, 3, generator=g),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.rand(n, 3, generator=g) * 0.1 + 0.01,
        opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g),
        reference_cameras=[PinholeCamera(np.eye(4), K, 320, 240), PinholeCamera(pose, K, 320, 240)],
        meta={"prior": "stereo"},
    )


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_round_trip(tmp_path, degree) -> None:
    scene = random_scene(degree=degree)
    save_ply(scene, tmp_path / "s.ply")
    back = load_ply(tmp_path / "s.ply")
    for name in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(back, name), getattr(scene, name), rtol=1e-4, atol=1e-5)
    assert back.meta["prior"] == "stereo"
    np.testing.assert_allclose(back.reference_cameras[1].c2w, scene.reference_cameras[1].c2w)
    assert load_ply(ply_bytes(scene)).num_gaussians == 50


def test_ply_uses_the_standard_3dgs_layout(tmp_path) -> None:
    scene = random_scene(degree=3)
    save_ply(scene, tmp_path / "s.ply")
    vertex = PlyData.read(str(tmp_path / "s.ply"))["vertex"]
    names = [p.name for p in vertex.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == [
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    assert sum(n.startswith("f_rest_") for n in names) == 45
    # Channel-major rest coefficients: f_rest_0..14 are red, 15..29 green.
    np.testing.assert_allclose(vertex["f_rest_15"], scene.sh[:, 1, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["opacity"], torch.logit(scene.opacities).numpy(), rtol=1e-4)
    np.testing.assert_allclose(vertex["scale_0"], torch.log(scene.scales[:, 0]).numpy(), rtol=1e-5)


def test_a_ply_without_splat_fields_is_rejected(tmp_path) -> None:
    from plyfile import PlyElement

    points = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(points, "vertex")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(VideoSceneError) as info:
        load_ply(tmp_path / "points.ply")
    assert info.value.code == ErrorCode.BAD_PARAMS and "f_dc_0" in info.value.message
    with pytest.raises(VideoSceneError):
        load_ply(b"definitely not a ply")


def _look_at(position, target) -> np.ndarray:
    z = np.asarray(target, float) - position
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, -1.0, 0])
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = position
    return pose


def test_flythrough_starts_and_ends_at_the_references_and_swings_about_the_target() -> None:
    K0, K1 = np.diag([300.0, 300, 1]), np.diag([320.0, 320, 1])
    cam0 = PinholeCamera(_look_at(np.array([-1.0, 0, 0]), [0, 0, 5]), K0, 320, 240)
    cam1 = PinholeCamera(_look_at(np.array([1.0, 0, 0]), [0, 0, 5]), K1, 320, 240)
    np.testing.assert_allclose(rays_closest_point(cam0.c2w, cam1.c2w), [0, 0, 5], atol=1e-9)
    c2w, K = default_flythrough(cam0, cam1, 49)
    assert c2w.shape == (49, 4, 4) and K.shape == (49, 3, 3)
    np.testing.assert_allclose(c2w[0], cam0.c2w)
    np.testing.assert_allclose(c2w[-1], cam1.c2w)
    np.testing.assert_allclose(K[24], (K0 + K1) / 2, rtol=1e-6)
    for pose in c2w:
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-9)
    distances = np.linalg.norm(c2w[:, :3, 3] - [0, 0, 5], axis=1)
    np.testing.assert_allclose(distances, distances[0], rtol=1e-6)  # an arc about the pivot
    np.testing.assert_allclose(c2w[24][:3, 2], [0, 0, 1], atol=1e-6)  # midway looks straight at it
    steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
    assert steps[0] < steps[24] and steps[-1] < steps[24]  # eased in and out
