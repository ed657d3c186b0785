"""The network: real-size keys and shapes against the public source's listing, a tiny forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from videoscene_backend.priors.noposplat.network import (
    REAL_CONFIG,
    NoPoSplatNet,
    RoPE2D,
    sh_degree_mask,
)

from .conftest import TINY

LISTING = Path(__file__).with_name("expected_keys.txt")


def _listing() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in LISTING.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            shapes[key] = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
    return shapes


def test_real_size_network_has_exactly_the_released_keys_and_shapes() -> None:
    with torch.device("meta"):
        state = NoPoSplatNet(REAL_CONFIG).state_dict()
    expected = _listing()
    assert len(expected) == 1145
    assert set(state) == set(expected)
    wrong = {
        k: (tuple(v.shape), expected[k]) for k, v in state.items() if tuple(v.shape) != expected[k]
    }
    assert wrong == {}
    parameters = sum(v.numel() for v in state.values())
    assert 550e6 < parameters < 650e6  # about 2.3 GB in fp32, the checkpoint's size


def _tiny_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 2, 3, TINY.image_size, TINY.image_size, generator=generator) * 2 - 1
    K = torch.tensor([[0.8, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1.0]]).expand(1, 2, 3, 3)
    return images, K


def test_tiny_forward_gives_valid_per_pixel_gaussians(tiny_network) -> None:
    images, K = _tiny_inputs()
    with torch.no_grad():
        out = tiny_network(images, K)
    size = TINY.image_size
    assert out.points.shape == (1, 2, size, size, 3)
    assert out.opacity.shape == (1, 2, size, size)
    assert out.scales.shape == (1, 2, size, size, 3)
    assert out.quats_xyzw.shape == (1, 2, size, size, 4)
    assert out.sh.shape == (1, 2, size, size, 3, 25)
    for tensor in (out.points, out.opacity, out.scales, out.quats_xyzw, out.sh):
        assert torch.isfinite(tensor).all()
    assert ((out.opacity > 0) & (out.opacity < 1)).all()
    assert ((out.scales > 0) & (out.scales <= 0.3)).all()
    torch.testing.assert_close(
        out.quats_xyzw.norm(dim=-1), torch.ones(1, 2, size, size), atol=1e-5, rtol=0
    )
    # Each view has its own heads: the two views' predictions differ even for the same photo.
    same = images[:, :1].expand(1, 2, -1, -1, -1)
    with torch.no_grad():
        twin = tiny_network(same, K)
    assert not torch.allclose(twin.points[:, 0], twin.points[:, 1])


def test_the_intrinsics_token_changes_the_prediction(tiny_network) -> None:
    images, K = _tiny_inputs()
    wider = K.clone()
    wider[..., 0, 0] = wider[..., 1, 1] = 0.5
    with torch.no_grad():
        a, b = tiny_network(images, K), tiny_network(images, wider)
    assert (a.points - b.points).abs().max() > 1e-4


def test_sh_mask_scales_each_degree_as_the_adapter() -> None:
    mask = sh_degree_mask(4)
    assert mask[0] == 1
    assert torch.allclose(mask[1:4], torch.full((3,), 0.025))
    assert torch.allclose(mask[16:25], torch.full((9,), 0.1 * 0.25**4))


def test_rope_scores_depend_only_on_position_differences() -> None:
    rope = RoPE2D(100.0)
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 16, generator=generator)
    k = torch.randn(1, 1, 1, 16, generator=generator)

    def score(pq, pk):
        return (rope(q, torch.tensor([[pq]])) * rope(k, torch.tensor([[pk]]))).sum()

    base = score((2, 5), (7, 1))
    torch.testing.assert_close(score((12, 8), (17, 4)), base, atol=1e-4, rtol=1e-4)
    assert (score((2, 5), (7, 2)) - base).abs() > 1e-3  # and they do depend on them
    with pytest.raises(RuntimeError):
        rope(torch.randn(1, 1, 1, 15), torch.tensor([[(0, 0)]]))  # odd widths cannot rotate
