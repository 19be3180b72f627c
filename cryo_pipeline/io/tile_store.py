"""Tile stores: unblended, overlapping tiles of one volume, written by one parallel job.

A job that computes part of a volume (a group of CryoGEN inference tiles, a CN slab)
writes its tiles to its own store; the Dask stitcher
(:mod:`cryo_pipeline.stitch.dask_blend`) blends all the stores of a volume. A store is
one Zarr v3 array ``(n_tiles, tz, ty, tx)`` float32 with **one chunk per tile** (or,
for big tiles such as CN slabs, tiles cut into chunks of ``chunk_px`` so a reader
fetches only the part it needs)
(dimension names ``["tile", "z", "y", "x"]``; ``n_tiles`` may be 0 for a group that
got no tile), **uncompressed** — an intermediate read once by the stitcher straight from its
chunk files (:mod:`cryo_pipeline.io.zarr_raw`); ``python -m bench codecs`` measured zstd/blosc
saving only ~4–15 % of float32 tomogram bytes for 1.5–3× the CPU — and the attributes

* ``origins``: ``[[z, y, x], ...]``, the volume index of each tile's first voxel, in
  the array's order,
* ``volume_shape_zyx``, ``tile_px``, ``overlap_px``: three ints each (the tile grid is
  :func:`cryo_pipeline.ops.blending.tile_origins_3d` of these),
* ``group``, ``n_groups``: which part of the grid this store holds (0-based),
* ``grid_origins_zyx`` (optional): three lists, the per-axis tile origins when the grid
  is not the regular one (CN slab windows spread evenly in y); the grid is their product,
* ``axes = "zyx"``, ``voxel_size_angstrom``, ``tilt_min_deg`` / ``tilt_max_deg`` (when
  known) and ``provenance``, as in :mod:`cryo_pipeline.io.zarr_store`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.zarr_store import _attributes

__all__ = ["REQUIRED_TILE_ATTRS", "create_tile_store", "open_tile_array", "open_tile_store", "write_tile_store"]

REQUIRED_TILE_ATTRS = ("origins", "volume_shape_zyx", "tile_px", "overlap_px", "voxel_size_angstrom", "group",
                       "n_groups")
_DIMENSION_NAMES = ["tile", "z", "y", "x"]


def _three(value: int | Sequence[int], name: str, path: Path) -> list[int]:
    values = [value] * 3 if np.isscalar(value) else list(value)
    if len(values) != 3:
        raise ValueError(f"{path}: {name} must be one int or three (z, y, x), got {value!r}")
    return [int(v) for v in values]


def _grid(path: Path, grid_origins_zyx, shape: list[int], tile: list[int]) -> list[list[int]]:
    """Check explicit per-axis origins: three strictly increasing lists inside ``[0, n − t]``."""
    axes = [list(map(int, axis)) for axis in grid_origins_zyx]
    if len(axes) != 3:
        raise ValueError(f"{path}: grid_origins_zyx must hold three lists (z, y, x), got {len(axes)}")
    for name, axis, n, t in zip("zyx", axes, shape, tile, strict=True):
        if not axis or any(b <= a for a, b in zip(axis, axis[1:])) or axis[0] < 0 or axis[-1] > n - t:
            raise ValueError(f"{path}: grid origins along {name} {axis} must be strictly increasing within "
                             f"[0, {n - t}] (axis {n}, tile {t})")
    return axes


def _geometry(path: Path, origins: np.ndarray, *, volume_shape_zyx, tile_px, overlap_px, group: int,
              n_groups: int, grid_origins_zyx=None) -> dict[str, Any]:
    """Check the tile geometry; return the tile attributes."""
    shape = _three(volume_shape_zyx, "volume_shape_zyx", path)
    tile, overlap = _three(tile_px, "tile_px", path), _three(overlap_px, "overlap_px", path)
    if any(not 1 <= t <= n for t, n in zip(tile, shape, strict=True)):
        raise ValueError(f"{path}: tile_px {tile} must be >= 1 and fit in the volume {shape}")
    if any(not 0 <= o < t for o, t in zip(overlap, tile, strict=True)):
        raise ValueError(f"{path}: overlap_px {overlap} must be >= 0 and smaller than tile_px {tile}")
    if not 0 <= int(group) < int(n_groups):
        raise ValueError(f"{path}: group {group} must be in [0, n_groups={n_groups})")
    if origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"{path}: origins must be (n_tiles, 3), got shape {origins.shape}")
    outside = np.flatnonzero(np.any((origins < 0) | (origins + np.asarray(tile) > np.asarray(shape)), axis=1))
    if outside.size:
        raise ValueError(f"{path}: {outside.size} tile(s) of size {tile} reach outside the volume {shape} "
                         f"(first origin {origins[outside[0]].tolist()})")
    attrs = {"origins": origins.tolist(), "volume_shape_zyx": shape, "tile_px": tile, "overlap_px": overlap,
             "group": int(group), "n_groups": int(n_groups)}
    if grid_origins_zyx is not None:
        attrs["grid_origins_zyx"] = _grid(path, grid_origins_zyx, shape, tile)
    return attrs


def create_tile_store(
    path: str | os.PathLike[str],
    *,
    origins: np.ndarray,
    volume_shape_zyx: Sequence[int],
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    voxel_size_angstrom: float,
    group: int,
    n_groups: int,
    tilt_min_deg: float | None = None,
    tilt_max_deg: float | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    grid_origins_zyx: Sequence[Sequence[int]] | None = None,
    chunk_px: int | Sequence[int] | None = None,
) -> zarr.Array:
    """Create an empty tile store for a streaming writer (NOT atomic by itself).

    Create it at the temporary path of :func:`cryo_pipeline.io.atomic.atomic_write_path`
    and write whole tiles (``store[i:j] = tiles``: whole chunks, so parallel writers of
    distinct tiles never share a chunk).

    Parameters
    ----------
    path : path-like
        New store folder; must not exist.
    origins : `(k, 3)` int array
        Origin of each tile in the volume (``k`` may be 0).
    volume_shape_zyx : (d, h, w)
    tile_px, overlap_px : int or (z, y, x)
        Tile size (every tile must lie inside the volume) and blending overlap.
    voxel_size_angstrom, tilt_min_deg, tilt_max_deg, provenance
        As for :func:`cryo_pipeline.io.zarr_store.create_volume_zarr`.
    group, n_groups : int
        This store's part of the grid, ``0 <= group < n_groups``.
    extra_attrs : mapping, optional
        More JSON-able attributes; may not override the ones above.
    grid_origins_zyx : three sequences of int, optional
        Per-axis origins of an irregular grid (default: the regular grid of
        :func:`cryo_pipeline.ops.blending.tile_origins_3d`).
    chunk_px : int or (z, y, x), optional
        Chunk of a tile (clipped to the tile); default the whole tile.

    Returns
    -------
    zarr.Array
        `(k, tz, ty, tx)` float32, opened for writing.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path}: already exists; write into a new (temporary) path")
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size == 0:
        origins = origins.reshape(0, 3)
    tile_attrs = _geometry(path, origins, volume_shape_zyx=volume_shape_zyx, tile_px=tile_px,
                           overlap_px=overlap_px, group=group, n_groups=n_groups, grid_origins_zyx=grid_origins_zyx)
    clash = sorted(set(extra_attrs or {}) & set(tile_attrs))
    if clash:
        raise ValueError(f"{path}: extra_attrs may not set the tile attributes {clash}")
    attrs = _attributes(path, voxel_size_angstrom=voxel_size_angstrom, tilt_min_deg=tilt_min_deg,
                        tilt_max_deg=tilt_max_deg, provenance=provenance,
                        extra_attrs={**tile_attrs, **dict(extra_attrs or {})})
    tile = tile_attrs["tile_px"]
    chunk = tile if chunk_px is None else [min(t, c) for t, c in zip(tile, _three(chunk_px, "chunk_px", path),
                                                                     strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return zarr.create_array(store=str(path), shape=(len(origins), *tile), chunks=(1, *chunk), dtype=np.float32,
                             dimension_names=_DIMENSION_NAMES, attributes=attrs, fill_value=0, zarr_format=3,
                             compressors=None)  # uncompressed: the stitcher reads the chunk files directly


def write_tile_store(
    path: str | os.PathLike[str],
    tiles: np.ndarray,
    origins: np.ndarray,
    *,
    volume_shape_zyx: Sequence[int],
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    voxel_size_angstrom: float,
    group: int = 0,
    n_groups: int = 1,
    tilt_min_deg: float | None = None,
    tilt_max_deg: float | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    grid_origins_zyx: Sequence[Sequence[int]] | None = None,
    chunk_px: int | Sequence[int] | None = None,
) -> None:
    """Write in-memory tiles to a new tile store, atomically.

    Parameters
    ----------
    path : path-like
        Store folder; appears under this name only once complete (an existing one is replaced).
    tiles : `(k, tz, ty, tx)` array
        Unblended tiles, stored as float32; ``tile_px`` must match ``tiles.shape[1:]``.
    origins : `(k, 3)` int array
        One origin per tile.
    volume_shape_zyx, tile_px, overlap_px, voxel_size_angstrom, group, n_groups, tilt_min_deg, tilt_max_deg,
    provenance, extra_attrs, grid_origins_zyx, chunk_px
        As for :func:`create_tile_store`.
    """
    path = Path(path)
    tiles = np.asarray(tiles, dtype=np.float32)
    tile = _three(tile_px, "tile_px", path)
    if tiles.ndim != 4 or list(tiles.shape[1:]) != tile:
        raise ValueError(f"{path}: tiles must be (k, *tile_px) = (k, {', '.join(map(str, tile))}), "
                         f"got shape {tiles.shape}")
    if len(tiles) != len(np.asarray(origins).reshape(-1, 3)):
        raise ValueError(f"{path}: {len(tiles)} tiles but {len(np.asarray(origins).reshape(-1, 3))} origins")
    with atomic_write_path(path) as tmp:
        store = create_tile_store(tmp, origins=origins, volume_shape_zyx=volume_shape_zyx, tile_px=tile,
                                  overlap_px=overlap_px, voxel_size_angstrom=voxel_size_angstrom, group=group,
                                  n_groups=n_groups, tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg,
                                  provenance=provenance, extra_attrs=extra_attrs,
                                  grid_origins_zyx=grid_origins_zyx, chunk_px=chunk_px)
        if len(tiles):
            store[...] = tiles


def open_tile_array(path: str | os.PathLike[str]) -> zarr.Array:
    """Open a tile store's array read-only, without checking its attributes (for workers reading tiles).

    Returns
    -------
    zarr.Array
        `(k, tz, ty, tx)`; ``array[i]`` reads one chunk (tile ``i``).
    """
    try:
        return zarr.open_array(store=str(path), mode="r")
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a Zarr array store ({type(err).__name__}: {err})") from None


def open_tile_store(path: str | os.PathLike[str]) -> tuple[zarr.Array, dict[str, Any]]:
    """Open a tile store and check it.

    Parameters
    ----------
    path : path-like
        Store folder written by :func:`write_tile_store` or :func:`create_tile_store`.

    Returns
    -------
    array : zarr.Array
        `(k, tz, ty, tx)` float32, read-only.
    attrs : dict
        The attributes; ``origins`` as a `(k, 3)` int64 array, ``volume_shape_zyx``,
        ``tile_px`` and ``overlap_px`` as tuples of three ints.

    Raises
    ------
    ValueError
        Not a folder / Zarr store, a required attribute missing (named), or the array's
        shape disagreeing with ``tile_px`` and the number of origins.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a tile store ({'no such folder' if not path.exists() else 'not a folder'})")
    array = open_tile_array(path)
    attrs = dict(array.attrs)
    missing = [key for key in REQUIRED_TILE_ATTRS if key not in attrs]
    if missing:
        raise ValueError(f"{path}: tile store has no {', '.join(map(repr, missing))} attribute(s); it was not "
                         f"written by cryo_pipeline.io.tile_store (required: {', '.join(REQUIRED_TILE_ATTRS)})")
    attrs["origins"] = np.asarray(attrs["origins"], dtype=np.int64).reshape(-1, 3)
    for key in ("volume_shape_zyx", "tile_px", "overlap_px"):
        attrs[key] = tuple(_three(attrs[key], key, path))
    expected = (len(attrs["origins"]), *attrs["tile_px"])
    if array.ndim != 4 or tuple(array.shape) != expected:
        raise ValueError(f"{path}: array shape {tuple(array.shape)} does not match {len(attrs['origins'])} origins "
                         f"of tiles {attrs['tile_px']} (expected {expected})")
    return array, attrs
