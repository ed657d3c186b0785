"""The seed's default flythrough between the two reference cameras.

Timing is eased, t <- (cos(pi (t + 1)) + 1) / 2. Positions move on an arc: both camera centres
are expressed relative to the least-squares closest point of the two viewing (z) rays and their
offsets are interpolated in direction (slerp) and length, so the camera swings about what both
views look at. Rotations are slerped (the seed interpolates two Euler angles; slerp is the
gimbal-free equivalent for these small baselines). Intrinsics are interpolated linearly.
"""

from __future__ import annotations

import numpy as np

from .gaussians import PinholeCamera


def eased(num_frames: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, num_frames)
    return (np.cos(np.pi * (t + 1.0)) + 1.0) / 2.0


def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    w = np.sqrt(max(0.0, 1.0 + R[0, 0] + R[1, 1] + R[2, 2])) / 2.0
    x = np.copysign(np.sqrt(max(0.0, 1.0 + R[0, 0] - R[1, 1] - R[2, 2])) / 2.0, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] + R[1, 1] - R[2, 2])) / 2.0, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - R[0, 0] - R[1, 1] + R[2, 2])) / 2.0, R[1, 0] - R[0, 1])
    q = np.array([w, x, y, z])
    return q / np.linalg.norm(q)


def _matrix_from_quat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    dot = float(np.dot(a, b))
    if dot < 0.0 and a.shape == (4,):  # quaternions: take the short way round
        b, dot = -b, -dot
    dot = min(max(dot, -1.0), 1.0)
    angle = np.arccos(dot)
    if angle < 1e-6:
        out = (1 - t) * a + t * b
    else:
        out = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    return out / np.linalg.norm(out)


def rays_closest_point(c2w0: np.ndarray, c2w1: np.ndarray) -> np.ndarray | None:
    """Least-squares closest point of the two cameras' viewing rays; None if near parallel."""
    origins = [c2w0[:3, 3], c2w1[:3, 3]]
    dirs = [c2w0[:3, 2] / np.linalg.norm(c2w0[:3, 2]), c2w1[:3, 2] / np.linalg.norm(c2w1[:3, 2])]
    A, b = np.zeros((3, 3)), np.zeros(3)
    for o, d in zip(origins, dirs, strict=True):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
    if np.linalg.cond(A) > 1e6:
        return None
    return np.linalg.solve(A, b)


def default_flythrough(
    cam0: PinholeCamera, cam1: PinholeCamera, num_frames: int = 49
) -> tuple[np.ndarray, np.ndarray]:
    c2w0, c2w1 = np.asarray(cam0.c2w, float), np.asarray(cam1.c2w, float)
    K0, K1 = np.asarray(cam0.K, float), np.asarray(cam1.K, float)
    pivot = rays_closest_point(c2w0, c2w1)
    q0, q1 = _quat_from_matrix(c2w0[:3, :3]), _quat_from_matrix(c2w1[:3, :3])
    c2ws, Ks = [], []
    for t in eased(num_frames):
        pose = np.eye(4)
        pose[:3, :3] = _matrix_from_quat(_slerp(q0, q1, t))
        if pivot is None:
            pose[:3, 3] = (1 - t) * c2w0[:3, 3] + t * c2w1[:3, 3]
        else:
            o0, o1 = c2w0[:3, 3] - pivot, c2w1[:3, 3] - pivot
            length = (1 - t) * np.linalg.norm(o0) + t * np.linalg.norm(o1)
            pose[:3, 3] = pivot + _slerp(o0, o1, t) * length
        c2ws.append(pose)
        Ks.append((1 - t) * K0 + t * K1)
    c2ws[0], c2ws[-1] = c2w0.copy(), c2w1.copy()  # exact endpoints
    return np.stack(c2ws), np.stack(Ks)


def interpolate_path(
    c2w: np.ndarray, K: np.ndarray, positions: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Cameras at fractional path positions (frame indices): rotations slerped, centres and
    intrinsics interpolated linearly between the neighbouring frames. Integer positions give
    the path's cameras exactly."""
    c2w, K = np.asarray(c2w, dtype=np.float64), np.asarray(K, dtype=np.float64)
    out_c2w = np.empty((len(positions), 4, 4))
    out_K = np.empty((len(positions), 3, 3))
    for index, position in enumerate(positions):
        low = int(np.floor(position))
        t = float(position) - low
        if t == 0.0:
            out_c2w[index], out_K[index] = c2w[low], K[low]
            continue
        high = low + 1
        pose = np.eye(4)
        q0, q1 = _quat_from_matrix(c2w[low, :3, :3]), _quat_from_matrix(c2w[high, :3, :3])
        pose[:3, :3] = _matrix_from_quat(_slerp(q0, q1, t))
        pose[:3, 3] = (1 - t) * c2w[low, :3, 3] + t * c2w[high, :3, 3]
        out_c2w[index], out_K[index] = pose, (1 - t) * K[low] + t * K[high]
    return out_c2w, out_K
