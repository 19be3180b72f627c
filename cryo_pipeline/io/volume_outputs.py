"""A method's output volume in both formats: ``volume.mrc`` (IMOD, ChimeraX, RELION) and ``volume.ome.zarr``.

``volume.ome.zarr`` (:mod:`cryo_pipeline.io.ome_zarr`) sits beside every ``volume.mrc``
(:func:`ome_zarr_path_for`). A stage that holds the volume writes both from memory
(:func:`write_volume_outputs`); a stage that streams it from a Zarr store (tiled
prediction, stitching) copies it slab by slab into both in the one pass it makes anyway
(:func:`copy_zarr_to_mrc_and_ome_zarr`), the pyramid built from the same slabs
(:class:`cryo_pipeline.io.ome_zarr.OmeZarrBlockWriter`): no extra pass over the volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryo_pipeline.io.mrc import open_mrc_for_writing, write_mrc
from cryo_pipeline.io.ome_zarr import OmeZarrBlockWriter, write_ome_zarr
from cryo_pipeline.ops.blending import release_pages

__all__ = ["copy_zarr_to_mrc_and_ome_zarr", "ome_zarr_path_for", "write_volume_outputs"]


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
