"""The path frames a fit does not learn from still seed: no holes along the path between the
chosen frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from videoscene_backend.fit import FitSettings, fit_inputs, fit_scene, video_views
from videoscene_backend.fit import views as fit_views
from videoscene_backend.fit.optimise import _concatenated, hole_seeds
from videoscene_backend.fit.views import FrameViews, affordable_views, chosen_frames, other_frames
from videoscene_backend.scene.gaussians import GaussianScene

from . import synthetic
from .synthetic import HEIGHT, WIDTH

SETTINGS = FitSettings(iterations=12, downscale=1.0, refine_prior=False)


def _path() -> tuple[np.ndarray, np.ndarray]:
    """Out and back: the two ends (the fit's chosen frames) at the parent's middle, the turn
    far to the left, where only the frames between the ends look."""
    c2w, K = synthetic.panning_cameras(5)
    c2w[:, 0, 3] = [0.0, -1.0, -1.8, -1.0, 0.0]
    return c2w, K


def test_other_frames_are_the_rest_in_order():
    chosen = chosen_frames(9, 3)
    assert chosen == [0, 4, 8]
    assert other_frames(9, chosen) == [1, 2, 3, 5, 6, 7]
    assert other_frames(3, [0, 1, 2]) == []


def test_coverage_views_fill_what_only_the_other_frames_see():
    truth, parent = synthetic.wall(4.0), synthetic.wall(1.2)
    c2w, K = _path()
    frames = synthetic.frames_of(truth, c2w, K)
    chosen = chosen_frames(len(frames), 2)
    assert chosen == [0, 4]
    views = video_views(lambda i: frames[i], c2w, K, chosen, SETTINGS.downscale)
    others = video_views(
        lambda i: frames[i], c2w, K, other_frames(len(frames), chosen), SETTINGS.downscale
    )
    ignore = lambda *_: None  # noqa: E731
    without, _ = fit_scene(parent, views, SETTINGS, ignore, lambda: None)
    fitted, report = fit_scene(parent, views, SETTINGS, ignore, lambda: None, coverage=others)
    turn = slice(2, 3)
    assert synthetic.black_fraction(truth, c2w[turn], K[turn]) < 0.01
    assert synthetic.black_fraction(without, c2w[turn], K[turn]) > 0.2  # the gap it leaves
    assert synthetic.black_fraction(fitted, c2w, K) < 0.01
    assert report.views == len(views)  # coverage views seed; they are not learned from


def test_hole_seeds_fill_only_what_the_scene_leaves_uncovered():
    truth, parent = synthetic.wall(4.0), synthetic.wall(1.2)
    c2w, K = _path()
    frames = synthetic.frames_of(truth, c2w, K)
    middle = video_views(lambda i: frames[i], c2w, K, [0], SETTINGS.downscale)
    turn = video_views(lambda i: frames[i], c2w, K, [2], SETTINGS.downscale)
    assert len(hole_seeds(truth, middle, SETTINGS, lambda: None)) == 0  # nothing uncovered
    holes = hole_seeds(parent, turn, SETTINGS, lambda: None)
    uncovered = synthetic.black_fraction(parent, c2w[2:3], K[2:3]) * WIDTH * HEIGHT
    assert abs(len(holes) - uncovered) <= 0.02 * WIDTH * HEIGHT  # one seed per uncovered pixel
    filled = _concatenated(parent, holes.as_scene(parent.sh_degree))
    assert synthetic.black_fraction(filled, c2w[2:3], K[2:3]) < 0.01
    # coloured by the view: the filled render matches the frame where the parent left a hole
    rendered = synthetic.frames_of(filled, c2w[2:3], K[2:3])[0].astype(float)
    assert np.abs(rendered - frames[2]).mean() < 20


def _slit_wall(gap: float) -> GaussianScene:
    """A dense wall (Gaussians a third of a pixel apart at the test camera) with a vertical
    slit of half-width `gap` at x = 0, which the camera at the origin sees at its centre
    column."""
    full = synthetic.wall(2.4, spacing=0.02)
    keep = full.means[:, 0].abs() >= gap
    return GaussianScene(
        full.means[keep],
        full.quats[keep],
        full.scales[keep],
        full.opacities[keep],
        full.sh[keep],
        reference_cameras=full.reference_cameras,
    )


def test_the_hole_pass_at_the_frames_size_fills_what_the_fit_size_misses():
    """A fit at a quarter of the frames' size looks at every fourth frame pixel: a slit two
    frame pixels wide that falls between two fit pixels' centres is not seen at the fit size,
    and the path would show it black. The hole pass at the frames' own size fills it."""
    truth, parent = synthetic.wall(2.4, spacing=0.02), _slit_wall(0.14)
    c2w, K = synthetic.panning_cameras(3, reach=0.0)  # three frames at the origin
    frames = synthetic.frames_of(truth, c2w, K)
    settings = FitSettings(iterations=6, downscale=4.0, refine_prior=False)
    inputs = fit_inputs(
        lambda i: frames[i], c2w, K, len(frames), (WIDTH, HEIGHT), parent, 4.0, 2, False
    )
    assert inputs.indices == [0, 2] and len(inputs.holes) == len(frames)
    assert inputs.holes[1].width == WIDTH and inputs.views[0].width == WIDTH // 4
    slit = synthetic.black_fraction(parent, c2w[:1], K[:1])
    assert 1 / WIDTH <= slit <= 3 / WIDTH  # one to three columns of the frame
    ignore = lambda *_: None  # noqa: E731
    args = (parent, inputs.views, settings, ignore, lambda: None, inputs.coverage)
    at_fit_size, _ = fit_scene(*args)
    at_frame_size, report = fit_scene(*args, inputs.holes)
    assert synthetic.black_fraction(at_fit_size, c2w, K) >= 0.9 * slit  # the fit missed it
    assert report.hole_seeded >= HEIGHT  # a seed per slit pixel at least
    assert synthetic.black_fraction(at_frame_size, c2w, K) == 0.0
    rendered = synthetic.frames_of(at_frame_size, c2w[:1], K[:1])[0].astype(float)
    assert np.abs(rendered - frames[0])[:, WIDTH // 2 - 2 : WIDTH // 2 + 2].mean() < 20


def test_frame_views_read_a_frame_only_when_asked():
    c2w, K = synthetic.panning_cameras(4)
    frames = synthetic.frames_of(synthetic.wall(1.0), c2w, K)
    reads: list[int] = []
    views = FrameViews(lambda i: reads.append(i) or frames[i], c2w, K, [1, 3], 1.0)
    assert len(views) == 2 and reads == []
    assert views[-1].name == "frame 3" and reads == [3]
    assert [v.name for v in views] == ["frame 1", "frame 3"]
    assert np.allclose(views[0].image.numpy() * 255, frames[1], atol=0.5)


def test_pixels_that_show_the_background_are_not_seeded():
    """Coarse frames show the render's background where the scene is empty: a fit to them
    adds no Gaussians of empty space, while the same frames with nothing said of the
    background seed every empty pixel."""
    parent = synthetic.wall(1.2)
    c2w, K = synthetic.panning_cameras(3)
    frames = synthetic.frames_of(parent, c2w, K)  # black where the wall ends
    assert synthetic.black_fraction(parent, c2w, K) > 0.2
    views = video_views(lambda i: frames[i], c2w, K, range(3), 1.0)
    ignore = lambda *_: None  # noqa: E731
    empty_is_black, report = fit_scene(parent, views, SETTINGS, ignore, lambda: None)
    assert report.seeded == report.hole_seeded == 0
    assert empty_is_black.num_gaussians == parent.num_gaussians
    unknown = FitSettings(iterations=12, downscale=1.0, refine_prior=False, background=None)
    _, report = fit_scene(parent, views, unknown, ignore, lambda: None)
    assert report.seeded > 0


def test_a_fit_learns_from_no_more_frames_than_its_memory_holds(monkeypatch):
    """A long path of large frames spreads its learned views more thinly instead of holding
    them all: the others are read only when the seeding or the hole pass asks for them."""
    per_view = WIDTH * HEIGHT * fit_views.BYTES_PER_VIEW_PIXEL
    monkeypatch.setattr(fit_views, "VIEW_MEMORY_BYTES", 3 * per_view + per_view // 2)
    assert affordable_views(WIDTH, HEIGHT, 1.0) == 3
    assert affordable_views(WIDTH, HEIGHT, 2.0) == 14  # a quarter of the pixels a view
    assert affordable_views(WIDTH, HEIGHT, 1.0, photo_pixels=2 * WIDTH * HEIGHT) == 1
    assert affordable_views(WIDTH, HEIGHT, 1.0, photo_pixels=5 * WIDTH * HEIGHT) == 1
    c2w, K = synthetic.panning_cameras(9)
    frames = synthetic.frames_of(synthetic.wall(2.0), c2w, K)
    reads: list[int] = []
    read = lambda i: reads.append(i) or frames[i]  # noqa: E731
    inputs = fit_inputs(read, c2w, K, 9, (WIDTH, HEIGHT), synthetic.wall(1.2), 1.0, None, False)
    assert inputs.indices == [0, 4, 8] and inputs.views_wanted == 9
    assert [v.name for v in inputs.views] == ["frame 0", "frame 4", "frame 8"]
    assert reads == [0, 4, 8]  # each chosen frame read once, nothing else yet
    assert len(inputs.coverage) == 6 and len(inputs.holes) == 9
    assert [v.name for v in inputs.coverage][:2] == ["frame 1", "frame 2"]
    within = fit_inputs(read, c2w, K, 9, (WIDTH, HEIGHT), synthetic.wall(1.2), 1.0, 2, False)
    assert within.indices == [0, 8] and within.views_wanted == 2  # max_views below the cap


def test_the_docs_name_the_fits_memory_for_views():
    root = Path(__file__).resolve().parents[2]
    stated = f"{fit_views.VIEW_MEMORY_BYTES // 2**30} GiB"
    for doc in ("docs/protocol.md", "docs/fit-scene.md"):
        assert stated in (root / doc).read_text(), f"{doc} should say the fit holds {stated}"
    assert (
        f"{fit_views.BYTES_PER_VIEW_PIXEL} bytes a pixel" in (root / "docs/protocol.md").read_text()
    )
