"""3D U-Net++ generator g_θ for CryoGEN (Zhou et al. 2018, nested dense skips).

Nodes ``X[i][j]`` sit at resolution level ``i`` (0 = full size, ``depth`` = coarsest)
and decoder column ``j``. The encoder column is ``X[i][0]``; every other node is a
conv block over the concatenation of all earlier nodes of its level and the
upsampled node below-left::

    X[i][j] = block(cat(X[i][0], ..., X[i][j-1], up(X[i+1][j-1])))

so there are ``depth·(depth+1)/2`` decoder nodes and the output head reads
``X[0][depth]``. Design choices:

* conv block: 2 × (Conv3d 3³, padding 1 → norm → LeakyReLU(0.1)); convs followed by
  a norm carry no bias (the norm's affine shift replaces it);
* downsampling: a learned stride-2 Conv3d with a 2³ kernel (non-overlapping, so
  every voxel is seen once, as in IsoNet/DeepDeWedge's strided-conv encoders);
* upsampling: trilinear ×2 followed by a 1³ conv halving the channels (no
  transposed conv, hence no checkerboard artefacts);
* channels ``base_channels · 2**i`` at level ``i``;
* head: 1³ linear conv on ``X[0][depth]``; with ``residual=True`` the output is
  ``input + head(...)`` and the head is zero-initialised, so the untrained network
  is exactly the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["UNetPlusPlus3d", "check_divisible"]

_NORMS = ("group", "instance", "none")
_AXES = "zyx"


def check_divisible(shape: Sequence[int], divisor: int) -> None:
    """Raise ``ValueError`` unless every size in ``shape`` is a multiple of ``divisor``.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape, e.g. `(d, h, w)`.
    divisor : int
        Required factor (``2**depth`` for :class:`UNetPlusPlus3d`).

    Raises
    ------
    ValueError
        Naming the shape, the offending size and the nearest valid sizes, e.g.
        "cube size 50 is not divisible by 8 (= 2**3, the model's depth); use 48 or 56".
    """
    divisor = int(divisor)
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    shape = tuple(int(n) for n in shape)
    for axis, n in enumerate(shape):
        if n % divisor:
            lo, hi = (n // divisor) * divisor, (n // divisor + 1) * divisor
            fix = f"use {lo} or {hi}" if lo > 0 else f"use {hi}"
            power = f" (= 2**{int(math.log2(divisor))}, the model's depth)" if divisor & (divisor - 1) == 0 else ""
            where = f"along {_AXES[axis - len(shape) + 3]} " if len(shape) <= 3 else f"along axis {axis} "
            raise ValueError(f"spatial shape {shape}: cube size {n} {where}is not divisible by {divisor}{power}; {fix}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        # min(8, channels) groups; the largest divisor of `channels` not above it otherwise
        groups = next(g for g in range(min(8, channels), 0, -1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    return nn.Identity()


class ConvBlock3d(nn.Sequential):
    """2 × (Conv3d 3³ → norm → LeakyReLU(0.1)): `(b, c_in, d, h, w)` → `(b, c_out, d, h, w)`."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [nn.Conv3d(c_in, out_channels, 3, padding=1, bias=norm == "none"),
                       _norm(norm, out_channels), nn.LeakyReLU(0.1)]
        super().__init__(*layers)


class Up3d(nn.Sequential):
    """Trilinear ×2 then a 1³ conv: `(b, c_in, d, h, w)` → `(b, c_out, 2d, 2h, 2w)`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                         nn.Conv3d(in_channels, out_channels, 1))


class UNetPlusPlus3d(nn.Module):
    """3D U-Net++ with nested dense skip connections and an identity-at-init residual head.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of input and output (1 for tomograms); equal when ``residual``.
    base_channels : int
        Channels at full resolution; doubled at every level.
    depth : int
        Number of downsamplings (>= 1); spatial sizes must be multiples of ``2**depth``.
    norm : {"group", "instance", "none"}
        Normalisation after every 3³ conv (GroupNorm with min(8, channels) groups).
    residual : bool
        Output ``input + head(X[0][depth])`` with a zero-initialised head (identity at
        init); otherwise the head's default initialisation and no skip.

    Notes
    -----
    Forward: `(b, in_channels, d, h, w)` → `(b, out_channels, d, h, w)`; raises
    ``ValueError`` if ``d``, ``h`` or ``w`` is not a multiple of :attr:`divisor`.
    Decoder nodes are ``nodes["x{i}_{j}"]`` with their upsamplers ``up["x{i}_{j}"]``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, base_channels: int = 16, depth: int = 3,
                 norm: str = "group", residual: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if base_channels < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be >= 1, got in {in_channels}, out {out_channels}, "
                             f"base {base_channels}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual output needs in_channels == out_channels, got {in_channels} and "
                             f"{out_channels}; pass residual=False")
        self.depth, self.residual = int(depth), bool(residual)
        ch = [base_channels * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [ConvBlock3d(in_channels, ch[0], norm=norm)]
            + [ConvBlock3d(ch[i - 1], ch[i], norm=norm) for i in range(1, depth + 1)])
        self.down = nn.ModuleList([nn.Conv3d(ch[i], ch[i], 2, stride=2) for i in range(depth)])
        self.nodes = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for j in range(1, depth + 1):
            for i in range(depth - j + 1):
                self.up[f"x{i}_{j}"] = Up3d(ch[i + 1], ch[i])
                self.nodes[f"x{i}_{j}"] = ConvBlock3d((j + 1) * ch[i], ch[i], norm=norm)
        self.head = nn.Conv3d(ch[0], out_channels, 1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(b, c, d, h, w)` → `(b, out_channels, d, h, w)`."""
        if x.ndim != 5:
            raise ValueError(f"expected a (batch, channels, d, h, w) tensor, got shape {tuple(x.shape)}")
        check_divisible(x.shape[2:], self.divisor)
        grid: list[list[torch.Tensor]] = []
        h = x
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else self.down[i - 1](h))
            grid.append([h])
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                key = f"x{i}_{j}"
                grid[i].append(self.nodes[key](torch.cat([*grid[i][:j], self.up[key](grid[i + 1][j - 1])], dim=1)))
        out = self.head(grid[0][self.depth])
        return x + out if self.residual else out
