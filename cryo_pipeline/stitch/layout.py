"""Where the tiles of one grid are stored: the stores' geometry, checked to hold the grid exactly once.

Parallel jobs (groups of CryoGEN inference tiles, CN slabs) each write their unblended tiles to
their own tile store (:mod:`cryo_pipeline.io.tile_store`). Together the stores must hold every
tile of the grid :func:`cryo_pipeline.ops.blending.tile_origins_3d` (or of the stores' explicit
per-axis ``grid_origins_zyx``, e.g. CN slab windows) exactly once: :func:`read_tile_layout`
checks it, names what is missing or duplicated, and returns the small :class:`TileLayout` that
every stitch task receives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cryo_pipeline.io.tile_store import open_tile_store
from cryo_pipeline.ops.blending import tile_origins_1d
from cryo_pipeline.ops.separable_blend import AxisGrid

__all__ = ["TileLayout", "read_tile_layout"]

_SHOW = 5  # origins named in an error message


@dataclass(frozen=True)
class TileLayout:
    """Where each tile of the grid is stored (small: sent to every Dask task).

    Attributes
    ----------
    volume_shape, tile, overlap : (z, y, x) ints
        The grid (:func:`~cryo_pipeline.ops.blending.tile_origins_3d`, z-major).
    voxel_size_angstrom : float
    tilt_range_deg : (min, max) or None
    stores : tuple of str
        Tile store paths.
    runs : `(r, 4)` int64
        ``(grid_start, length, store, local_start)``, sorted by ``grid_start``: grid
        tiles ``grid_start + j`` are tiles ``local_start + j`` of ``stores[store]``.
    grid : three tuples of int, or None
        Explicit per-axis origins (the stores' ``grid_origins_zyx``); None = regular grid.
    """

    volume_shape: tuple[int, int, int]
    tile: tuple[int, int, int]
    overlap: tuple[int, int, int]
    voxel_size_angstrom: float
    tilt_range_deg: tuple[float, float] | None
    stores: tuple[str, ...]
    runs: np.ndarray
    grid: tuple[tuple[int, ...], ...] | None = None

    def axis_origins(self) -> list[np.ndarray]:
        """The per-axis 1D grids (z, y, x)."""
        if self.grid is not None:
            return [np.asarray(axis, dtype=np.int64) for axis in self.grid]
        return [tile_origins_1d(n, tile=t, overlap=o)
                for n, t, o in zip(self.volume_shape, self.tile, self.overlap, strict=True)]

    def axis_grids(self) -> list[AxisGrid]:
        """The per-axis grids (z, y, x) for :func:`~cryo_pipeline.ops.separable_blend.blend_box`."""
        return [AxisGrid(n, t, o, tuple(int(v) for v in a))
                for n, t, o, a in zip(self.volume_shape, self.tile, self.overlap, self.axis_origins(), strict=True)]

    @cached_property
    def grid_counts(self) -> tuple[int, int, int]:
        """Tiles along z, y and x."""
        return tuple(len(a) for a in self.axis_origins())  # type: ignore[return-value]

    def locate(self, abc: Sequence[int]) -> tuple[int, int]:
        """``(store, local index)`` of the tile with per-axis indices ``abc`` = (a, b, c)."""
        _, n_y, n_x = self.grid_counts
        flat = (int(abc[0]) * n_y + int(abc[1])) * n_x + int(abc[2])
        run = self.runs[np.searchsorted(self.runs[:, 0], flat, side="right") - 1]
        return int(run[2]), int(run[3] + flat - run[0])


def _geometry_key(attrs: dict[str, Any]) -> tuple:
    tilt = (attrs.get("tilt_min_deg"), attrs.get("tilt_max_deg"))
    grid = attrs.get("grid_origins_zyx")
    grid = None if grid is None else tuple(tuple(int(v) for v in axis) for axis in grid)
    return (attrs["volume_shape_zyx"], attrs["tile_px"], attrs["overlap_px"], float(attrs["voxel_size_angstrom"]),
            tilt, grid)


def _grid_index(origins: np.ndarray, axes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """z-major grid index of each origin, and a mask of the origins that are on the grid."""
    idx, ok = [], np.ones(len(origins), dtype=bool)
    for k, axis in enumerate(axes):
        i = np.clip(np.searchsorted(axis, origins[:, k]), 0, len(axis) - 1)
        ok &= axis[i] == origins[:, k]
        idx.append(i)
    return (idx[0] * len(axes[1]) + idx[1]) * len(axes[2]) + idx[2], ok


def read_tile_layout(tile_stores: Sequence[str | os.PathLike[str]]) -> TileLayout:
    """Read the stores' attributes and check that together they hold the grid exactly once.

    Raises
    ------
    ValueError
        No stores; stores disagreeing on volume shape, tile, overlap, voxel size or tilt
        range; an origin off the grid; grid tiles missing or stored twice (the first
        few origins are named, with the stores of duplicates).
    """
    paths = [str(Path(p)) for p in tile_stores]
    if not paths:
        raise ValueError("no tile stores given to stitch")
    opened = [open_tile_store(p)[1] for p in paths]
    key = _geometry_key(opened[0])
    for path, attrs in zip(paths[1:], opened[1:], strict=True):
        if _geometry_key(attrs) != key:
            raise ValueError(f"tile stores disagree: {paths[0]} has (volume shape, tile, overlap, voxel size, tilt "
                             f"range, grid) {key} but {path} has {_geometry_key(attrs)}")
    shape, tile, overlap, voxel, tilt, grid = key
    layout = TileLayout(shape, tile, overlap, voxel, None if None in tilt else tuple(map(float, tilt)),
                        tuple(paths), np.zeros((0, 4), np.int64), grid)
    axes = layout.axis_origins()
    n_grid = int(np.prod([len(a) for a in axes]))
    owners: list[np.ndarray] = []
    flats: list[np.ndarray] = []
    for s, (path, attrs) in enumerate(zip(paths, opened, strict=True)):
        flat, ok = _grid_index(attrs["origins"], axes)
        if not ok.all():
            bad = attrs["origins"][~ok][:_SHOW].tolist()
            raise ValueError(f"{path}: {int((~ok).sum())} tile origin(s) are not on the grid of tiles {tile} with "
                             f"overlap {overlap} over {shape} (first {bad})")
        flats.append(flat)
        owners.append(np.full(len(flat), s))
    flat_all, owner_all = np.concatenate(flats), np.concatenate(owners)
    counts = np.bincount(flat_all, minlength=n_grid)
    all_origins = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    problems = []
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0)
        problems.append(f"{missing.size} tile(s) missing, origins {all_origins[missing[:_SHOW]].tolist()}"
                        f"{' ...' if missing.size > _SHOW else ''}")
    if np.any(counts > 1):
        dup = np.flatnonzero(counts > 1)
        where = [f"{all_origins[g].tolist()} in {sorted({paths[o] for o in owner_all[flat_all == g]})}" for g in dup[:_SHOW]]
        problems.append(f"{dup.size} tile(s) stored more than once: {'; '.join(where)}"
                        f"{' ...' if dup.size > _SHOW else ''}")
    if problems:
        raise ValueError(f"the {len(paths)} tile store(s) do not cover the grid of {n_grid} tiles {tile} (overlap "
                         f"{overlap}) over {shape} exactly once: {'; '.join(problems)}")
    runs = []
    for s, flat in enumerate(flats):
        breaks = np.flatnonzero(np.diff(flat) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(flat)], strict=True):
            if stop > start:
                runs.append((flat[start], stop - start, s, start))
    runs_arr = np.asarray(sorted(runs), dtype=np.int64).reshape(-1, 4)
    return TileLayout(shape, tile, overlap, voxel, layout.tilt_range_deg, tuple(paths), runs_arr, grid)
