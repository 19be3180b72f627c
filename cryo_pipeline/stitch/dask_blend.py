"""The shared Dask stitcher: blend the tile stores of parallel jobs into one Zarr volume.

Parallel jobs (groups of CryoGEN inference tiles, CN slabs) each write their unblended
tiles to their own tile store (:mod:`cryo_pipeline.io.tile_store`). Together the stores
must hold every tile of the grid :func:`cryo_pipeline.ops.blending.tile_origins_3d` (or
of the stores' explicit per-axis ``grid_origins_zyx``, e.g. CN slab windows) exactly once (:func:`read_tile_layout` checks it and names what is missing or
duplicated).

Blending is **gather**-style: one Dask task per *output* chunk finds the tiles that
overlap its box ``[lo, hi)`` (recomputed from the per-axis grids, so a task carries only a
few run-length numbers, never the list of all origins), reads just those tiles (one
Zarr chunk each) and calls :func:`cryo_pipeline.ops.blending.blend_region_3d`
(Σ w·tile / Σ w with the shared raised-cosine window). Every task writes exactly one
chunk of the output store, so there are no locks and no two writers per chunk; memory
per task is one output chunk plus one tile. Measured on 2 cores in
``shared/research/ecosystem.md`` §3: ~10× faster than read-modify-write under locks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.tile_store import open_tile_array, open_tile_store
from cryo_pipeline.io.zarr_store import create_volume_zarr
from cryo_pipeline.ops.blending import as_zyx, blend_region_3d, tile_origins_1d

log = logging.getLogger(__name__)

__all__ = ["TileLayout", "read_tile_layout", "stitch_tile_stores"]

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


def _blend_block(block_info: dict | None = None, *, layout: TileLayout) -> np.ndarray:
    """One output chunk: blend the tiles overlapping its ``array-location`` box."""
    box = block_info[None]["array-location"]
    lo, hi = np.array([a for a, _ in box]), np.array([b for _, b in box])
    axes = layout.axis_origins()
    hit = [np.flatnonzero((a < h) & (a + t > low)) for a, low, h, t in zip(axes, lo, hi, layout.tile, strict=True)]
    iz, iy, ix = (g.ravel() for g in np.meshgrid(*hit, indexing="ij"))
    origins = np.stack([axes[0][iz], axes[1][iy], axes[2][ix]], axis=1)
    flat = (iz * len(axes[1]) + iy) * len(axes[2]) + ix
    run = layout.runs[np.searchsorted(layout.runs[:, 0], flat, side="right") - 1]
    store, local = run[:, 2], run[:, 3] + flat - run[:, 0]
    arrays: dict[int, Any] = {}

    def read_tile(i: int, box: tuple[slice, slice, slice]) -> np.ndarray:
        s = int(store[i])
        if s not in arrays:
            arrays[s] = open_tile_array(layout.stores[s])
        return arrays[s][(int(local[i]), *box)]  # only the chunks of the tile that overlap the output chunk

    return blend_region_3d(lo, hi, origins=origins, tile_zyx=layout.tile, overlap_zyx=layout.overlap,
                           read_tile=read_tile)


def stitch_tile_stores(
    tile_stores: Sequence[str | os.PathLike[str]],
    out_zarr: str | os.PathLike[str],
    *,
    chunks: Sequence[int] = (64, 64, 64),
    client: Any | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Blend tile stores into a new Zarr v3 volume store, atomically.

    Parameters
    ----------
    tile_stores : sequence of path-like
        Stores that together hold every tile of one grid exactly once.
    out_zarr : path-like
        Output volume store `(d, h, w)` float32 with the stores' voxel size and tilt range
        (:func:`cryo_pipeline.io.zarr_store.create_volume_zarr`); it appears under this
        name only once complete.
    chunks : (z, y, x)
        Output chunk = one Dask task (clipped to the volume).
    client : distributed.Client, optional
        Run the tasks there (:func:`cryo_pipeline.stitch.cluster.start_cluster`); else Dask's default scheduler.
    provenance, extra_attrs
        As for :func:`~cryo_pipeline.io.zarr_store.create_volume_zarr`.

    Notes
    -----
    The tasks are stored with ``da.store(..., lock=False)`` after checking that every
    Dask chunk is exactly one Zarr chunk. (``da.to_zarr`` into an existing array would
    first rechunk to Dask's ~128 MiB "auto" chunks, i.e. move the blocks between workers
    and hold 128 MiB per task.)
    """
    layout = read_tile_layout(tile_stores)
    chunks = as_zyx(tuple(chunks), "chunks")
    start = time.perf_counter()
    tilt_min, tilt_max = layout.tilt_range_deg or (None, None)
    with atomic_write_path(out_zarr) as tmp:
        target = create_volume_zarr(tmp, layout.volume_shape, chunks=chunks,
                                    voxel_size_angstrom=layout.voxel_size_angstrom, tilt_min_deg=tilt_min,
                                    tilt_max_deg=tilt_max, provenance=provenance, extra_attrs=extra_attrs)
        blocks = normalize_chunks(target.chunks, layout.volume_shape)
        blended = da.map_blocks(_blend_block, dtype=np.float32, chunks=blocks, layout=layout,
                                meta=np.empty((0, 0, 0), dtype=np.float32))
        if blended.chunks != normalize_chunks(target.chunks, target.shape):  # pragma: no cover - by construction
            raise AssertionError(f"dask chunks {blended.chunks} are not the zarr chunks {target.chunks}")
        stored = da.store(blended, target, lock=False, compute=False)
        if client is not None:
            client.compute(stored).result()
        else:
            dask.compute(stored)
    log.info("stitched %d tile store(s) into %s %s in %.1f s (%d chunk tasks)", len(layout.stores), out_zarr,
             layout.volume_shape, time.perf_counter() - start, blended.npartitions)
