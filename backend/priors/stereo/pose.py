"""Relative pose from SIFT matches: essential matrix (MAGSAC++), cheirality, a least-squares
polish on the inliers, and the refusals for too little texture, too few matches and a camera
that did not move."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import prior_failed

MIN_KEYPOINTS = 80
MIN_INLIERS = 40
MIN_PARALLAX_PX = 2.0
MAX_FEATURES = 4000
RATIO_TEST = 0.75
# SIFT's default contrast threshold (0.04) keeps only a few hundred features on smooth, evenly
# lit photos (renders, overcast scenes); a quarter of it gives thousands, and the pose error
# falls with them (on the benchmark scenes from up to 3 degrees to a few tenths).
SIFT_CONTRAST = 0.01
POLISH_ITERATIONS = 10
POLISH_SCALE_PX = 1.0  # Cauchy weight scale of the polish: residuals beyond it count less
# A homography K R K^-1 explains a turning camera: it is taken as a rotation when its linear part
# is a rotation to within this ratio of its singular values (a plane seen head-on is not).
ROTATION_SINGULAR_RATIO = 1.08
HOMOGRAPHY_THRESHOLD_PX = 2.0


@dataclass
class RelativePose:
    """x_1 = R x_0 + t (OpenCV camera frames); |t| = 1, the scene's unit of length."""

    R: np.ndarray
    t: np.ndarray  # (3,)
    matches: int
    inliers: int  # matches that agree with the motion and triangulate in front of both views
    # Matches consistent with the essential matrix, points at infinity included (which the
    # cheirality count above leaves out): they bound the disparity search.
    inlier_points: tuple[np.ndarray, np.ndarray]  # (M, 2) pixels in view 0 and view 1
    # The camera mostly turned: parallax too small to measure, so t is a guess (see prior.py).
    rotation_only: bool = False
    parallax_px: float = 0.0


def match(
    gray_left: np.ndarray, gray_right: np.ndarray, mask_right: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """SIFT matches; mask_right (uint8, 0 = not the photo) keeps features off a border."""
    sift = cv2.SIFT_create(nfeatures=MAX_FEATURES, contrastThreshold=SIFT_CONTRAST)
    kp_left, desc_left = sift.detectAndCompute(gray_left, None)
    if mask_right is not None:  # not on the border's edge either
        mask_right = cv2.erode(mask_right, np.ones((9, 9), np.uint8))
    kp_right, desc_right = sift.detectAndCompute(gray_right, mask_right)
    if min(len(kp_left), len(kp_right)) < MIN_KEYPOINTS:
        raise prior_failed(
            f"Too little texture: {len(kp_left)} and {len(kp_right)} features found (need {MIN_KEYPOINTS}).",
            "Use photos of a textured, well-lit scene (plain walls, sky or black frames cannot be matched).",
        )
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_left, desc_right, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO_TEST * n.distance]
    if len(good) < MIN_INLIERS:
        raise prior_failed(
            f"Too few matches between the photos: {len(good)} (need {MIN_INLIERS}).",
            "The photos must show the same scene with plenty of overlap.",
        )
    pts_left = np.float64([kp_left[m.queryIdx].pt for m in good])
    pts_right = np.float64([kp_right[m.trainIdx].pt for m in good])
    return pts_left, pts_right


def relative_pose(pts_left: np.ndarray, pts_right: np.ndarray, K: np.ndarray) -> RelativePose:
    # MAGSAC++ (OpenCV's USAC): on the benchmark scenes its pose is several times more
    # accurate than plain RANSAC, which matters because rectification needs rows within a pixel.
    E, mask = cv2.findEssentialMat(
        pts_left, pts_right, K, method=cv2.USAC_MAGSAC, prob=0.999, threshold=1.0
    )
    if E is None or E.shape != (3, 3):
        raise prior_failed(
            "No consistent relative pose between the photos.",
            "Use two photos of the same static scene.",
        )
    consistent = mask.ravel() > 0
    inliers, R, t, mask = cv2.recoverPose(E, pts_left, pts_right, K, mask=mask.copy())
    turning = rotation_pose(pts_left, pts_right, K)
    if inliers < MIN_INLIERS and turning is not None:  # cheirality is moot without parallax
        return turning
    if inliers < MIN_INLIERS:
        raise prior_failed(
            f"Only {inliers} matches agree on one camera motion (need {MIN_INLIERS}).",
            "Use two photos of the same static scene with more overlap.",
        )
    # Parallax after undoing the rotation: a pure rotation (or no motion) leaves none.
    keep = mask.ravel() > 0
    rays = np.linalg.inv(K) @ np.c_[pts_left[keep], np.ones(keep.sum())].T
    rotated = K @ (R @ rays)
    rotated = (rotated[:2] / rotated[2]).T
    parallax = float(np.median(np.linalg.norm(rotated - pts_right[keep], axis=1)))
    if parallax < MIN_PARALLAX_PX and turning is not None:
        return turning
    if parallax < MIN_PARALLAX_PX:
        raise prior_failed(
            f"The camera barely moved between the photos (median parallax {parallax:.1f} px): a pure rotation or the same viewpoint gives no depth.",
            "Step sideways between the two photos (about a tenth of the distance to the subject).",
        )
    R, t = polish(R, t.ravel(), pts_left[consistent], pts_right[consistent], K)
    return RelativePose(
        R, t, len(pts_left), int(inliers), (pts_left[consistent], pts_right[consistent])
    )


