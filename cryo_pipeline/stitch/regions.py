"""Region tasks of the stitch: one output box each, swept along y, every tile voxel read once.

The output volume is cut into *regions* ``[z0, z1) × [0, h) × [x0, x1)``: one chunk layer of the
output Zarr in z, a run of whole chunks in x (as wide as the memory budget allows, see
:func:`plan_regions`), all of y. A task (:func:`stitch_region`) sweeps its region along y in
*bands* of one output chunk row: for each band it blends the tiles with
:func:`cryo_pipeline.ops.separable_blend.blend_box` (single-cover voxels copied, overlaps
lerped), writes the band's Zarr chunks (whole chunks: no other task touches them) and its MRC
bytes (:class:`cryo_pipeline.io.mrc_regions.MrcRegionWriter`), and folds it into its sums:
min, max, Σv, Σv² for the MRC header and, for CN slabs, Σ|v[y+1] − v[y]| per row pair for the
seam ratio — so nothing reads the volume again after the stitch.

Each tile part a task needs — the tile's z-planes and columns inside the region, and its rows
inside the band (large CN slabs, dropped after the band) or all its rows from the band on
(small CryoGEN tiles, kept until the sweep has passed them) — is read **once**, straight from
the tile store's chunk files (:class:`cryo_pipeline.io.zarr_raw.ChunkFileReader`: one read per
span or row run, no decoding); since the regions and bands partition the volume, every stored
voxel is read once in all. Output chunks are written as files the same way (``ChunkFileWriter``).

**Block hook**: ``on_block(lo_zyx, band)`` is called for every band a task wrote, in the task,
right after writing it; the band is whole output chunks and starts on multiples of the chunk
(even for an even ``chunk_px``), so its 2×2×2-mean-pooled copy is exactly that part of the
pooled volume. The ``stitch_tiles`` stage writes ``volume.ome.zarr`` and its pyramid this way
(:class:`cryo_pipeline.io.volume_outputs.OmeZarrBands`; ``tests/stitch/test_regions.py`` checks
every level against the whole volume's, and a plain pyramid level). Whatever the hook returns
is collected per task in band order. The band buffer is reused: a hook must copy what it keeps;
on a Dask client the hook is pickled to the workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryo_pipeline.io.mrc_regions import MrcRegionWriter
from cryo_pipeline.io.tile_store import open_tile_array
from cryo_pipeline.io.zarr_raw import ChunkFileReader, ChunkFileWriter
from cryo_pipeline.ops.separable_blend import blend_box
from cryo_pipeline.stitch.cluster import pin_process_threads
from cryo_pipeline.stitch.layout import TileLayout

log = logging.getLogger(__name__)

__all__ = ["Region", "RegionOutputs", "RegionResult", "plan_regions", "region_memory_bytes", "stitch_region"]

#: Default memory budget of one region task (its tile parts, band and scratch), MiB: full-width
#: regions (one write per z-plane into the MRC) for CN slabs up to ~3000 columns, CryoGEN tiles up to ~1100.
TASK_MEMORY_MIB = 160
_WHOLE_TILE_PLANE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Region:
    """One task's output box ``[lo, hi)`` (zyx); ``index`` orders the results."""

    index: int
    lo: tuple[int, int, int]
    hi: tuple[int, int, int]


@dataclass(frozen=True)
class RegionOutputs:
    """What every task writes and returns (small, picklable).

    Attributes
    ----------
    zarr_path : str or None
        The output volume store (created beforehand, chunks ``chunks``); None = no Zarr.
    chunks : (z, y, x)
        Its chunks; a band is one chunk row (``chunks[1]`` rows).
    mrc : MrcRegionWriter or None
        The output MRC (created beforehand); None = no MRC.
    seam_steps : bool
        Return Σ|v[:, y+1, :] − v[:, y, :]| per row pair (CN seam ratio).
    on_block : callable or None
        The block hook (module notes).
    pin_threads : bool
        Limit BLAS/OpenMP pools of the process to one thread (set on worker processes; the
        threaded scheduler limits the whole run instead).
    """

    zarr_path: str | None
    chunks: tuple[int, int, int]
    mrc: MrcRegionWriter | None = None
    seam_steps: bool = False
    on_block: Callable[[tuple[int, int, int], np.ndarray], Any] | None = None
    pin_threads: bool = False


@dataclass
class RegionResult:
    """What one task returns: sums over its region (combined in task order: deterministic)."""

    index: int
    minimum: float = np.inf
    maximum: float = -np.inf
    total: float = 0.0
    total_sq: float = 0.0
    count: int = 0
    row_steps: np.ndarray | None = None
    block_results: list[Any] = field(default_factory=list)


def _cover(origins: np.ndarray, tile: int, lo: int, hi: int) -> int:
    """Σ over tiles of ``|[o, o + tile) ∩ [lo, hi)|``: voxels of tile parts along one axis."""
    return int(np.sum(np.clip(np.minimum(origins + tile, hi) - np.maximum(origins, lo), 0, None)))


