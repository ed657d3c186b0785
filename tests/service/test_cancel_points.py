"""Where a job can stop: the check runs inside the renderers' loops (per frame, per tile batch,
in the backward pass), before every block of the video model and the NoPoSplat network, so a
cancel waits for one such piece of work, never for a whole render batch or model stage."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from videoscene_backend.cancel import checked_blocks
from videoscene_backend.render import render
from videoscene_backend.scene.gaussians import GaussianScene
from videoscene_protocol.errors import ErrorCode, VideoSceneError

ROOT = Path(__file__).resolve().parents[2]


class Stop:
    """A check that raises CANCELLED at its `at`-th call (None: never) and counts calls."""

    def __init__(self, at: int | None = None) -> None:
        self.at, self.calls = at, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.at is not None and self.calls >= self.at:
            raise VideoSceneError(ErrorCode.CANCELLED, "cancelled in the test")


def scene(count: int = 3000, requires_grad: bool = False) -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    means = torch.rand(count, 3, generator=g) * torch.tensor([4.0, 3.0, 2.0])
    means = means - torch.tensor([2.0, 1.5, -3.0])
    return GaussianScene(
        means=means.requires_grad_(requires_grad),
        quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
        scales=torch.rand(count, 3, generator=g) * 0.08 + 0.04,
        opacities=torch.rand(count, generator=g) * 0.5 + 0.5,
        sh=torch.randn(count, 1, 3, generator=g) * 0.5,
    )


def cameras(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c2w = torch.eye(4).repeat(count, 1, 1)
    c2w[:, 0, 3] = torch.linspace(-0.2, 0.2, count)
    K = torch.tensor([[size * 0.9, 0, size / 2], [0, size * 0.9, size / 2], [0, 0, 1.0]])
    return c2w, K.repeat(count, 1, 1)


def test_the_torch_renderer_checks_per_frame_and_per_tile_batch(monkeypatch) -> None:
    from videoscene_backend.render import torch_backend

    # Small batches, so one frame composites in several: each must be preceded by a check.
    monkeypatch.setattr(torch_backend, "BATCH_ELEMENTS", 1 << 16)
    c2w, K = cameras(2, 96)
    counted = Stop()
    with torch.no_grad():
        reference = render(scene(), c2w, K, 96, 96, backend="torch").images
        checked = render(scene(), c2w, K, 96, 96, backend="torch", check_cancelled=counted).images
    assert torch.equal(reference, checked)  # checking changes nothing
    per_frame = counted.calls / 2
    assert per_frame >= 6, counted.calls  # frame + tiles + several batches

    stop = Stop(at=int(per_frame) - 1)  # fires inside the first frame's compositing
    with pytest.raises(VideoSceneError) as info, torch.no_grad():
        render(scene(), c2w, K, 96, 96, backend="torch", check_cancelled=stop)
    assert info.value.code == ErrorCode.CANCELLED and stop.calls == int(per_frame) - 1


def test_the_backward_pass_checks_per_tile_batch(monkeypatch) -> None:
    from videoscene_backend.render import torch_backend

    monkeypatch.setattr(torch_backend, "BATCH_ELEMENTS", 1 << 16)
    c2w, K = cameras(1, 64)
    splats = scene(requires_grad=True)
    counted = Stop()
    out = render(splats, c2w, K, 64, 64, check_cancelled=counted).images
    forward_calls = counted.calls
    out.mean().backward()
    backward_calls = counted.calls - forward_calls
    assert backward_calls >= 3, backward_calls  # one per compositing batch
    assert splats.means.grad is not None

    splats.means.grad = None
    stop = Stop(at=forward_calls + 1)  # the first batch the backward pass reaches
    out = render(splats, c2w, K, 64, 64, check_cancelled=stop).images
    with pytest.raises(VideoSceneError):
        out.mean().backward()


def test_checked_blocks_stop_a_forward_between_blocks_and_leave_no_hooks() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from noposplat.conftest import TINY
    from videoscene_backend.priors.noposplat.network import NoPoSplatNet

    torch.manual_seed(0)
    network = NoPoSplatNet(TINY).eval()
    images = torch.rand(1, 2, 3, TINY.image_size, TINY.image_size) * 2 - 1
    K = torch.tensor([[0.8, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1.0]]).expand(1, 2, 3, 3)
    stop = Stop(at=3)  # the third block of the encoder
    with pytest.raises(VideoSceneError), torch.no_grad(), checked_blocks(stop, network, None):
        network(images, K)
    assert stop.calls == 3
    assert all(not m._forward_pre_hooks for m in network.modules())  # the hooks are gone
    with torch.no_grad():
        network(images, K)  # and the network runs as before
    assert stop.calls == 3


def test_the_video_model_checks_inside_its_stages(tmp_path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from video.conftest import TINY_FRAMES, TINY_SIZE, make_tiny_checkpoint
    from videoscene_backend.video.checkpoints import find_checkpoint
    from videoscene_backend.video.memory import plan_memory
    from videoscene_backend.video.refiner import RefineOptions, VideoRefiner

    refiner = VideoRefiner.from_checkpoint(
        find_checkpoint(make_tiny_checkpoint(tmp_path)), plan_memory("fp32", torch.device("cpu"))
    )
    frames = np.random.default_rng(0).integers(0, 256, (TINY_FRAMES, *TINY_SIZE, 3), np.uint8)
    stages: list[str] = []
    counted = Stop()
    refiner.refine(
        frames, frames[0], frames[-1], RefineOptions(), lambda s, *_: stages.append(s), counted
    )
    # Between stages the refiner checks 4 times (start, after encode, denoise, decode); every
    # other call came from a block of the VAE or the transformer.
    assert counted.calls > 4 + len(refiner.transformer.transformer_blocks)
    stop = Stop(at=counted.calls - 2)  # inside the decode
    stages.clear()
    with pytest.raises(VideoSceneError):
        refiner.refine(
            frames, frames[0], frames[-1], RefineOptions(), lambda s, *_: stages.append(s), stop
        )
    assert "decode" in stages and stages[-1] == "decode"  # it stopped in the decode stage
    assert all(not m._forward_pre_hooks for m in refiner.vae.modules())