def rotation_pose(
    pts_left: np.ndarray, pts_right: np.ndarray, K: np.ndarray
) -> RelativePose | None:
    """The pose of a camera that only turned, when a homography K R K^-1 explains enough matches;
    None otherwise. t is a unit guess along the optical axis (no parallax to measure it)."""
    H, mask = cv2.findHomography(pts_left, pts_right, cv2.USAC_MAGSAC, HOMOGRAPHY_THRESHOLD_PX)
    if H is None or mask is None or int(mask.sum()) < MIN_INLIERS:
        return None
    M = np.linalg.inv(K) @ H @ K
    U, S, Vt = np.linalg.svd(M)
    if S[0] / S[2] > ROTATION_SINGULAR_RATIO:
        return None
    R = U @ Vt
    if np.linalg.det(R) < 0:
        return None
    keep = mask.ravel() > 0
    rays = np.linalg.inv(K) @ np.c_[pts_left[keep], np.ones(keep.sum())].T
    rotated = K @ (R @ rays)
    residual = np.linalg.norm((rotated[:2] / rotated[2]).T - pts_right[keep], axis=1)
    return RelativePose(
        R,
        -R @ np.array([1.0, 0.0, 0.0]),  # camera B one unit to the right of A (a guess)
        len(pts_left),
        int(keep.sum()),
        (pts_left[keep], pts_right[keep]),
        rotation_only=True,
        parallax_px=float(np.median(residual)),
    )


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def sampson_px(R: np.ndarray, t: np.ndarray, rays_0: np.ndarray, rays_1: np.ndarray, focal: float):
    """Sampson distance (pixels) of each match (normalised homogeneous rays (N, 3)) to the
    epipolar geometry of x_1 = R x_0 + t."""
    E = _skew(t) @ R
    line_1, line_0 = rays_0 @ E.T, rays_1 @ E
    algebraic = np.sum(rays_1 * line_1, axis=1)
    norm = np.sqrt(line_1[:, 0] ** 2 + line_1[:, 1] ** 2 + line_0[:, 0] ** 2 + line_0[:, 1] ** 2)
    return focal * algebraic / np.maximum(norm, 1e-12)


def _perturbed(R: np.ndarray, t: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose moved by `step`: a rotation vector (3) and a move of t on the unit sphere (2)."""
    axis = np.eye(3)[np.argmin(np.abs(t))]
    u = np.cross(t, axis)
    u /= np.linalg.norm(u)
    moved = t + step[3] * u + step[4] * np.cross(t, u)
    return cv2.Rodrigues(step[:3])[0] @ R, moved / np.linalg.norm(moved)


def polish(
    R: np.ndarray, t: np.ndarray, pts_left: np.ndarray, pts_right: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on the Sampson error of the inliers (5 degrees of freedom, Cauchy
    weights). MAGSAC++ returns the best minimal-sample model, refined on a subset; OpenCV's
    final polishers (UsacParams) cannot be reached from Python (4.11 rejects the intrinsics of
    that overload), and it has no other essential-matrix refinement, hence these few lines."""
    K_inv = np.linalg.inv(K)
    rays = [np.c_[p, np.ones(len(p))] @ K_inv.T for p in (pts_left, pts_right)]
    focal, t = float(K[0, 0]), t / np.linalg.norm(t)
    damping = 1e-3
    for _ in range(POLISH_ITERATIONS):
        residual = sampson_px(R, t, *rays, focal)
        weight = 1.0 / (1.0 + (residual / POLISH_SCALE_PX) ** 2)
        jacobian = np.empty((len(residual), 5))
        for k in range(5):  # numeric: five columns, each one cheap evaluation
            step = np.zeros(5)
            step[k] = 1e-6
            jacobian[:, k] = (sampson_px(*_perturbed(R, t, step), *rays, focal) - residual) / 1e-6
        normal = (jacobian * weight[:, None]).T @ jacobian
        gradient = (jacobian * weight[:, None]).T @ residual
        step = -np.linalg.solve(normal + damping * np.diag(np.diag(normal)), gradient)
        candidate = _perturbed(R, t, step)
        before = np.sum(weight * residual**2)
        after = np.sum(weight * sampson_px(*candidate, *rays, focal) ** 2)
        if after >= before:  # no progress: damp more (and stop once the steps are tiny)
            damping *= 10.0
            if damping > 1e4:
                break
            continue
        R, t = candidate
        damping = max(damping / 10.0, 1e-6)
    return R, t