def _keeps_whole_tiles(layout: TileLayout, bx: int) -> bool:
    """True if a region keeps each tile's rows from its first band to its end (small tiles).

    One z-plane of a tile part is one read; when it is small (a CryoGEN tile: 64 × 64 floats),
    reading it per band would cost more calls than bytes, so the part is read once, all rows,
    and kept across the bands it spans. Large planes (CN slabs, full width) are read per band.
    """
    return 4 * layout.tile[1] * min(layout.tile[2], bx) < _WHOLE_TILE_PLANE_BYTES


def region_memory_bytes(layout: TileLayout, chunks: Sequence[int], bx: int) -> int:
    """Estimated peak memory of one region task ``chunks[0]`` deep and ``bx`` wide (bytes).

    The tile parts kept during one band (the worst z-layer, x-run and band: tiles overlap, so
    the parts hold more voxels than the band), plus the band and the lerp scratch (at most a band).
    """
    (d, h, w), (tz, ty, tx) = layout.volume_shape, layout.tile
    cz, cy, _ = (min(c, n) for c, n in zip(chunks, layout.volume_shape, strict=True))
    oz, oy, ox = layout.axis_origins()
    planes = max(_cover(oz, tz, z, min(z + cz, d)) for z in range(0, d, cz))
    if _keeps_whole_tiles(layout, bx):
        rows = max(int(np.sum((oy < min(y + cy, h)) & (oy + ty > y))) * ty for y in range(0, h, cy))
    else:
        rows = max(_cover(oy, ty, y, min(y + cy, h)) for y in range(0, h, cy))
    columns = max(_cover(ox, tx, x, min(x + bx, w)) for x in range(0, w, max(1, min(bx, tx))))
    return 4 * planes * rows * columns + 2 * 4 * cz * cy * bx


