"""The CN slab plan along y, and the seam ratio of a stitched volume (pure functions).

A tilt series of height ``H`` (y-rows) is cut into ``n = ⌈H / t⌉`` slabs for a slab
thickness of ``t`` rows. Each slab's network is fitted on, and evaluated over, a
*window* of ``T = t + 2h`` rows: its share of the volume plus a halo of ``h`` rows on
both sides. The ``n`` windows are spread evenly from the top row to the bottom one
(origins ``round(i · (H − T) / (n − 1))``), so every window has the full size and
neighbours overlap by at least ``2h`` rows (exactly ``2h`` when ``H = n·t``). The
stitcher blends them with the shared raised-cosine window of ramp ``2h``
(:mod:`cryo_pipeline.ops.blending`), so every row is a weighted mean of the networks
that saw it with context on both sides. The *seam* between slabs ``i`` and ``i + 1``
is the middle of their overlap (where the window of ``i + 1`` starts without a halo).

Slab thickness from the CN paper's parameter ratio: a network of ``P`` parameters for a
sub-volume of ``d × t × w`` voxels has ratio ``P / (d·t·w)``; the paper keeps ≈ 1/8
(262 144 parameters for 1024 × 8 × 256), so ``t = round(P / (ratio · d · w))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SlabPlan", "plan_slabs", "seam_ratio", "slab_rows_from_ratio"]


@dataclass(frozen=True)
class SlabPlan:
    """How a volume of ``height`` y-rows is cut into slabs (its file: :mod:`cryo_pipeline.io.slab_plan`).

    Attributes
    ----------
    height_px : int
        Rows of the tilt series / volume (y).
    slab_px : int
        Core rows per slab ``t`` (the last core may be shorter).
    halo_px : int
        Extra rows fitted on each side ``h``.
    window_px : int
        Rows each network is fitted on and evaluated over, ``t + 2h``.
    origins_y : tuple of int
        First row of each slab's window (non-decreasing, one per slab).
    """

    height_px: int
    slab_px: int
    halo_px: int
    window_px: int
    origins_y: tuple[int, ...]

    @property
    def n_slabs(self) -> int:
        """Number of slabs (= fit_slab jobs)."""
        return len(self.origins_y)

    @property
    def blend_overlap_px(self) -> int:
        """Ramp length of the y blending window (``2h``; 0 without a halo)."""
        return 2 * self.halo_px

    @property
    def boundaries_y(self) -> tuple[int, ...]:
        """Seams: row ``b`` is the first row after the middle of two neighbours' overlap."""
        return tuple((self.origins_y[i + 1] + self.origins_y[i] + self.window_px + 1) // 2
                     for i in range(self.n_slabs - 1))

    def window(self, index: int) -> tuple[int, int]:
        """``(start, stop)`` rows of slab ``index``'s window."""
        if not 0 <= index < self.n_slabs:
            raise ValueError(f"slab index {index} is outside 0..{self.n_slabs - 1}")
        start = self.origins_y[index]
        return start, start + self.window_px

    def seed_index(self) -> int:
        """The middle slab, fitted first from random initialisation."""
        return self.n_slabs // 2

    def chain_parent(self, index: int) -> int | None:
        """``chain`` schedule: the neighbour towards the seed slab (None for the seed slab itself)."""
        seed = self.seed_index()
        if index == seed:
            return None
        return index + 1 if index < seed else index - 1


def plan_slabs(height_px: int, *, slab_px: int, halo_px: int) -> SlabPlan:
    """Cut ``height_px`` rows into ``⌈H / t⌉`` slabs with a halo of ``h`` rows.

    Raises
    ------
    ValueError
        ``t < 1``, ``t > H`` (slab thicker than the volume), ``h < 0``, ``h ≥ t`` (a
        halo as thick as the slab), or a window ``t + 2h`` taller than the volume.
    """
    height, slab, halo = int(height_px), int(slab_px), int(halo_px)
    if slab < 1:
        raise ValueError(f"slab thickness must be >= 1 row, got {slab}")
    if slab > height:
        raise ValueError(f"slab thickness {slab} rows is larger than the volume height {height} rows; "
                         f"use cn.slab_px <= {height}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0 rows, got {halo}")
    if halo >= slab:
        raise ValueError(f"halo ({halo} rows) must be smaller than the slab thickness ({slab} rows); "
                         "lower cn.halo_px or raise cn.slab_px")
    window = slab + 2 * halo
    if window > height:
        raise ValueError(f"slab {slab} + 2 x halo {halo} = {window} rows is taller than the volume ({height} rows); "
                         "lower cn.halo_px or cn.slab_px")
    n_slabs = math.ceil(height / slab)
    if n_slabs == 1:
        return SlabPlan(height, slab, halo, window, (0,))
    origins = tuple(int(round(i * (height - window) / (n_slabs - 1))) for i in range(n_slabs))
    if len(set(origins)) < n_slabs:
        raise ValueError(f"{n_slabs} slab windows of {window} rows (slab {slab} + 2 x halo {halo}) do not fit apart "
                         f"in {height} rows; lower cn.halo_px or raise cn.slab_px")
    return SlabPlan(height, slab, halo, window, origins)


def slab_rows_from_ratio(n_parameters: int, *, depth_px: int, width_px: int, ratio: float, height_px: int) -> int:
    """Slab thickness ``t`` whose sub-volume has ``ratio`` parameters per voxel, in [1, H].

    Parameters
    ----------
    n_parameters : int
        Trainable parameters of one network.
    depth_px, width_px : int
        Volume z and x sizes.
    ratio : float
        Parameters per sub-volume voxel (CN paper ≈ 1/8).
    height_px : int
        Volume height; the result is clipped to it.
    """
    if ratio <= 0 or n_parameters < 1:
        raise ValueError(f"need ratio > 0 and n_parameters >= 1, got {ratio}, {n_parameters}")
    rows = round(n_parameters / (ratio * int(depth_px) * int(width_px)))
    return int(min(max(rows, 1), int(height_px)))


def seam_ratio(row_step_means: np.ndarray, boundaries_y) -> float:
    """Mean |Δ| across slab boundaries over the mean |Δ| within slabs.

    Parameters
    ----------
    row_step_means : `(H − 1,)` array
        ``mean |v[:, y + 1, :] − v[:, y, :]|`` for every adjacent row pair ``y``.
    boundaries_y : sequence of int
        Rows ``b`` where a new slab core starts (the pair ``(b − 1, b)`` crosses a seam).

    Returns
    -------
    float
        ≈ 1 when seams are invisible; NaN when there is no boundary or no interior pair.
    """
    steps = np.asarray(row_step_means, dtype=np.float64).ravel()
    pairs = np.asarray([b - 1 for b in boundaries_y if 1 <= b <= steps.size], dtype=np.int64)
    if pairs.size == 0 or pairs.size == steps.size:
        return float("nan")
    inside = np.ones(steps.size, dtype=bool)
    inside[pairs] = False
    within = steps[inside].mean()
    return float(steps[pairs].mean() / within) if within > 0 else float("nan")
