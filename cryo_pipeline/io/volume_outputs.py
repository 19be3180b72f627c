"""A method's output volume in both formats: ``volume.mrc`` (IMOD, ChimeraX, RELION) and ``volume.ome.zarr``.

``volume.ome.zarr`` (:mod:`cryo_pipeline.io.ome_zarr`) sits beside every ``volume.mrc``
(:func:`ome_zarr_path_for`). A stage that holds the volume writes both from memory
(:func:`write_volume_outputs`); a stage that streams it from a Zarr store (tiled
prediction) copies it slab by slab into both in the one pass it makes anyway
(:func:`copy_zarr_to_mrc_and_ome_zarr`); the stitch writes the MRC from its region tasks and
the OME-Zarr through their block hook (:class:`OmeZarrBands`). Either way the pyramid is built
from the same blocks (:class:`cryo_pipeline.io.ome_zarr.OmeZarrBlockWriter`): no extra pass
over the volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryo_pipeline.io.mrc import open_mrc_for_writing, write_mrc
from cryo_pipeline.io.ome_zarr import OmeZarrBlockWriter, write_ome_zarr
from cryo_pipeline.ops.blending import release_pages
from cryo_pipeline.ops.pyramid import PYRAMID_TOP_PX

__all__ = ["OmeZarrBands", "copy_zarr_to_mrc_and_ome_zarr", "ome_zarr_path_for", "write_volume_outputs"]

#: Columns of the pieces :class:`OmeZarrBands` hands to the writer (bounds the pyramid's float64 scratch).
_PIECE_PX = 256


def ome_zarr_path_for(mrc_path: str | Path) -> Path:
    """``results/x/volume.mrc`` → ``results/x/volume.ome.zarr``."""
    return Path(mrc_path).with_suffix(".ome.zarr")


def write_volume_outputs(mrc_path: Path, ome_zarr_path: Path, volume: np.ndarray, *, voxel_size_angstrom: float,
                         labels: Sequence[str] = (), attributes: Mapping[str, Any] | None = None) -> None:
    """Write a ``(d, h, w)`` volume held in memory as MRC and OME-Zarr (each atomically)."""
    write_mrc(mrc_path, volume, voxel_size_angstrom=voxel_size_angstrom, labels=list(labels))
    write_ome_zarr(ome_zarr_path, volume, voxel_size_angstrom=voxel_size_angstrom, attributes=attributes)


def copy_zarr_to_mrc_and_ome_zarr(source, mrc_path: Path, ome_zarr_path: Path, *, voxel_size_angstrom: float,
                                  step_z: int, labels: Sequence[str] = (),
                                  attributes: Mapping[str, Any] | None = None) -> None:
    """Copy a ``(d, h, w)`` array (a Zarr store) slab by slab into a new MRC and a new OME-Zarr.

    Write both to temporary paths (``stage_outputs``); each slab of ``step_z`` planes is
    read once. The OME-Zarr's chunks are ``(step_z, 64, 64)`` so whole slabs are whole chunks.
    """
    shape = tuple(int(n) for n in source.shape)
    writer = OmeZarrBlockWriter(ome_zarr_path, shape, voxel_size_angstrom=voxel_size_angstrom,
                                attributes=attributes, chunks=(step_z, 64, 64))
    with open_mrc_for_writing(mrc_path, shape, voxel_size_angstrom=voxel_size_angstrom, labels=labels) as target:
        for z in range(0, shape[0], step_z):
            slab = np.asarray(source[z : z + step_z], dtype=np.float32)
            target[z : z + step_z] = slab
            writer.write_block((z, 0, 0), slab)
            release_pages(target)
    writer.finish()


class OmeZarrBands:
    """The stitch's block hook (``on_block``) that fills a ``volume.ome.zarr`` and its pyramid.

    :func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores` calls ``hook(lo_zyx, band)`` for
    every band a region task wrote: a box of whole output chunks starting on the chunk grid.
    Each band goes to :meth:`OmeZarrBlockWriter.write_block` in pieces of whole chunks about
    ``_PIECE_PX`` columns wide (so the 2× block means' scratch stays small); :meth:`finish`
    (after the stitch) makes the small levels below. The OME-Zarr's level-0 chunks are the
    stitch's ``chunks``; the levels the tasks fill are those whose block origins stay on the
    halved chunk grid (up to 2; fewer when a chunk edge is odd). Picklable, for Dask workers.

    Create it inside :func:`cryo_pipeline.io.atomic.atomic_write_path` (or ``stage_outputs``).
    """

    def __init__(self, path: Path, shape_zyx: Sequence[int], *, voxel_size_angstrom: float, chunks: Sequence[int],
                 attributes: Mapping[str, Any] | None = None, max_top_px: int = PYRAMID_TOP_PX) -> None:
        shape, chunks = tuple(int(n) for n in shape_zyx), tuple(int(c) for c in chunks)
        levels = 2
        for c, n in zip(chunks, shape, strict=True):
            while levels and c < n and c % 2**levels:  # a block origin k·c must stay even at every task level
                levels -= 1
        self.piece_px = chunks[2] * max(1, _PIECE_PX // chunks[2])
        self.writer = OmeZarrBlockWriter(path, shape, voxel_size_angstrom=voxel_size_angstrom,
                                         attributes=attributes, chunks=chunks, max_top_px=max_top_px,
                                         task_levels=levels)

    def __call__(self, lo_zyx: Sequence[int], band: np.ndarray) -> None:
        z, y, x = (int(v) for v in lo_zyx)
        for x0 in range(0, band.shape[2], self.piece_px):
            self.writer.write_block((z, y, x + x0), band[:, :, x0 : x0 + self.piece_px])

    def finish(self) -> None:
        """Make the levels below the tasks' (each from the one above, in slabs)."""
        self.writer.finish()