def plan_regions(layout: TileLayout, chunks: Sequence[int], *, memory_mib: float = TASK_MEMORY_MIB) -> list[Region]:
    """Cut the volume into region tasks: one output chunk layer in z, whole chunks in x, all of y.

    The x-runs are as few as keep :func:`region_memory_bytes` under ``memory_mib`` (at least one
    chunk wide), and of balanced width, so a task's memory does not grow with the volume.
    """
    d, h, w = layout.volume_shape
    cz, _, cx = (min(c, n) for c, n in zip(chunks, layout.volume_shape, strict=True))
    n_chunks_x = -(-w // cx)
    runs = n_chunks_x
    for k in range(1, n_chunks_x + 1):
        if region_memory_bytes(layout, chunks, min(w, -(-n_chunks_x // k) * cx)) <= memory_mib * 2**20:
            runs = k
            break
    bx = -(-n_chunks_x // runs) * cx
    regions = []
    for z0 in range(0, d, cz):
        for x0 in range(0, w, bx):
            regions.append(Region(len(regions), (z0, 0, x0), (min(z0 + cz, d), h, min(x0 + bx, w))))
    return regions


class _BandTiles:
    """The tile parts a band needs (the region's z-planes and columns; the band's rows, or all the
    tile's rows from here on for small tiles, see :func:`_keeps_whole_tiles`), each read once."""

    def __init__(self, layout: TileLayout, region: Region, band_rows: int) -> None:
        self.layout = layout
        self.region = region
        self.origins = layout.axis_origins()
        self.readers: dict[int, ChunkFileReader] = {}
        self.parts: dict[tuple[int, int, int], tuple[np.ndarray, tuple[int, int, int]]] = {}
        self.whole = _keeps_whole_tiles(layout, region.hi[2] - region.lo[2])
        self.rows = (0, 0)
        self.bytes_read = 0
        self._arena = np.empty(0, dtype=np.float32)  # per-band parts are carved from one buffer: no malloc churn
        self._used = 0
        if not self.whole:
            (z0, _, x0), (z1, _, x1) = region.lo, region.hi
            (tz, ty, tx), h = layout.tile, layout.volume_shape[1]
            band = min(band_rows, h)
            rows = max(_cover(self.origins[1], ty, y, min(y + band, h)) for y in range(0, h, band))
            self._arena = np.empty(_cover(self.origins[0], tz, z0, z1) * rows * _cover(self.origins[2], tx, x0, x1),
                                   dtype=np.float32)

    def start_band(self, y0: int, y1: int) -> None:
        """Drop the parts no later band needs; later reads are for rows ``[y0, y1)``."""
        if self.whole:
            ty = self.layout.tile[1]
            for key in [k for k in self.parts if int(self.origins[1][k[1]]) + ty <= y0]:
                del self.parts[key]
        else:
            self.parts.clear()
            self._used = 0
        self.rows = (y0, y1)

    def read(self, abc: tuple[int, int, int], box: tuple[slice, slice, slice]) -> np.ndarray:
        entry = self.parts.get(abc)
        if entry is None:
            entry = self.parts[abc] = self._load(abc)
        part, (z, y, x) = entry
        return part[box[0].start - z : box[0].stop - z, box[1].start - y : box[1].stop - y,
                    box[2].start - x : box[2].stop - x]

    def _load(self, abc: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, int, int]]:
        lo = (self.region.lo[0], self.rows[0], self.region.lo[2])
        hi = (self.region.hi[0], self.layout.volume_shape[1] if self.whole else self.rows[1], self.region.hi[2])
        origin = [int(self.origins[k][abc[k]]) for k in range(3)]
        box = tuple(slice(max(a, o) - o, min(b, o + t) - o)
                    for a, b, o, t in zip(lo, hi, origin, self.layout.tile, strict=True))
        store, local = self.layout.locate(abc)
        reader = self.readers.get(store)
        if reader is None:
            reader = self.readers[store] = ChunkFileReader(open_tile_array(self.layout.stores[store]))
        shape = tuple(s.stop - s.start for s in box)
        size = int(np.prod(shape))
        if self.whole:
            part = reader.read((slice(local, local + 1), *box))[0]
        else:
            if self._used + size > self._arena.size:  # bands taller than planned: a bigger buffer from here on
                self._arena, self._used = np.empty(max(size, 2 * self._arena.size), dtype=np.float32), 0
            part = self._arena[self._used : self._used + size].reshape(shape)
            self._used += size
            reader.read((slice(local, local + 1), *box), out=part[None])
        self.bytes_read += part.nbytes
        return part, tuple(s.start for s in box)  # type: ignore[return-value]


def _fold_stats(result: RegionResult, band: np.ndarray, scratch: np.ndarray) -> None:
    """Add a band's min, max, Σv and Σv² (float32 pairwise per z-plane, float64 across planes)."""
    for plane in band:
        result.minimum = min(result.minimum, float(plane.min()))
        result.maximum = max(result.maximum, float(plane.max()))
        result.total += float(plane.sum())
        np.square(plane, out=scratch[: plane.shape[0]])
        result.total_sq += float(scratch[: plane.shape[0]].sum())
    result.count += band.size


def _fold_row_steps(steps: np.ndarray, y0: int, band: np.ndarray, previous_row: np.ndarray | None,
                    scratch: np.ndarray) -> None:
    """Add Σ_{z,x} |v[y+1] − v[y]| of the band's row pairs (and the pair across its top edge)."""
    rows = band.shape[1]
    for k, plane in enumerate(band):
        if rows > 1:
            diff = scratch[: rows - 1]
            np.subtract(plane[1:], plane[:-1], out=diff)
            np.abs(diff, out=diff)
            steps[y0 : y0 + rows - 1] += diff.sum(axis=1)
        if previous_row is not None:
            edge = scratch[0]
            np.subtract(plane[0], previous_row[k], out=edge)
            np.abs(edge, out=edge)
            steps[y0 - 1] += float(edge.sum())


def stitch_region(region: Region, layout: TileLayout, outputs: RegionOutputs) -> RegionResult:
    """Blend, write and summarise one region (a Dask task; see the module notes)."""
    if outputs.pin_threads:
        pin_process_threads()
    import zarr

    (z0, y0, x0), (z1, y1, x1) = region.lo, region.hi
    axes = layout.axis_grids()
    seg_z, seg_x = axes[0].segments(z0, z1), axes[2].segments(x0, x1)
    target = None if outputs.zarr_path is None else ChunkFileWriter(zarr.open_array(outputs.zarr_path, mode="r+"))
    tiles = _BandTiles(layout, region, outputs.chunks[1])
    band_rows = outputs.chunks[1]
    result = RegionResult(region.index)
    if outputs.seam_steps:
        result.row_steps = np.zeros(layout.volume_shape[1] - 1)
    buffer = np.empty((z1 - z0, min(band_rows, y1 - y0), x1 - x0), dtype=np.float32)
    scratch = np.empty(buffer.shape[1:], dtype=np.float32)
    previous_row, last_row = None, np.empty((z1 - z0, x1 - x0), dtype=np.float32)
    for b0 in range(y0, y1, band_rows):
        b1 = min(b0 + band_rows, y1)
        tiles.start_band(b0, b1)
        band = buffer[:, : b1 - b0]
        blend_box(band, (z0, b0, x0), axes=axes, read=tiles.read, scratch_reads=True,
                  segments=[seg_z, axes[1].segments(b0, b1), seg_x])
        if target is not None:
            target.write((z0, b0, x0), band)
        if outputs.mrc is not None:
            outputs.mrc.write((z0, b0, x0), band)
        _fold_stats(result, band, scratch)
        if result.row_steps is not None:
            _fold_row_steps(result.row_steps, b0, band, previous_row, scratch)
            previous_row = np.copyto(last_row, band[:, -1]) or last_row
        if outputs.on_block is not None:
            result.block_results.append(outputs.on_block((z0, b0, x0), band))
    log.debug("region %d %s..%s: read %.1f MiB of tiles (pid %d)", region.index, region.lo, region.hi,
              tiles.bytes_read / 2**20, os.getpid())
    return result
