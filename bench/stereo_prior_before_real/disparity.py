# Copied from videoscene_backend.priors.stereo.disparity at 4c100db (issue #35's in-run baseline for
# bench/real_photos.py; imports made absolute). Not used by the backend.
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
- Guide: the inlier matches (SIFT's descriptors see far more context than a 5x5 block) are
  interpolated into a smooth disparity where they are dense enough; a block match far from it
  loses its confidence. On repetitive texture (stripes, bricks along the baseline) SGBM can
  settle, consistently in both directions, on another period, which the left-right check cannot
  see; the matches can.
- Fill: a confidence-weighted fast global smoother (OpenCV contrib's ximgproc, the solver behind
  its disparity WLS filter) guided by the view's own colours, so unmatched pixels take the
  disparity of the confident pixels of the same surface. Matched pixels keep their own value,
  blended towards the fill as their confidence drops. The guide enters the fill with a small
  weight, so that a surface with no confident match at all takes the matches' disparity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RANGE_PERCENTILES = (0.5, 99.5)  # of the rectified match disparities; trims stray matches
RANGE_MARGIN_FRACTION = 0.15  # of the matched range, on each side
RANGE_MARGIN_MIN_PX = 6.0
RANGE_HEADROOM_FRACTION = 0.25  # of the largest matched disparity, above it (if more than margin)
MAX_VERTICAL_RESIDUAL_PX = 2.0  # rectified matches off their row are not used
BLOCK_SIZE = 5
LR_AGREE_PX = 0.5
LR_REJECT_PX = 2.0
CONFIDENT = 0.5  # below: the pixel's disparity is the fill's ("filled")
FILL_LAMBDA = 4000.0
FILL_SIGMA_COLOR = 1.5
FILLED_CONFIDENCE_MAX = 0.4  # a filled pixel's confidence: this times the fill's local support
# The guide: the inlier matches interpolated by normalized convolution at the finest of these
# widths where at least GUIDE_MIN_MATCHES lie within about one width (none: no guide there).
GUIDE_SIGMAS_PX = (12.0, 24.0)
GUIDE_MIN_MATCHES = 3.0
# A block match agrees fully within GUIDE_AGREE of the guide and not at all beyond GUIDE_REJECT,
# each (px, fraction of the guide's disparity): wide, because the guide is smooth across the
# depth edges it does not see.
GUIDE_AGREE = (3.0, 0.10)
GUIDE_REJECT = (8.0, 0.25)
GUIDE_FILL_WEIGHT = 0.05  # the guide's weight in the fill, against a confident match's 1


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


@dataclass(frozen=True)
class SparseMatches:
    """Inlier matches on the oriented rectified canvas: positions in each view and their
    disparity (x_left - x_right)."""

    left: np.ndarray  # (N, 2)
    right: np.ndarray  # (N, 2)
    disparity: np.ndarray  # (N,)


def sparse_matches(
    left: np.ndarray, right: np.ndarray, max_residual: float = MAX_VERTICAL_RESIDUAL_PX
) -> SparseMatches:
    """The oriented rectified matches (N, 2) that lie on the same row (and not beyond
    infinity)."""
    # Negative disparities lie beyond infinity: mismatches, which would stretch the search.
    disparity = left[:, 0] - right[:, 0]
    keep = (np.abs(left[:, 1] - right[:, 1]) <= max_residual) & (disparity > -max_residual)
    return SparseMatches(left[keep], right[keep], disparity[keep].astype(np.float64))


def search_range(match_disparities: np.ndarray, canvas_width: int) -> SearchRange:
    """The disparity search covering the matched disparities with a margin."""
    low, high = np.percentile(match_disparities, RANGE_PERCENTILES)
    margin = max(RANGE_MARGIN_MIN_PX, RANGE_MARGIN_FRACTION * (high - low))
    min_disparity = int(np.floor(low - margin))
    top = high + max(margin, RANGE_HEADROOM_FRACTION * high)
    count = int(np.ceil((top - min_disparity) / 16.0)) * 16
    most = max(16, canvas_width // 2 // 16 * 16)
    return SearchRange(min_disparity, int(np.clip(count, 16, most)))


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


def sparse_guide(
    positions: np.ndarray, disparities: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """A smooth disparity (H, W) interpolated from matches at `positions` (N, 2); NaN where
    too few matches lie near (see GUIDE_SIGMAS_PX)."""
    height, width = shape
    values = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    cols, rows = np.round(positions).astype(int).T
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    np.add.at(values, (rows[inside], cols[inside]), disparities[inside].astype(np.float32))
    np.add.at(weight, (rows[inside], cols[inside]), 1.0)
    guide = np.full((height, width), np.nan, np.float32)
    for sigma in GUIDE_SIGMAS_PX:
        support = cv2.GaussianBlur(weight, (0, 0), sigma)
        smooth = cv2.GaussianBlur(values, (0, 0), sigma) / np.maximum(support, 1e-12)
        # support * 2 pi sigma^2: the number of matches, Gaussian-weighted, around the pixel
        enough = np.isnan(guide) & (support * 2 * np.pi * sigma * sigma >= GUIDE_MIN_MATCHES)
        guide[enough] = smooth[enough]
    return guide


def guide_agreement(disparity: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """1 where a block match agrees with the guide (or there is no guide), falling to 0 (also
    for no match) as it departs (see GUIDE_AGREE)."""
    known = ~np.isnan(guide)
    reference = np.where(known, guide, 0.0)
    difference = np.where(known, np.abs(np.nan_to_num(disparity, nan=-1e6) - reference), 0.0)
    agree = GUIDE_AGREE[0] + GUIDE_AGREE[1] * np.abs(reference)
    reject = GUIDE_REJECT[0] + GUIDE_REJECT[1] * np.abs(reference)
    return np.clip((reject - difference) / (reject - agree), 0.0, 1.0).astype(np.float32)


def fill(
    disparity: np.ndarray,
    confidence: np.ndarray,
    colours: np.ndarray,
    photo_mask: np.ndarray,
    guide: np.ndarray | None = None,
) -> DisparityMap:
    """Edge-aware, confidence-weighted fill of every pixel (see the module docstring); `guide`
    is the matches' disparity (NaN where unknown)."""
    confidence = np.where(photo_mask, confidence, 0.0).astype(np.float32)
    values = np.nan_to_num(disparity, nan=0.0).astype(np.float32)
    smoother = cv2.ximgproc.createFastGlobalSmootherFilter(colours, FILL_LAMBDA, FILL_SIGMA_COLOR)
    evidence, evidence_values = confidence, values * confidence
    if guide is not None:
        weight = np.where(photo_mask & ~np.isnan(guide), GUIDE_FILL_WEIGHT, 0.0)
        evidence = evidence + weight.astype(np.float32)
        evidence_values = evidence_values + (weight * np.nan_to_num(guide, nan=0.0)).astype(
            np.float32
        )
    support = smoother.filter(evidence)
    weighted = smoother.filter(evidence_values)
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
    matches: SparseMatches | None = None,
) -> tuple[DisparityMap, DisparityMap]:
    """Both views' filled disparity maps; images are the oriented rectified colour photos,
    `matches` the inlier matches that guide them (none: SGBM and the fill alone)."""
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right)]
    forward, backward = raw_disparities(gray[0], gray[1], search)
    maps = []
    for view, (own, other, direction, colours) in enumerate(
        ((forward, backward, -1, left), (backward, forward, +1, right))
    ):
        mask, other_mask = masks if view == 0 else masks[::-1]
        inside = inside_photos(own, direction, mask, other_mask)
        confidence = np.where(inside, lr_confidence(own, other, direction), 0.0)
        guide = None
        if matches is not None:
            positions = matches.left if view == 0 else matches.right
            guide = sparse_guide(positions, matches.disparity, own.shape)
            confidence = confidence * guide_agreement(own, guide)
        maps.append(fill(own, confidence, colours, mask, guide))
    return maps[0], maps[1]
