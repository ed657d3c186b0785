"""Relative pose from SIFT matches: essential matrix (RANSAC), cheirality, and the refusals
for too little texture, too few matches and a camera that did not move."""

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


def match(gray_left: np.ndarray, gray_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sift = cv2.SIFT_create(nfeatures=MAX_FEATURES)
    kp_left, desc_left = sift.detectAndCompute(gray_left, None)
    kp_right, desc_right = sift.detectAndCompute(gray_right, None)
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
    if parallax < MIN_PARALLAX_PX:
        raise prior_failed(
            f"The camera barely moved between the photos (median parallax {parallax:.1f} px): a pure rotation or the same viewpoint gives no depth.",
            "Step sideways between the two photos (about a tenth of the distance to the subject).",
        )
    t = t.ravel() / np.linalg.norm(t)
    return RelativePose(
        R, t, len(pts_left), int(inliers), (pts_left[consistent], pts_right[consistent])
    )
