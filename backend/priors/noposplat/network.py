"""NoPoSplat's network in plain torch, with module names that match its released checkpoint.

Structure (learned from the public NoPoSplat / CroCo / DUSt3R sources, written anew here):
    backbone: asymmetric CroCo, ViT encoder with 2D RoPE (base 100) shared by both views, an
              intrinsics token (Linear 9 -> encoder width of the flattened normalized K),
              decoder_embed, two ViT decoders (dec_blocks for view 0, dec_blocks2 for view 1)
              with self- and cross-attention between the views.
    downstream_head1/2: DPT heads -> per-pixel 3D points ("exp" depth mode), both views in
              view 0's camera frame.
    gaussian_param_head/2: DPT heads with a 7x7 conv shortcut from the RGB image ->
              1 + 7 + 3 * 25 raw Gaussian channels per pixel.
Quaternions come out as (x, y, z, w) and SH as (3, 25): the prior converts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_PREFIX = "encoder."


@dataclass(frozen=True)
class NoPoSplatConfig:
    image_size: int = 512
    patch_size: int = 16
    enc_dim: int = 1024
    enc_depth: int = 24
    enc_heads: int = 16
    dec_dim: int = 768
    dec_depth: int = 12
    dec_heads: int = 12
    rope_base: float = 100.0
    dpt_feature_dim: int = 256
    dpt_layer_dims: tuple[int, int, int, int] = (96, 192, 384, 768)
    sh_degree: int = 4

    @property
    def raw_gaussian_channels(self) -> int:
        return 1 + 7 + 3 * (self.sh_degree + 1) ** 2

    @property
    def hooks(self) -> tuple[int, int, int, int]:
        depth = self.dec_depth
        return (0, depth * 2 // 4, depth * 3 // 4, depth)


REAL_CONFIG = NoPoSplatConfig()


class RoPE2D(nn.Module):
    """Rotary embeddings on (row, column) token positions: half the head width each."""

    def __init__(self, base: float) -> None:
        super().__init__()
        self.base = base

    def _rotate(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        dim = tokens.shape[-1]
        inv_freq = 1.0 / (
            self.base ** (torch.arange(0, dim, 2, device=tokens.device).float() / dim)
        )
        angles = positions.float()[..., None] * inv_freq  # (B, N, dim / 2)
        angles = torch.cat([angles, angles], dim=-1)[:, None].to(tokens.dtype)  # (B, 1, N, dim)
        first, second = tokens[..., : dim // 2], tokens[..., dim // 2 :]
        rotated = torch.cat([-second, first], dim=-1)
        return tokens * angles.cos() + rotated * angles.sin()

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        rows, cols = tokens.chunk(2, dim=-1)
        return torch.cat(
            [self._rotate(rows, positions[..., 0]), self._rotate(cols, positions[..., 1])], dim=-1
        )


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, width = x.shape
    return x.reshape(batch, tokens, heads, width // heads).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D) -> None:
        super().__init__()
        self.heads, self.rope = heads, rope
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(self.rope(q, positions), self.rope(k, positions), v)
        return self.proj(out.transpose(1, 2).flatten(2))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D) -> None:
        super().__init__()
        self.heads, self.rope = heads, rope
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, memory, x_positions, memory_positions) -> torch.Tensor:
        q = self.rope(_heads(self.projq(x), self.heads), x_positions)
        k = self.rope(_heads(self.projk(memory), self.heads), memory_positions)
        v = _heads(self.projv(memory), self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).flatten(2))


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D) -> None:
        super().__init__()
        self.norm1, self.attn = _norm(dim), SelfAttention(dim, heads, rope)
        self.norm2, self.mlp = _norm(dim), Mlp(dim, dim * 4)

    def forward(self, x, positions):
        x = x + self.attn(self.norm1(x), positions)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D) -> None:
        super().__init__()
        self.norm1, self.attn = _norm(dim), SelfAttention(dim, heads, rope)
        self.cross_attn, self.norm2 = CrossAttention(dim, heads, rope), _norm(dim)
        self.norm3, self.mlp = _norm(dim), Mlp(dim, dim * 4)
        self.norm_y = _norm(dim)

    def forward(self, x, other, positions, other_positions):
        x = x + self.attn(self.norm1(x), positions)
        memory = self.norm_y(other)
        x = x + self.cross_attn(self.norm2(x), memory, positions, other_positions)
        return x + self.mlp(self.norm3(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.proj(image)
        batch, _, rows, cols = x.shape
        grid = torch.cartesian_prod(
            torch.arange(rows, device=x.device), torch.arange(cols, device=x.device)
        )
        return x.flatten(2).transpose(1, 2), grid[None].expand(batch, -1, -1)


class Backbone(nn.Module):
    def __init__(self, config: NoPoSplatConfig) -> None:
        super().__init__()
        rope = RoPE2D(config.rope_base)
        self.patch_embed = PatchEmbed(config.patch_size, config.enc_dim)
        self.mask_token = nn.Parameter(
            torch.zeros(1, 1, config.dec_dim)
        )  # CroCo pretraining leftover
        self.enc_blocks = nn.ModuleList(
            EncoderBlock(config.enc_dim, config.enc_heads, rope) for _ in range(config.enc_depth)
        )
        self.enc_norm = _norm(config.enc_dim)
        self.decoder_embed = nn.Linear(config.enc_dim, config.dec_dim)
        self.dec_blocks = nn.ModuleList(
            DecoderBlock(config.dec_dim, config.dec_heads, rope) for _ in range(config.dec_depth)
        )
        self.dec_norm = _norm(config.dec_dim)
        self.dec_blocks2 = nn.ModuleList(
            DecoderBlock(config.dec_dim, config.dec_heads, rope) for _ in range(config.dec_depth)
        )
        self.intrinsic_encoder = nn.Linear(9, config.enc_dim)

    def encode(
        self, images: torch.Tensor, intrinsics: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1], intrinsics (B, 3, 3) normalized -> tokens + positions,
        the intrinsics token last, at position (last row + 1, column 0)."""
        tokens, positions = self.patch_embed(images)
        tokens = torch.cat([tokens, self.intrinsic_encoder(intrinsics.flatten(1))[:, None]], dim=1)
        extra = positions[:, :1].clone()
        extra[..., 0] = (positions[:, -1, 0] + 1)[:, None]
        extra[..., 1] = 0
        positions = torch.cat([positions, extra], dim=1)
        for block in self.enc_blocks:
            tokens = block(tokens, positions)
        return self.enc_norm(tokens), positions

    def forward(
        self, images: torch.Tensor, intrinsics: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """images (B, 2, 3, H, W), intrinsics (B, 2, 3, 3) -> per view: [encoder output, decoder
        block outputs...] (last one normalized), intrinsics token removed."""
        batch = images.shape[0]
        tokens, positions = self.encode(images.flatten(0, 1), intrinsics.flatten(0, 1))
        tokens = tokens.unflatten(0, (batch, 2))
        positions = positions.unflatten(0, (batch, 2))
        f1, f2 = tokens[:, 0], tokens[:, 1]
        p1, p2 = positions[:, 0], positions[:, 1]
        outputs = [(f1, f2)]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for block1, block2 in zip(self.dec_blocks, self.dec_blocks2, strict=True):
            x1, x2 = block1(x1, x2, p1, p2), block2(x2, x1, p2, p1)
            outputs.append((x1, x2))
        outputs[-1] = (self.dec_norm(outputs[-1][0]), self.dec_norm(outputs[-1][1]))
        view1 = [pair[0][:, :-1] for pair in outputs]
        view2 = [pair[1][:, :-1] for pair in outputs]
        return view1, view2


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class FusionBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815 (checkpoint key name)
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815 (checkpoint key name)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        return self.out_conv(_upsample2x(self.resConfUnit2(x)))


class _Upsample2x(nn.Module):
    def forward(self, x):
        return _upsample2x(x)


class DPT(nn.Module):
    """DPT decoder over 4 hooked token maps. `gaussian=True` adds the RGB shortcut and the
    Gaussian-parameter output; otherwise it regresses 3 channels at full resolution."""

    def __init__(self, config: NoPoSplatConfig, out_channels: int, gaussian: bool) -> None:
        super().__init__()
        f, dims = config.dpt_feature_dim, config.dpt_layer_dims
        token_dims = (config.enc_dim, config.dec_dim, config.dec_dim, config.dec_dim)
        self.hooks, self.patch_size = config.hooks, config.patch_size
        self.gaussian = gaussian
        self.act_postprocess = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(token_dims[0], dims[0], 1), nn.ConvTranspose2d(dims[0], dims[0], 4, 4)
                ),
                nn.Sequential(
                    nn.Conv2d(token_dims[1], dims[1], 1), nn.ConvTranspose2d(dims[1], dims[1], 2, 2)
                ),
                nn.Sequential(nn.Conv2d(token_dims[2], dims[2], 1)),
                nn.Sequential(
                    nn.Conv2d(token_dims[3], dims[3], 1), nn.Conv2d(dims[3], dims[3], 3, 2, 1)
                ),
            ]
        )
        scratch = nn.Module()
        layers = [nn.Conv2d(dims[i], f, 3, padding=1, bias=False) for i in range(4)]
        for index, layer in enumerate(layers, start=1):
            setattr(scratch, f"layer{index}_rn", layer)
        scratch.layer_rn = nn.ModuleList(layers)  # the same modules under a second name, as saved
        for index in range(1, 5):
            setattr(scratch, f"refinenet{index}", FusionBlock(f))
        self.scratch = scratch
        if gaussian:
            self.input_merger = nn.Sequential(nn.Conv2d(3, f, 7, 1, 3), nn.ReLU())
            self.head = nn.Sequential(
                nn.Conv2d(f, f, 3, padding=1, bias=False),
                nn.Identity(),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Conv2d(f, out_channels, 1),
            )
        else:
            self.head = nn.Sequential(
                nn.Conv2d(f, f // 2, 3, padding=1),
                _Upsample2x(),
                nn.Conv2d(f // 2, f // 2, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(f // 2, out_channels, 1),
            )

    def forward(
        self, tokens: list[torch.Tensor], size: tuple[int, int], image: torch.Tensor | None = None
    ) -> torch.Tensor:
        rows, cols = size[0] // self.patch_size, size[1] // self.patch_size
        maps = [tokens[hook].transpose(1, 2).unflatten(2, (rows, cols)) for hook in self.hooks]
        maps = [self.scratch.layer_rn[i](self.act_postprocess[i](m)) for i, m in enumerate(maps)]
        path = self.scratch.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        path = self.scratch.refinenet3(path, maps[2])
        path = self.scratch.refinenet2(path, maps[1])
        path = self.scratch.refinenet1(path, maps[0])
        if self.gaussian:
            path = _upsample2x(path) + self.input_merger(image)
        return self.head(path)


class Head(nn.Module):
    """Wraps a DPT as `dpt`, the checkpoint's nesting."""

    def __init__(self, config: NoPoSplatConfig, out_channels: int, gaussian: bool) -> None:
        super().__init__()
        self.dpt = DPT(config, out_channels, gaussian)


def exp_depth_points(raw: torch.Tensor) -> torch.Tensor:
    """DUSt3R's "exp" mode: direction times expm1(norm)."""
    norm = raw.norm(dim=1, keepdim=True)
    return raw / norm.clamp_min(1e-8) * torch.expm1(norm)


def sh_degree_mask(degree: int) -> torch.Tensor:
    """Per-coefficient SH scale: 1 for the DC term, 0.1 * 0.25**l for degree l (the adapter's)."""
    mask = torch.ones((degree + 1) ** 2)
    for level in range(1, degree + 1):
        mask[level**2 : (level + 1) ** 2] = 0.1 * 0.25**level
    return mask


@dataclass
class RawGaussians:
    points: torch.Tensor  # (B, 2, H, W, 3) in view 0's camera frame
    opacity: torch.Tensor  # (B, 2, H, W)
    scales: torch.Tensor  # (B, 2, H, W, 3)
    quats_xyzw: torch.Tensor  # (B, 2, H, W, 4), normalized
    sh: torch.Tensor  # (B, 2, H, W, 3, 25), mask applied


class NoPoSplatNet(nn.Module):
    def __init__(self, config: NoPoSplatConfig = REAL_CONFIG) -> None:
        super().__init__()
        self.config = config
        channels = config.raw_gaussian_channels
        self.backbone = Backbone(config)
        self.downstream_head1 = Head(config, 3, gaussian=False)
        self.downstream_head2 = Head(config, 3, gaussian=False)
        self.gaussian_param_head = Head(config, channels, gaussian=True)
        self.gaussian_param_head2 = Head(config, channels, gaussian=True)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor) -> RawGaussians:
        """images (B, 2, 3, S, S) in [-1, 1]; intrinsics (B, 2, 3, 3) normalized."""
        size = tuple(images.shape[-2:])
        view1, view2 = self.backbone(images, intrinsics)
        points, raws = [], []
        for tokens, point_head, gaussian_head, image in (
            (view1, self.downstream_head1, self.gaussian_param_head, images[:, 0]),
            (view2, self.downstream_head2, self.gaussian_param_head2, images[:, 1]),
        ):
            tokens = [t.float() for t in tokens]
            points.append(exp_depth_points(point_head.dpt(tokens, size)))
            raws.append(gaussian_head.dpt(tokens, size, image))
        pts = torch.stack(points, 1).permute(0, 1, 3, 4, 2)
        raw = torch.stack(raws, 1).permute(0, 1, 3, 4, 2)
        coefficients = (self.config.sh_degree + 1) ** 2
        opacity_raw, scales_raw, rotations, sh = raw.split((1, 3, 4, 3 * coefficients), dim=-1)
        return RawGaussians(
            points=pts,
            opacity=torch.sigmoid(opacity_raw[..., 0]),
            scales=(0.001 * F.softplus(scales_raw)).clamp_max(0.3),
            quats_xyzw=rotations / (rotations.norm(dim=-1, keepdim=True) + 1e-8),
            sh=sh.unflatten(-1, (3, coefficients)) * sh_degree_mask(self.config.sh_degree).to(sh),
        )
