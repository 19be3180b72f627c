"""Overlapping tiles of a volume and their smooth, exactly normalised blending.

One tiling and one window for every tiled computation in the package (chunked CTF
deconvolution, CryoGEN tiled inference, the CN/Dask slab stitcher):

* **Grid.** Per axis, tiles of ``tile`` samples start every ``tile - overlap`` samples
  from 0; the last tile is moved back to end flush with the volume, so every voxel is
  covered and every tile has the full size (:func:`tile_origins_1d`). The 3D grid is
  the product of the three 1D grids (:func:`tile_origins_3d`, z-major order).
* **Window.** A raised cosine, ``sin²(π/2 · (i + ½)/overlap)``, over the first and
  last ``overlap`` samples of a tile and 1 in between (:func:`blend_window_1d`). It is
  sampled at half-sample offsets, so it is **strictly positive**: a voxel covered by a
  single tile (volume borders) keeps a defined weight. The 3D window is the separable
  product.
* **Blend.** out = Σ w·tile / Σ w. Dividing by the summed weights makes the result
  exact for any tiles that agree (a constant, or exact crops, comes back unchanged),
  whatever the volume size. Because the window is separable and the grid a product,
  Σ w = Dz ⊗ Dy ⊗ Dx with ``D = window_sum_1d(...)`` per axis.

Three ways to blend: **push** (:class:`BlendAccumulator`: add tiles one by one into an
output array or ``np.memmap``, then divide in place; O(one tile) extra memory; tiled
inference and chunked deconvolution), **separable gather**
(:mod:`cryo_pipeline.ops.separable_blend`: one output box from the tiles of a product grid,
one axis at a time, single-cover voxels copied exactly; the stitcher) and the general
**gather** reference (:func:`blend_region_3d`: Σ w·tile / Σ w in float64 for tiles at any
placement; tests and small volumes).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

__all__ = [
    "BlendAccumulator",
    "as_zyx",
    "blend_region_3d",
    "blend_tiles_3d",
    "blend_window_1d",
    "blend_window_3d",
    "release_pages",
    "slab_ranges",
    "tile_origins_1d",
    "tile_origins_3d",
    "window_sum_1d",
]

#: Slab size (voxels) for in-place passes over a full volume (16 MiB of float32).
SLAB_VOXELS = 2**22


def as_zyx(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    """``8`` → (8, 8, 8); a 3-sequence → a tuple of ints (z, y, x); anything else is an error."""
    values = (value,) * 3 if np.isscalar(value) else tuple(value)
    if len(values) != 3:
        raise ValueError(f"{name} must be one int or three (z, y, x), got {value!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def tile_origins_1d(length: int, *, tile: int, overlap: int) -> np.ndarray:
    """Start indices of overlapping tiles along one axis.

    Parameters
    ----------
    length : int
        Axis length (samples).
    tile : int
        Tile size, ``1 <= tile <= length``.
    overlap : int
        Samples shared by neighbouring tiles, ``0 <= overlap < tile``.

    Returns
    -------
    numpy.ndarray
        ``(n_tiles,)`` int64: ``0, s, 2s, ...`` with stride ``s = tile - overlap``, the
        last one ``length - tile`` (flush with the end; it may overlap its neighbour by
        more than ``overlap``).
    """
    length, tile, overlap = int(length), int(tile), int(overlap)
    if tile < 1 or tile > length:
        raise ValueError(f"tile ({tile}) must be between 1 and the axis length ({length})")
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be >= 0 and smaller than the tile ({tile})")
    origins = np.arange(0, length - tile + 1, tile - overlap, dtype=np.int64)
    if origins[-1] + tile < length:
        origins = np.append(origins, length - tile)
    return origins


def tile_origins_3d(
    shape_zyx: Sequence[int], *, tile_zyx: int | Sequence[int], overlap_zyx: int | Sequence[int]
) -> np.ndarray:
    """Origins of the 3D tile grid (product of the per-axis grids, z-major).

    Returns
    -------
    numpy.ndarray
        ``(n_tiles, 3)`` int64 ``(z, y, x)`` tile origins.
    """
    shape, tile = as_zyx(shape_zyx, "shape_zyx"), as_zyx(tile_zyx, "tile_zyx")
    overlap = as_zyx(overlap_zyx, "overlap_zyx")
    axes = [tile_origins_1d(n, tile=t, overlap=o) for n, t, o in zip(shape, tile, overlap, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)


def blend_window_1d(tile: int, *, overlap: int) -> np.ndarray:
    """Raised-cosine blending window, strictly positive.

    Parameters
    ----------
    tile : int
        Window length.
    overlap : int
        Ramp length at each end, ``0 <= overlap < tile``; 0 gives all ones.

    Returns
    -------
    numpy.ndarray
        ``(tile,)`` float64: ``sin²(π/2·(i+½)/overlap)`` for ``i < overlap``, mirrored at
        the other end, 1 in between (where the ramps would cross, the smaller one).
        Symmetric, in (0, 1]; two ramps of neighbours ``tile - overlap`` apart sum to 1.
    """
    tile, overlap = int(tile), int(overlap)
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ValueError(f"blend window: need tile >= 1 and 0 <= overlap < tile, got tile {tile}, overlap {overlap}")
    if overlap == 0:
        return np.ones(tile)
    i = np.arange(tile, dtype=np.float64)
    ramp = lambda j: np.sin(0.5 * np.pi * np.minimum(1.0, (j + 0.5) / overlap)) ** 2  # noqa: E731
    return np.minimum(ramp(i), ramp(tile - 1 - i))


def blend_window_3d(tile_zyx: int | Sequence[int], *, overlap_zyx: int | Sequence[int]) -> np.ndarray:
    """Separable 3D window: ``wz[:, None, None] * wy[None, :, None] * wx[None, None, :]``.

    Returns
    -------
    numpy.ndarray
        ``tile_zyx``-shaped float64 window, strictly positive.
    """
    tile, overlap = as_zyx(tile_zyx, "tile_zyx"), as_zyx(overlap_zyx, "overlap_zyx")
    wz, wy, wx = (blend_window_1d(t, overlap=o) for t, o in zip(tile, overlap, strict=True))
    return wz[:, None, None] * wy[None, :, None] * wx[None, None, :]


def window_sum_1d(length: int, *, tile: int, overlap: int) -> np.ndarray:
    """Sum of the 1D windows placed at every origin of :func:`tile_origins_1d`.

    Returns
    -------
    numpy.ndarray
        ``(length,)`` float64, > 0 everywhere; the 3D normaliser is the outer product
        of the three axes' sums.
    """
    window = blend_window_1d(tile, overlap=overlap)
    total = np.zeros(int(length))
    for origin in tile_origins_1d(length, tile=tile, overlap=overlap):
        total[origin : origin + tile] += window
    return total


def release_pages(array: np.ndarray) -> bool:
    """Let the kernel drop a shared memory map's pages from this process's resident set.

    For an ``np.memmap`` (or a view of one) opened with mode ``r``, ``r+`` or ``w+`` the
    mapping is told ``MADV_DONTNEED``: the data stay in the file / page cache and are
    faulted back in on the next access, but the pages no longer count towards this
    process's RSS. Streaming passes call this so that a memory-mapped tomogram never
    becomes resident as a whole. No-op for in-memory arrays and for copy-on-write
    (mode ``c``) maps, whose private changes would be lost.

    Returns
    -------
    bool
        True if pages were released.
    """
    handle = getattr(array, "_mmap", None)
    if (not isinstance(handle, mmap.mmap) or getattr(array, "mode", None) not in ("r", "r+", "w+")
            or not hasattr(mmap, "MADV_DONTNEED")):
        return False
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed map or unsupported platform
        return False
    return True


def slab_ranges(depth: int, plane: int) -> list[tuple[int, int]]:
    """``[(z0, z1), ...]`` covering ``range(depth)`` in slabs of about :data:`SLAB_VOXELS` voxels."""
    step = max(1, SLAB_VOXELS // max(1, plane))
    return [(z, min(depth, z + step)) for z in range(0, depth, step)]


class BlendAccumulator:
    """Push-style blending into a full-size float32 array or memory map.

    Parameters
    ----------
    shape_zyx : (d, h, w)
        Output shape.
    tile_zyx, overlap_zyx : int or (z, y, x)
        Tile size and overlap of the grid (:func:`tile_origins_3d`).
    out : `(d, h, w)` float32 array or ``np.memmap``, optional
        Where to accumulate (zeroed here, slab by slab); a new zero array if None.

    Notes
    -----
    Every tile of the grid must be added exactly once (origins are checked against the
    grid); :meth:`finalize` then divides by the separable normaliser Dz ⊗ Dy ⊗ Dx, slab
    by slab, so no full-size normaliser is ever built. Extra memory: one tile. With a
    memory map, pages are released plane by plane (:func:`release_pages`): the kernel maps
    64 KiB around every faulting page, so a tile would otherwise pin whole planes.
    """

    def __init__(self, shape_zyx, *, tile_zyx, overlap_zyx, out: np.ndarray | None = None) -> None:
        self.shape = as_zyx(shape_zyx, "shape_zyx")
        self.tile = as_zyx(tile_zyx, "tile_zyx")
        self.overlap = as_zyx(overlap_zyx, "overlap_zyx")
        self.origins = tile_origins_3d(self.shape, tile_zyx=self.tile, overlap_zyx=self.overlap)
        self.window = blend_window_3d(self.tile, overlap_zyx=self.overlap).astype(np.float32)
        self._sums = [window_sum_1d(n, tile=t, overlap=o)
                      for n, t, o in zip(self.shape, self.tile, self.overlap, strict=True)]
        self._pending = {tuple(int(v) for v in o) for o in self.origins}
        if out is None:
            out = np.zeros(self.shape, dtype=np.float32)
        else:
            if tuple(out.shape) != self.shape or out.dtype != np.float32:
                raise ValueError(
                    f"out must be a float32 array of shape {self.shape}, got {out.dtype} {tuple(out.shape)}")
            for z0, z1 in slab_ranges(self.shape[0], self.shape[1] * self.shape[2]):
                out[z0:z1] = 0.0
                release_pages(out)
        self.out = out

    @property
    def n_tiles(self) -> int:
        """Number of tiles in the grid."""
        return int(self.origins.shape[0])

    def add(self, tile: np.ndarray, origin_zyx: Sequence[int]) -> None:
        """Add ``window · tile`` at ``origin_zyx``.

        Parameters
        ----------
        tile : `tile_zyx` array
            One tile's values.
        origin_zyx : (z, y, x) ints
            Its origin, one of :attr:`origins` not added before.
        """
        key = tuple(int(v) for v in origin_zyx)
        if key not in self._pending:
            on_grid = key in {tuple(o) for o in self.origins.tolist()}
            what = "was already added" if on_grid else "is not on the tile grid"
            raise ValueError(f"tile origin {key} {what} (grid of {self.n_tiles} tiles {self.tile} over {self.shape})")
        if tuple(tile.shape) != self.tile:
            raise ValueError(f"tile at {key} has shape {tuple(tile.shape)}, expected {self.tile}")
        self._pending.discard(key)
        weighted = self.window * np.asarray(tile, dtype=np.float32)
        z, y, x = key
        rows, cols = slice(y, y + self.tile[1]), slice(x, x + self.tile[2])
        for i, plane in enumerate(weighted):  # a memory map keeps at most one plane's pages resident
            self.out[z + i, rows, cols] += plane
            release_pages(self.out)

    def finalize(self) -> np.ndarray:
        """Divide the accumulated sum by Σ w in place (slab by slab along z); return ``out``."""
        if self._pending:
            first = min(self._pending)
            raise ValueError(
                f"{len(self._pending)} of {self.n_tiles} tiles were never added (first missing origin {first}); "
                "voxels there would have no value"
            )
        dz, dy, dx = self._sums
        den_yx = (dy[:, None] * dx[None, :]).astype(np.float32)
        for z0, z1 in slab_ranges(self.shape[0], self.shape[1] * self.shape[2]):
            self.out[z0:z1] /= dz[z0:z1, None, None].astype(np.float32) * den_yx
            release_pages(self.out)
        return self.out


@lru_cache(maxsize=8)
def _cached_window_3d(tile: tuple[int, int, int], overlap: tuple[int, int, int]) -> np.ndarray:
    window = blend_window_3d(tile, overlap_zyx=overlap)
    window.flags.writeable = False
    return window


def blend_region_3d(
    lo_zyx: Sequence[int],
    hi_zyx: Sequence[int],
    *,
    origins: np.ndarray,
    tile_zyx: int | Sequence[int],
    overlap_zyx: int | Sequence[int],
    read_tile: Callable[[int, tuple[slice, slice, slice]], np.ndarray],
) -> np.ndarray:
    """Gather-style blend of the output box ``[lo, hi)`` from the tiles overlapping it.

    Parameters
    ----------
    lo_zyx, hi_zyx : (z, y, x) ints
        Box corners (``hi`` exclusive) in volume coordinates.
    origins : `(n, 3)` int array
        Tile origins (any placement; need not be a regular grid).
    tile_zyx, overlap_zyx : int or (z, y, x)
        Tile size and window ramp length.
    read_tile : callable
        ``read_tile(i, box)`` returns ``tile_i[box]`` (``box``: three slices inside the
        tile), so a store reads only the part that overlaps the region; called only for
        tiles that overlap the box.

    Returns
    -------
    numpy.ndarray
        `(hi - lo)` float32: Σ w·tile / Σ w over the overlapping tiles.
    """
    lo, hi = np.asarray(as_zyx(lo_zyx, "lo_zyx")), np.asarray(as_zyx(hi_zyx, "hi_zyx"))
    tile = np.asarray(as_zyx(tile_zyx, "tile_zyx"))
    if np.any(hi <= lo):
        raise ValueError(f"empty region: lo {tuple(lo.tolist())} must be < hi {tuple(hi.tolist())} on every axis")
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 3)
    window = _cached_window_3d(tuple(int(t) for t in tile), as_zyx(overlap_zyx, "overlap_zyx"))
    num = np.zeros(tuple(hi - lo), dtype=np.float64)
    den = np.zeros_like(num)
    for i in np.flatnonzero(np.all((origins < hi) & (origins + tile > lo), axis=1)):
        o = origins[i]
        a, b = np.maximum(lo, o), np.minimum(hi, o + tile)
        src = tuple(slice(s, e) for s, e in zip(a - o, b - o, strict=True))
        dst = tuple(slice(s, e) for s, e in zip(a - lo, b - lo, strict=True))
        values = np.asarray(read_tile(int(i), src))
        expected = tuple((b - a).tolist())
        if tuple(values.shape) != expected:
            raise ValueError(f"read_tile({i}, box) returned shape {values.shape}, expected {expected}")
        num[dst] += window[src] * values
        den[dst] += window[src]
    if not np.all(den > 0):
        first = tuple(int(v) for v in np.argwhere(den <= 0)[0] + lo)
        raise ValueError(f"{int(np.sum(den <= 0))} voxels of the box {tuple(lo.tolist())}..{tuple(hi.tolist())} "
                         "are covered by no tile "
                         f"(first {first})")
    return (num / den).astype(np.float32)


def blend_tiles_3d(
    tiles: np.ndarray | Sequence[np.ndarray],
    origins: np.ndarray,
    shape_zyx: Sequence[int],
    *,
    overlap_zyx: int | Sequence[int],
) -> np.ndarray:
    """Blend in-memory tiles into a `shape_zyx` float32 volume.

    Tiles on a product grid (every :func:`tile_origins_3d` grid) are blended separably
    (:mod:`cryo_pipeline.ops.separable_blend`: voxels covered by one tile copied exactly,
    overlaps lerped in float32); any other placement by :func:`blend_region_3d` (float64).

    Parameters
    ----------
    tiles : `(n, tz, ty, tx)` array or sequence of n `(tz, ty, tx)` arrays
    origins : `(n, 3)` int array
    shape_zyx : (d, h, w)
    overlap_zyx : int or (z, y, x)
        Window ramp length.
    """
    if len(tiles) == 0:
        raise ValueError("blend_tiles_3d: no tiles given")
    if len(tiles) != len(origins):
        raise ValueError(f"blend_tiles_3d: {len(tiles)} tiles but {len(origins)} origins")
    from cryo_pipeline.ops.separable_blend import blend_box, product_grid  # it builds on this module

    shape, tile = as_zyx(shape_zyx, "shape_zyx"), tuple(int(n) for n in np.shape(tiles[0]))
    grid = product_grid(origins, shape, tile, as_zyx(overlap_zyx, "overlap_zyx"))
    if grid is None:
        return blend_region_3d((0, 0, 0), shape, origins=origins, tile_zyx=tile, overlap_zyx=overlap_zyx,
                               read_tile=lambda i, box: np.asarray(tiles[i])[box])
    axes, index = grid
    return blend_box(np.empty(shape, dtype=np.float32), (0, 0, 0), axes=axes,
                     read=lambda abc, box: np.asarray(tiles[index[abc]], dtype=np.float32)[box])
