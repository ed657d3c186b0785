"""The window policy: partition, seams, conditioning order, short paths."""

from __future__ import annotations

import numpy as np
import pytest
from videoscene_backend.scene.flythrough import interpolate_path
from videoscene_backend.video.windows import describe, plan_windows, window_count

REAL_F = 49


@pytest.mark.parametrize("count", [1, 2, 48, 49, 50, 97, 1000])
@pytest.mark.parametrize("model_frames", [REAL_F, 9])
def test_every_frame_comes_from_exactly_one_window(count, model_frames) -> None:
    windows = plan_windows(count, model_frames)
    delivered = [frame for w in windows for frame, _ in w.outputs]
    assert delivered == list(range(count))  # each frame once, in order
    for window in windows:
        assert len(window.positions) == model_frames
        for frame, model_frame in window.outputs:
            assert window.positions[model_frame] == frame  # the output shows its own camera
    assert window_count(count, model_frames) == len(windows)


@pytest.mark.parametrize("count", [49, 50, 97, 1000])
def test_windows_share_their_boundary_frame(count) -> None:
    windows = plan_windows(count, REAL_F)
    assert windows[0].seam is None and windows[0].positions[0] == 0
    assert windows[-1].positions[-1] == count - 1  # the last window ends with the path
    for before, after in zip(windows, windows[1:], strict=False):
        # The next window starts on the last frame the previous one delivered, and that frame
        # conditions it.
        assert after.seam == before.last_output == after.positions[0]
        assert after.first_output == after.seam + 1
    for window in windows[:-1]:  # all but the last keep the stride F - 1
        assert window.positions[0] == window.index * (REAL_F - 1)


def test_window_counts_and_end_alignment() -> None:
    assert [len(plan_windows(n, REAL_F)) for n in (1, 2, 48, 49, 50, 97, 98, 1000)] == [
        1, 1, 1, 1, 2, 2, 3, 21,
    ]  # fmt: skip
    last = plan_windows(50, REAL_F)[-1]
    assert last.positions[0] == 1 and last.seam == 1  # aligned to the end: frames 1..49
    # It takes over after its seam: window 0 delivers frames 0 and 1, the last 2..49.
    assert [frame for frame, _ in last.outputs] == list(range(2, 50))
    exact = plan_windows(97, REAL_F)
    assert exact[1].positions[0] == 48 and exact[1].seam == 48  # 97 = 2 x 48 + 1: no overlap
    assert describe(exact, REAL_F)["seams"] == [48]


@pytest.mark.parametrize("count", [2, 5, 48])
def test_short_paths_are_sampled_up_to_the_model_length(count) -> None:
    (window,) = plan_windows(count, REAL_F)
    positions = np.array(window.positions)
    assert positions[0] == 0 and positions[-1] == count - 1
    assert (np.diff(positions) > 0).all()  # monotonic, no repeated instants
    anchors = [model for _, model in window.outputs]
    assert anchors[0] == 0 and anchors[-1] == REAL_F - 1
    assert [positions[m] for m in anchors] == list(range(count))  # exactly the requested cameras


def test_one_camera_is_a_still() -> None:
    (window,) = plan_windows(1, REAL_F)
    assert window.positions == (0.0,) * REAL_F and window.outputs == ((0, 0),)


def test_interpolated_cameras_hit_the_path_at_whole_positions() -> None:
    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[1, :3, 3] = (1.0, 0.0, 0.0)
    c2w[2, :3, 3] = (1.0, 2.0, 0.0)
    angle = np.radians(30.0)
    c2w[2, :3, :3] = [
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ]
    K = np.tile(np.diag([100.0, 100.0, 1.0]), (3, 1, 1))
    K[2, 0, 0] = K[2, 1, 1] = 200.0
    out_c2w, out_K = interpolate_path(c2w, K, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert np.allclose(out_c2w[[0, 2, 4]], c2w) and np.allclose(out_K[[0, 2, 4]], K)
    assert np.allclose(out_c2w[1, :3, 3], (0.5, 0.0, 0.0))
    assert np.allclose(out_K[3, 0, 0], 150.0)
    half = np.degrees(np.arccos((np.trace(out_c2w[3, :3, :3]) - 1) / 2))
    assert half == pytest.approx(15.0)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_windows(0, REAL_F)
    with pytest.raises(ValueError):
        plan_windows(10, 1)


def test_coarse_blocks_cover_the_path_without_overlap() -> None:
    from videoscene_backend.video.windows import plan_blocks

    blocks = plan_blocks(100, REAL_F)
    assert [(b.first_output, b.last_output) for b in blocks] == [(0, 48), (49, 97), (98, 99)]
    assert [f for b in blocks for f, _ in b.outputs] == list(range(100))
