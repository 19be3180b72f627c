"""Separable blending of a product tile grid: one axis at a time, copies where one tile covers.

The blend of :mod:`cryo_pipeline.ops.blending` is ``out = Σ_t w_t·tile_t / Σ_t w_t`` with the
separable window ``w_t(z, y, x) = wz(z − oz)·wy(y − oy)·wx(x − ox)`` on a grid that is the
product of three 1-D grids of origins. Numerator and normaliser both factorise, so the 3-D
blend is three nested 1-D blends::

    out = Σ_a nz_a Σ_b ny_b Σ_c nx_c tile_abc,      n_j(p) = w_j(p) / Σ_i w_i(p)

Along one axis the positions fall into *segments* over which the set of covering tiles is
constant (:meth:`AxisGrid.segments`). Over a segment covered by tiles ``j1 < j2 < …`` the 1-D
blend is the running weighted mean ``r ← v_j1``, then ``r ← r + t_k·(v_jk − r)`` with
``t_k = w_jk / Σ_{i≤k} w_ji`` (the normaliser cancels; the weights of every voxel sum to
exactly 1). Hence, in float32 and with no normaliser array anywhere:

* a voxel covered by one tile on every axis is a plain **copy** (bit-exact);
* tiles that agree (exact crops, a constant) come back **exactly** (``v − r = 0``);
* only overlap segments are computed, with one lerp each; the rest is copied.

:func:`blend_box` fills one output box from a ``read(tile_index_zyx, box_in_tile)`` callback;
the callers (the Dask stitcher, :func:`cryo_pipeline.ops.blending.blend_grid_3d`) decide where
the tiles come from (:func:`cryo_pipeline.ops.blending.blend_tiles_3d` for tiles in memory).
Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from cryo_pipeline.ops.blending import blend_window_1d, tile_origins_1d

__all__ = ["AxisGrid", "Segment", "blend_box", "product_grid"]

#: Axis order of the nested 1-D blends when every axis has overlaps (x innermost: contiguous);
#: axes with a single segment go outermost (see :func:`_blend_order`).
BLEND_ORDER = (1, 0, 2)


@lru_cache(maxsize=64)
def _window(tile: int, overlap: int) -> np.ndarray:
    window = blend_window_1d(tile, overlap=overlap)
    window.flags.writeable = False
    return window


@dataclass(frozen=True)
class Segment:
    """Positions ``[start, stop)`` of one axis covered by the same tiles.

    Attributes
    ----------
    start, stop : int
        Volume coordinates (``stop`` exclusive).
    tiles : tuple of int
        Indices of the covering tiles along this axis, ascending.
    steps : tuple of `(stop − start,)` float32 arrays
        ``t_k`` of the running weighted mean for ``tiles[1:]`` (empty for one tile).
    """

    start: int
    stop: int
    tiles: tuple[int, ...]
    steps: tuple[np.ndarray, ...] = field(repr=False)


@dataclass(frozen=True)
class AxisGrid:
    """One axis of a product tile grid: tile origins, tile size and window ramp.

    Attributes
    ----------
    length : int
        Axis length.
    tile : int
        Tile extent along the axis.
    overlap : int
        Ramp length of the window (:func:`~cryo_pipeline.ops.blending.blend_window_1d`).
    origins : tuple of int
        Strictly increasing origins in ``[0, length − tile]`` whose tiles cover ``[0, length)``.
    """

    length: int
    tile: int
    overlap: int
    origins: tuple[int, ...]

    def __post_init__(self) -> None:
        o = np.asarray(self.origins, dtype=np.int64)
        if not 1 <= self.tile <= self.length or not 0 <= self.overlap < self.tile:
            raise ValueError(f"axis grid: need 1 <= tile ({self.tile}) <= length ({self.length}) and "
                             f"0 <= overlap ({self.overlap}) < tile")
        if o.size == 0 or np.any(np.diff(o) <= 0) or o[0] != 0 or o[-1] != self.length - self.tile:
            raise ValueError(f"axis grid origins {list(self.origins)} must increase strictly from 0 to "
                             f"length - tile = {self.length - self.tile}")
        if np.any(np.diff(o) > self.tile):
            gap = int(np.flatnonzero(np.diff(o) > self.tile)[0])
            raise ValueError(f"axis grid leaves positions {int(o[gap]) + self.tile}..{int(o[gap + 1]) - 1} uncovered "
                             f"(origins {list(self.origins)}, tile {self.tile})")

    @classmethod
    def regular(cls, length: int, *, tile: int, overlap: int) -> AxisGrid:
        """The grid of :func:`~cryo_pipeline.ops.blending.tile_origins_1d`."""
        origins = tile_origins_1d(length, tile=tile, overlap=overlap)
        return cls(int(length), int(tile), int(overlap), tuple(int(v) for v in origins))

    def tiles_between(self, lo: int, hi: int) -> np.ndarray:
        """Indices of the tiles that intersect ``[lo, hi)``."""
        o = np.asarray(self.origins)
        return np.flatnonzero((o < hi) & (o + self.tile > lo))

    def segments(self, lo: int, hi: int) -> list[Segment]:
        """The segments of ``[lo, hi)``, in order, with their running-mean steps."""
        if not 0 <= lo < hi <= self.length:
            raise ValueError(f"segment range [{lo}, {hi}) must lie in [0, {self.length}) and not be empty")
        o = np.asarray(self.origins)
        cuts = np.concatenate([[lo, hi], o, o + self.tile])
        cuts = np.unique(cuts[(cuts >= lo) & (cuts <= hi)])
        window = _window(self.tile, self.overlap)
        out = []
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            tiles = np.flatnonzero((o <= a) & (o + self.tile >= b))
            total = window[a - o[tiles[0]] : b - o[tiles[0]]].copy()
            steps = []
            for j in tiles[1:]:
                w = window[a - o[j] : b - o[j]]
                total += w
                steps.append((w / total).astype(np.float32))
            out.append(Segment(a, b, tuple(int(j) for j in tiles), tuple(steps)))
        return out


Reader = Callable[[tuple[int, int, int], tuple[slice, slice, slice]], np.ndarray]


class _Scratch:
    """One reusable float32 buffer per nesting level (overlap segments only; grows on demand)."""

    def __init__(self) -> None:
        self._buffers: dict[int, np.ndarray] = {}

    def get(self, level: int, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self._buffers.get(level)
        if buf is None or buf.size < size:
            buf = self._buffers[level] = np.empty(size, dtype=np.float32)
        return buf[:size].reshape(shape)


def _lerp_into(dst: np.ndarray, value: np.ndarray, step: np.ndarray, axis: int, tmp: np.ndarray) -> None:
    """``dst += step·(value − dst)`` with ``step`` along ``axis``; ``tmp`` may be ``value`` itself."""
    shape = [1, 1, 1]
    shape[axis] = step.size
    np.subtract(value, dst, out=tmp)
    np.multiply(tmp, step.reshape(shape), out=tmp)
    np.add(dst, tmp, out=dst)


def blend_box(
    out: np.ndarray,
    lo_zyx: Sequence[int],
    *,
    axes: Sequence[AxisGrid],
    read: Reader,
    segments: Sequence[Sequence[Segment]] | None = None,
    scratch_reads: bool = False,
) -> np.ndarray:
    """Fill ``out`` with the blend of the box ``[lo, lo + out.shape)``.

    Parameters
    ----------
    out : `(dz, dy, dx)` float32 array
        The box (any writable float32 array, e.g. a view into a larger buffer).
    lo_zyx : (z, y, x) ints
        Volume coordinates of ``out[0, 0, 0]``.
    axes : three AxisGrid
        The grid along z, y and x.
    read : callable
        ``read((a, b, c), box)`` returns tile ``(a, b, c)`` (per-axis tile indices) at the
        tile-local ``box`` (three slices), shape = the box's extents; called only for tiles
        that cover part of ``out``, once per segment cell. With ``scratch_reads`` the returned
        array is used as scratch space (overwritten): return a writable array whose data no
        later read needs (a fresh copy, or a cached part read once per cell).
    scratch_reads : bool
        See ``read``; saves a scratch buffer and a pass per lerp of the innermost axis.
    segments : three lists of Segment, optional
        ``axes[k].segments(lo[k], hi[k])`` if already computed (e.g. shared by many boxes).

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    if out.dtype != np.float32 or out.ndim != 3:
        raise ValueError(f"blend_box: out must be a 3-D float32 array, got {out.dtype} {out.shape}")
    lo = [int(v) for v in lo_zyx]
    if segments is None:
        segments = [axis.segments(a, a + n) for axis, a, n in zip(axes, lo, out.shape, strict=True)]
    origins = [np.asarray(axis.origins) for axis in axes]
    scratch = _Scratch()
    order = _blend_order(segments)

    def fill(dst: np.ndarray, level: int, tile: list[int], box: list[slice]) -> None:
        axis = order[level]
        base = lo[axis]
        for seg in segments[axis]:
            where = [slice(None)] * 3
            where[axis] = slice(seg.start - base, seg.stop - base)
            view = dst[tuple(where)]
            for k, j in enumerate(seg.tiles):
                tile[axis] = j
                box[axis] = slice(seg.start - int(origins[axis][j]), seg.stop - int(origins[axis][j]))
                if level == 2:
                    value = np.asarray(read((tile[0], tile[1], tile[2]), (box[0], box[1], box[2])))
                    if value.shape != view.shape:
                        raise ValueError(f"read({tuple(tile)}, box) returned shape {value.shape}, "
                                         f"expected {view.shape}")
                    if k == 0:
                        view[...] = value
                    else:
                        tmp = value if scratch_reads else scratch.get(level, view.shape)
                        _lerp_into(view, value, seg.steps[k - 1], axis, tmp)
                elif k == 0:
                    fill(view, level + 1, tile, box)
                else:
                    tmp = scratch.get(level, view.shape)
                    fill(tmp, level + 1, tile, box)
                    _lerp_into(view, tmp, seg.steps[k - 1], axis, tmp)

    try:
        fill(out, 0, [0, 0, 0], [slice(None)] * 3)
    finally:
        del fill  # the recursive closure refers to itself: break the cycle so ``read`` (and its buffers) go now
    return out


