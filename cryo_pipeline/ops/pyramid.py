"""Multiscale pyramids: level shapes and the 2× block mean that makes each level from the one above.

Level ``k`` has ``ceil(n / 2**k)`` voxels along each axis (a level never goes below 1
voxel) and voxel size ``2**k`` times level 0's; the centre of its voxel ``i`` lies at
level-0 coordinate ``2**k · i + (2**k − 1)/2`` (a translation of ``(2**k − 1)/2``
level-0 voxels). Each voxel of level ``k + 1`` is the mean of the (up to) 2×2×2 voxels
of level ``k`` it covers: a partial block at an odd edge averages only the voxels it has.
Because blocks never straddle an even index, a region of level ``k`` whose origin is
even is reduced on its own, with no halo: region tasks can build the pyramid as they go.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["downsample_mean_2x", "pyramid_shapes", "pyramid_translation", "PYRAMID_TOP_PX"]

PYRAMID_TOP_PX = 256


def pyramid_shapes(shape_zyx: Sequence[int], *, max_top_px: int = PYRAMID_TOP_PX) -> list[tuple[int, ...]]:
    """Level shapes from ``shape_zyx`` down by 2× steps until the largest side is ≤ ``max_top_px``."""
    if max_top_px < 1:
        raise ValueError(f"max_top_px must be >= 1, got {max_top_px}")
    shapes = [tuple(int(n) for n in shape_zyx)]
    if min(shapes[0]) < 1:
        raise ValueError(f"pyramid_shapes needs positive sizes, got {shapes[0]}")
    while max(shapes[-1]) > max_top_px:
        shapes.append(tuple(math.ceil(n / 2) for n in shapes[-1]))
    return shapes


def pyramid_translation(level: int) -> float:
    """Offset of level ``level``'s first voxel centre, in level-0 voxels: ``(2**level − 1)/2``."""
    return (2**level - 1) / 2.0


def downsample_mean_2x(block: np.ndarray) -> np.ndarray:
    """Mean over 2×2×2 blocks of a ``(d, h, w)`` array → ``(ceil(d/2), ceil(h/2), ceil(w/2))`` float32.

    An odd trailing edge is averaged over the voxels that exist (not padded with zeros
    or copies), so a constant volume stays exactly constant at every level.
    """
    data = np.asarray(block, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"downsample_mean_2x needs a 3D block, got shape {data.shape}")
    pad = [(0, n % 2) for n in data.shape]
    total = np.pad(data, pad).astype(np.float64)
    d, h, w = total.shape
    sums = total.reshape(d // 2, 2, h // 2, 2, w // 2, 2).sum(axis=(1, 3, 5))
    counts = [np.full(math.ceil(n / 2), 2.0) for n in data.shape]
    for axis_counts, n in zip(counts, data.shape, strict=True):
        if n % 2:
            axis_counts[-1] = 1.0
    count = counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]
    return (sums / count).astype(np.float32)
