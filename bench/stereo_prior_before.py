"""The embedded stereo prior as it was before the dense rewrite, kept verbatim (imports made
absolute) only as bench/prior_quality.py's in-run baseline. Not used by the backend.

The old docstring: classical two-view stereo with OpenCV, no weights needed.

Steps: resize both photos to a working size -> SIFT features, ratio-test matches -> essential
matrix (RANSAC) with an assumed field of view when none is given -> relative pose -> rectify ->
semi-global block matching with a left-right check -> depth -> one Gaussian per valid pixel of
view 0 (colour from the pixel, size from its footprint, opacity from the match confidence).

Limits (also in the README): pose-free, so the scale is arbitrary (the baseline is 1 unit); it
needs overlapping, textured, static views with real parallax (not a pure rotation); it sees
only what view 0 sees, and surfaces are as good as block matching makes them.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from videoscene_backend.priors.base import CancelCheck, ProgressFn
from videoscene_backend.scene.gaussians import GaussianScene, PinholeCamera
from videoscene_protocol.cameras import fov_to_focal_px
from videoscene_protocol.errors import ErrorCode, VideoSceneError

SH_C0 = 0.28209479177387814
ASSUMED_FOV_DEG = 60.0
WORK_LONG_SIDE = 640
MIN_SIDE = 64
MIN_KEYPOINTS = 80
MIN_INLIERS = 40
MIN_PARALLAX_PX = 2.0
MAX_GAUSSIANS = 300_000


def _fail(message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.PRIOR_FAILED, message, hint)


class StereoPrior:
    name = "stereo"

    def build(
        self,
        images: list[np.ndarray],
        fov_deg: float | None,
        progress: ProgressFn,
        check_cancelled: CancelCheck,
    ) -> GaussianScene:
        if len(images) != 2:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"The stereo prior takes 2 photos, got {len(images)}.",
                "Pick two reference photos.",
            )
        progress("prior", 0.0, "preparing photos")
        left, right = _working_pair(images)
        height, width = left.shape[:2]
        assumed = fov_deg is None
        fov = ASSUMED_FOV_DEG if assumed else float(fov_deg)
        if not 10.0 <= fov <= 150.0:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Field of view {fov} deg is out of range.",
                "Give the horizontal FOV in degrees (10-150).",
            )
        focal = fov_to_focal_px(fov, width)
        K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
        gray_left, gray_right = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right))
        if np.array_equal(gray_left, gray_right):
            raise _fail(
                "The two photos are identical, so there is no parallax to reconstruct depth from.",
                "Take the second photo from a different position.",
            )
        check_cancelled()

        progress("pose", 0.1, "matching features")
        pts_left, pts_right = _match(gray_left, gray_right)
        check_cancelled()
        progress("pose", 0.5, f"{len(pts_left)} matches; estimating the relative pose")
        R, t, inliers = _relative_pose(pts_left, pts_right, K)
        check_cancelled()

        progress("prior", 0.3, "dense stereo")
        points, colours, confidence = _dense_points(left, right, gray_left, gray_right, K, R, t)
        check_cancelled()
        progress("prior", 0.9, f"{len(points)} Gaussians")
        scene = _gaussians(points, colours, confidence, focal)
        c2w1 = np.eye(4)
        c2w1[:3, :3] = R.T
        c2w1[:3, 3] = (-R.T @ t).ravel()
        scene.reference_cameras = [
            PinholeCamera(np.eye(4), K, width, height),
            PinholeCamera(c2w1, K.copy(), width, height),
        ]
        scene.reference_images = [left, right]
        scene.meta = {
            "prior": "stereo",
            "fov_deg": fov,
            "fov_assumed": assumed,
            "matches": len(pts_left),
            "inliers": inliers,
        }
        progress("prior", 1.0, "done")
        return scene


def _working_pair(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Both photos at view 0's working size. A different aspect ratio is centre-cropped to
    view 0's first (the same lens is assumed for both photos)."""
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < MIN_SIDE:
            raise VideoSceneError(
                ErrorCode.BAD_IMAGE,
                f"Photo {index} is {image.shape}, too small or not RGB.",
                f"Use photos of at least {MIN_SIDE} px per side.",
            )
    first, second = images
    scale = WORK_LONG_SIDE / max(first.shape[:2])
    size = (
        max(MIN_SIDE, round(first.shape[1] * scale)) // 8 * 8,
        max(MIN_SIDE, round(first.shape[0] * scale)) // 8 * 8,
    )
    aspect = size[0] / size[1]
    h, w = second.shape[:2]
    if abs(w / h - aspect) > 0.01:
        if w / h > aspect:
            new_w = round(h * aspect)
            second = second[:, (w - new_w) // 2 : (w - new_w) // 2 + new_w]
        else:
            new_h = round(w / aspect)
            second = second[(h - new_h) // 2 : (h - new_h) // 2 + new_h]
    return (
        cv2.resize(first, size, interpolation=cv2.INTER_AREA),
        cv2.resize(second, size, interpolation=cv2.INTER_AREA),
    )


def _match(gray_left: np.ndarray, gray_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sift = cv2.SIFT_create(nfeatures=4000)
    kp_left, desc_left = sift.detectAndCompute(gray_left, None)
    kp_right, desc_right = sift.detectAndCompute(gray_right, None)
    if min(len(kp_left), len(kp_right)) < MIN_KEYPOINTS:
        raise _fail(
            f"Too little texture: {len(kp_left)} and {len(kp_right)} features found (need {MIN_KEYPOINTS}).",
            "Use photos of a textured, well-lit scene (plain walls, sky or black frames cannot be matched).",
        )
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_left, desc_right, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < MIN_INLIERS:
        raise _fail(
            f"Too few matches between the photos: {len(good)} (need {MIN_INLIERS}).",
            "The photos must show the same scene with plenty of overlap.",
        )
    pts_left = np.float64([kp_left[m.queryIdx].pt for m in good])
    pts_right = np.float64([kp_right[m.trainIdx].pt for m in good])
    return pts_left, pts_right


def _relative_pose(pts_left: np.ndarray, pts_right: np.ndarray, K: np.ndarray):
    E, mask = cv2.findEssentialMat(
        pts_left, pts_right, K, method=cv2.RANSAC, prob=0.999, threshold=1.0
    )
    if E is None or E.shape != (3, 3):
        raise _fail(
            "No consistent relative pose between the photos.",
            "Use two photos of the same static scene.",
        )
    inliers, R, t, mask = cv2.recoverPose(E, pts_left, pts_right, K, mask=mask)
    if inliers < MIN_INLIERS:
        raise _fail(
            f"Only {inliers} matches agree on one camera motion (need {MIN_INLIERS}).",
            "Use two photos of the same static scene with more overlap.",
        )
    # Parallax after undoing the rotation: a pure rotation (or no motion) leaves none.
    keep = mask.ravel() > 0
    rays = np.linalg.inv(K) @ np.c_[pts_left[keep], np.ones(keep.sum())].T
    rotated = K @ (R @ rays)
    rotated = (rotated[:2] / rotated[2]).T
    parallax = float(np.median(np.linalg.norm(rotated - pts_right[keep], axis=1)))
    if parallax < MIN_PARALLAX_PX:
        raise _fail(
            f"The camera barely moved between the photos (median parallax {parallax:.1f} px): a pure rotation or the same viewpoint gives no depth.",
            "Step sideways between the two photos (about a tenth of the distance to the subject).",
        )
    return R, t / np.linalg.norm(t), int(inliers)


def _dense_points(left, right, gray_left, gray_right, K, R, t):
    height, width = gray_left.shape
    size = (width, height)
    zero = np.zeros(5)
    R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(
        K, zero, K, zero, size, R, t, alpha=1, flags=cv2.CALIB_ZERO_DISPARITY
    )
    map_left = cv2.initUndistortRectifyMap(K, zero, R1, P1, size, cv2.CV_32FC1)
    map_right = cv2.initUndistortRectifyMap(K, zero, R2, P2, size, cv2.CV_32FC1)
    rect_left = cv2.remap(gray_left, *map_left, cv2.INTER_LINEAR)
    rect_right = cv2.remap(gray_right, *map_right, cv2.INTER_LINEAR)
    vertical = abs(P2[1, 3]) > abs(P2[0, 3])
    if vertical:  # a mostly vertical baseline: match along columns by transposing
        rect_left, rect_right = rect_left.T.copy(), rect_right.T.copy()
    # Disparities are positive when view 1 sits on the rectified +x side of view 0.
    positive = (P2[1, 3] if vertical else P2[0, 3]) < 0
    num_disp = 16 * max(4, -(-rect_left.shape[1] // 3) // 16)
    min_disp = 0 if positive else -num_disp
    block = 5
    params = dict(
        minDisparity=min_disp,
        numDisparities=num_disp,
        blockSize=block,
        P1=8 * block * block,
        P2=32 * block * block,
        disp12MaxDiff=1,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )
    matcher = cv2.StereoSGBM_create(**params)
    disparity = matcher.compute(rect_left, rect_right).astype(np.float32) / 16.0
    # Left-right check: match right->left on mirrored images (same matcher, no contrib module)
    # and keep pixels whose two disparities agree.
    back = (
        np.fliplr(
            matcher.compute(np.fliplr(rect_right).copy(), np.fliplr(rect_left).copy())
        ).astype(np.float32)
        / 16.0
    )
    confidence = _lr_confidence(disparity, back)
    if vertical:
        disparity, confidence = disparity.T.copy(), confidence.T.copy()
    valid = (disparity > min_disp - 0.5) & (confidence > 0) & (np.abs(disparity) > 0.5)
    if valid.mean() < 0.05:
        raise _fail(
            f"Dense matching found depth for only {valid.mean():.0%} of the image.",
            "Use sharper, textured photos with more overlap and a moderate sideways step.",
        )
    points_rect = cv2.reprojectImageTo3D(disparity, Q)
    # Back from the rectified frame of view 0 to view 0's camera frame; rectified pixels map
    # back to the original image through R1 and K for colours.
    points = points_rect[valid] @ R1  # R1^T applied to row vectors
    keep = np.isfinite(points).all(axis=1) & (points[:, 2] > 1e-3)
    points, conf = points[keep], confidence[valid][keep]
    projected = (K @ points.T).T
    pixels = projected[:, :2] / projected[:, 2:3]
    inside = (
        (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    )
    points, conf, pixels = points[inside], conf[inside], pixels[inside]
    colours = left[pixels[:, 1].astype(int), pixels[:, 0].astype(int)].astype(np.float32) / 255.0
    if len(points) < 100:
        raise _fail(
            "Dense matching produced almost no points.", "Use photos with more texture and overlap."
        )
    return points, colours, conf


def _lr_confidence(disparity: np.ndarray, back: np.ndarray) -> np.ndarray:
    """1 where left->right and right->left disparities agree within a pixel, tapering to 0."""
    height, width = disparity.shape
    cols = np.arange(width)[None, :] - np.round(disparity).astype(int)
    cols = np.clip(cols, 0, width - 1)
    other = np.take_along_axis(back, cols, axis=1)
    difference = np.abs(disparity - other)
    return np.clip(1.0 - difference / 2.0, 0.0, 1.0).astype(np.float32)


def _gaussians(
    points: np.ndarray, colours: np.ndarray, confidence: np.ndarray, focal: float
) -> GaussianScene:
    if len(points) > MAX_GAUSSIANS:
        pick = np.random.default_rng(0).choice(len(points), MAX_GAUSSIANS, replace=False)
        points, colours, confidence = points[pick], colours[pick], confidence[pick]
    n = len(points)
    footprint = points[:, 2] / focal * 1.2  # one pixel's width at that depth, slightly overlapping
    sh = ((colours - 0.5) / SH_C0)[:, None, :]
    quats = np.zeros((n, 4), np.float32)
    quats[:, 0] = 1.0
    opacity = 0.5 + 0.45 * confidence
    return GaussianScene(
        means=torch.from_numpy(points.astype(np.float32)),
        quats=torch.from_numpy(quats),
        scales=torch.from_numpy(np.repeat(footprint[:, None], 3, axis=1).astype(np.float32)),
        opacities=torch.from_numpy(opacity.astype(np.float32)),
        sh=torch.from_numpy(sh.astype(np.float32)),
    )