def _blend_order(segments: Sequence[Sequence[Segment]]) -> tuple[int, int, int]:
    """Nesting order: axes with one segment outermost (nothing to split), then y, z, x.

    A CN slab grid (one tile in z and x) thus lerps along y innermost, straight from the reads.
    """
    single = [axis for axis in BLEND_ORDER if len(segments[axis]) == 1]
    return tuple(single + [axis for axis in BLEND_ORDER if axis not in single])  # type: ignore[return-value]


def product_grid(origins: np.ndarray, shape_zyx: Sequence[int], tile_zyx: Sequence[int],
                 overlap_zyx: Sequence[int]) -> tuple[list[AxisGrid], dict[tuple[int, int, int], int]] | None:
    """The per-axis grids of tile origins that form a product grid, and the tile index of each
    ``(a, b, c)``; None if the origins are not every combination of their per-axis values exactly
    once, or leave part of the volume uncovered."""
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 3)
    per_axis = [np.unique(origins[:, k]) for k in range(3)]
    position = [{int(v): i for i, v in enumerate(axis)} for axis in per_axis]
    index = {tuple(position[k][int(row[k])] for k in range(3)): i for i, row in enumerate(origins)}
    if len(index) != len(origins) or len(index) != int(np.prod([len(a) for a in per_axis])):
        return None
    try:
        axes = [AxisGrid(int(n), int(t), int(o), tuple(int(v) for v in a))
                for n, t, o, a in zip(shape_zyx, tile_zyx, overlap_zyx, per_axis, strict=True)]
    except ValueError:
        return None
    return axes, index  # type: ignore[return-value]
