"""Dense disparity on the oriented rectified pair: the search range from the scene, semi-global
block matching in both directions, a soft left-right check, and an edge-aware fill.

- Range: the inlier matches, rectified, bound the disparities; the search covers them with a
  margin instead of a fixed fraction of the width (which cost time and, through SGBM's
  unmatched border of min+num disparities, most of the image). The margin above is wider: the
  nearest surfaces (a floor's bottom rows, a table's front edge) lie at the photo's border,
  where features are fewest, so they are often nearer than any match. Below, the matches'
  margin suffices: a search reaching down to zero disparity gives the repetitive and the
  weakly textured surfaces more ways to mismatch.
- Both passes run on images padded by that border, so every column of the canvas is matched.
- Left-right check: each view's disparity is compared with the other view's at the matched
  position (linear interpolation, so sub-pixel disagreement counts as such); the confidence
  falls linearly from 1 at LR_AGREE_PX to 0 at LR_REJECT_PX.
- Photo borders: a match whose block (or the matched block in the other view) reaches beyond
  that view's photo is no match: the black outside both photos, and the photo's edge against
  it, match each other consistently in both directions at the offset of the two borders, and
  the left-right check cannot tell.
- Fill: a confidence-weighted fast global smoother (OpenCV contrib's ximgproc, the solver behind
  its disparity WLS filter) guided by the view's own colours, so unmatched pixels take the
  disparity of the confident pixels of the same surface. Matched pixels keep their own value,
  blended towards the fill as their confidence drops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RANGE_PERCENTILES = (0.5, 99.5)  # of the rectified match disparities; trims stray matches
RANGE_MARGIN_FRACTION = 0.15  # of the matched range, on each side
RANGE_MARGIN_MIN_PX = 6.0
RANGE_HEADROOM_FRACTION = 0.25  # of the largest matched disparity, above it (if more than margin)
MAX_VERTICAL_RESIDUAL_PX = 2.0  # rectified matches off their row are not used for the range
BLOCK_SIZE = 5
LR_AGREE_PX = 0.5
LR_REJECT_PX = 2.0
CONFIDENT = 0.5  # below: the pixel's disparity is the fill's ("filled")
FILL_LAMBDA = 4000.0
FILL_SIGMA_COLOR = 1.5
FILLED_CONFIDENCE_MAX = 0.4  # a filled pixel's confidence: this times the fill's local support


@dataclass(frozen=True)
class SearchRange:
    min_disparity: int
    num_disparities: int  # a multiple of 16, as SGBM requires

    @property
    def max_disparity(self) -> int:
        return self.min_disparity + self.num_disparities


@dataclass
class DisparityMap:
    """One view's dense disparity on the oriented rectified canvas."""

    disparity: np.ndarray  # (H, W) float32 px, every pixel
    confidence: np.ndarray  # (H, W) float32 in [0, 1]
    filled: np.ndarray  # (H, W) bool: no confident match, the value comes from the fill


def search_range(match_disparities: np.ndarray, canvas_width: int) -> SearchRange:
    """The disparity search covering the matched disparities with a margin."""
    low, high = np.percentile(match_disparities, RANGE_PERCENTILES)
    margin = max(RANGE_MARGIN_MIN_PX, RANGE_MARGIN_FRACTION * (high - low))
    min_disparity = int(np.floor(low - margin))
    top = high + max(margin, RANGE_HEADROOM_FRACTION * high)
    count = int(np.ceil((top - min_disparity) / 16.0)) * 16
    most = max(16, canvas_width // 2 // 16 * 16)
    return SearchRange(min_disparity, int(np.clip(count, 16, most)))


def match_disparities(
    left: np.ndarray, right: np.ndarray, max_residual: float = MAX_VERTICAL_RESIDUAL_PX
) -> np.ndarray:
    """Disparities of oriented rectified matches (N, 2) that lie on the same row (and not
    beyond infinity)."""
    disparity = left[:, 0] - right[:, 0]
    # Negative disparities lie beyond infinity: mismatches, which would stretch the search.
    keep = (np.abs(left[:, 1] - right[:, 1]) <= max_residual) & (disparity > -max_residual)
    return disparity[keep].astype(np.float64)


def _matcher(search: SearchRange, channels: int) -> cv2.StereoSGBM:
    area = BLOCK_SIZE * BLOCK_SIZE * channels
    return cv2.StereoSGBM_create(
        minDisparity=search.min_disparity,
        numDisparities=search.num_disparities,
        blockSize=BLOCK_SIZE,
        P1=8 * area,
        P2=32 * area,
        disp12MaxDiff=-1,  # the soft left-right check below replaces SGBM's hard one
        uniquenessRatio=5,
        speckleWindowSize=100,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )


def _matched_columns(
    matcher: cv2.StereoSGBM, reference: np.ndarray, other: np.ndarray, search: SearchRange
) -> np.ndarray:
    """SGBM disparities (1/16 px) of every column of `reference`: SGBM leaves the first
    max_disparity columns (and, for negative minimums, the last -min_disparity) unmatched, so
    the pair is padded by that much and the padding cut off again."""
    left_pad, right_pad = max(0, search.max_disparity), max(0, -search.min_disparity)
    padded = [
        cv2.copyMakeBorder(im, 0, 0, left_pad, right_pad, cv2.BORDER_CONSTANT, value=0)
        for im in (reference, other)
    ]
    raw = matcher.compute(padded[0], padded[1])
    return raw[:, left_pad : raw.shape[1] - right_pad]


def raw_disparities(
    left: np.ndarray, right: np.ndarray, search: SearchRange
) -> tuple[np.ndarray, np.ndarray]:
    """SGBM left->right and right->left (on mirrored images), NaN where nothing matched.
    Both are positive: x_left = x_right + d."""
    matcher = _matcher(search, 1 if left.ndim == 2 else left.shape[2])
    forward = _matched_columns(matcher, left, right, search)
    mirrored = [np.ascontiguousarray(np.fliplr(im)) for im in (right, left)]
    backward = np.fliplr(_matched_columns(matcher, *mirrored, search))
    out = []
    for raw in (forward, backward):
        disparity = raw.astype(np.float32) / 16.0
        disparity[disparity < search.min_disparity] = np.nan
        out.append(disparity)
    return out[0], out[1]


def lr_confidence(own: np.ndarray, other: np.ndarray, direction: int) -> np.ndarray:
    """Agreement of `own` with `other` sampled where own's disparity points (direction -1 for
    the left view, whose match lies at x - d; +1 for the right view)."""
    height, width = own.shape
    xs = np.arange(width, dtype=np.float32)[None, :] + direction * np.nan_to_num(own, nan=0.0)
    ys = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    # Replicated borders, so that the last row and column interpolate cleanly; a match that
    # falls outside the other view is no match.
    sampled = cv2.remap(other, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sampled[(xs < 0) | (xs > width - 1)] = np.nan
    difference = np.abs(own - sampled)
    confidence = (LR_REJECT_PX - difference) / (LR_REJECT_PX - LR_AGREE_PX)
    return np.clip(np.nan_to_num(confidence, nan=0.0), 0.0, 1.0).astype(np.float32)


def inside_photos(
    own: np.ndarray, direction: int, own_mask: np.ndarray, other_mask: np.ndarray
) -> np.ndarray:
    """True where the block around a pixel and the block around its match both lie inside the
    photos (masks of the oriented canvas; direction as in lr_confidence)."""
    # SGBM's block plus its 3x3 Sobel prefilter: pixels nearer the border see the outside.
    reach = BLOCK_SIZE // 2 + 1
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    # Beyond the canvas is outside the photo too (SGBM sees the black padding there).
    own_inner, other_inner = (
        cv2.erode(m.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        for m in (own_mask, other_mask)
    )
    height, width = own.shape
    xs = np.round(np.arange(width)[None, :] + direction * np.nan_to_num(own, nan=0.0))
    cols = np.clip(xs, 0, width - 1).astype(np.int64)
    rows = np.broadcast_to(np.arange(height)[:, None], own.shape)
    return (own_inner > 0) & (other_inner[rows, cols] > 0) & (xs >= 0) & (xs <= width - 1)


def fill(
    disparity: np.ndarray, confidence: np.ndarray, guide: np.ndarray, photo_mask: np.ndarray
) -> DisparityMap:
    """Edge-aware, confidence-weighted fill of every pixel (see the module docstring)."""
    confidence = np.where(photo_mask, confidence, 0.0).astype(np.float32)
    values = np.nan_to_num(disparity, nan=0.0).astype(np.float32)
    smoother = cv2.ximgproc.createFastGlobalSmootherFilter(guide, FILL_LAMBDA, FILL_SIGMA_COLOR)
    support = smoother.filter(confidence)
    weighted = smoother.filter(values * confidence)
    confident = confidence >= CONFIDENT
    fallback = float(np.median(values[confident])) if confident.any() else 0.0
    filled_values = np.where(support > 1e-4, weighted / np.maximum(support, 1e-4), fallback)
    blend = np.where(confident, confidence, 0.0)
    result = blend * values + (1.0 - blend) * filled_values
    filled_confidence = FILLED_CONFIDENCE_MAX * np.clip(support, 0.0, 1.0)
    return DisparityMap(
        disparity=result.astype(np.float32),
        confidence=np.where(confident, confidence, filled_confidence).astype(np.float32),
        filled=~confident,
    )


def dense_disparity(
    left: np.ndarray,
    right: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray],
    search: SearchRange,
) -> tuple[DisparityMap, DisparityMap]:
    """Both views' filled disparity maps; images are the oriented rectified colour photos."""
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right)]
    forward, backward = raw_disparities(gray[0], gray[1], search)
    maps = []
    for own, other, direction, guide, (mask, other_mask) in (
        (forward, backward, -1, left, masks),
        (backward, forward, +1, right, masks[::-1]),
    ):
        inside = inside_photos(own, direction, mask, other_mask)
        confidence = np.where(inside, lr_confidence(own, other, direction), 0.0)
        maps.append(fill(own, confidence, guide, mask))
    return maps[0], maps[1]
