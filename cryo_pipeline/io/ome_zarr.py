"""OME-Zarr (NGFF 0.5, Zarr v3) volumes for napari, neuroglancer and other viewers.

A ``volume.ome.zarr`` is a Zarr v3 group whose ``ome`` attribute holds one
``multiscales`` entry, built and validated with ``ome-zarr-models`` (the OME-Zarr
community's pydantic models of the spec), never by hand:

* axes ``z, y, x``, type ``space``, unit ``angstrom``;
* levels ``s0, s1, …`` (:func:`cryo_pipeline.ops.pyramid.pyramid_shapes`: 2× steps
  until the largest side is ≤ 256 voxels), each a float32 array with dimension names
  ``z, y, x``, zstd-compressed 64³ chunks;
* per level a ``scale`` of ``voxel · 2**k`` Å and a ``translation`` of
  ``voxel · (2**k − 1)/2`` Å (the 2× block mean's voxel centres), so every level
  overlays level 0 in physical units.

The project's own record sits beside it in the group attributes under
``cryo_pipeline``: ``voxel_size_angstrom``, ``axes``, ``provenance`` and whatever a
stage adds (e.g. the tilt-axis rotation applied). :func:`validate_ome_zarr` loads
the group through the same models, which checks the metadata against the spec and
the arrays against the metadata.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from ome_zarr_models.v05.axes import Axis
from ome_zarr_models.v05.image import Image
from pydantic import ValidationError
from pydantic_zarr.v3 import ArraySpec

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.provenance import provenance_record, to_jsonable
from cryo_pipeline.ops.pyramid import PYRAMID_TOP_PX, downsample_mean_2x, pyramid_shapes, pyramid_translation

logger = logging.getLogger(__name__)

__all__ = ["OME_ZARR_KEY", "OmeZarrBlockWriter", "create_ome_zarr", "read_ome_zarr", "validate_ome_zarr",
           "write_ome_zarr"]

OME_ZARR_KEY = "cryo_pipeline"
_CODECS = ({"name": "bytes", "configuration": {"endian": "little"}},
           {"name": "zstd", "configuration": {"level": 1, "checksum": False}})


def _level_spec(shape: tuple[int, ...], chunks: Sequence[int]) -> ArraySpec:
    chunk_shape = [min(int(c), n) for c, n in zip(chunks, shape, strict=True)]
    return ArraySpec(shape=shape, data_type="float32", fill_value=0.0, codecs=_CODECS, attributes={},
                     chunk_grid={"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
                     chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
                     dimension_names=("z", "y", "x"))


def create_ome_zarr(
    path: str | os.PathLike[str],
    shape_zyx: Sequence[int],
    *,
    voxel_size_angstrom: float,
    attributes: Mapping[str, Any] | None = None,
    chunks: Sequence[int] = (64, 64, 64),
    max_top_px: int = PYRAMID_TOP_PX,
    name: str = "volume",
    halved_chunk_levels: int = 0,
) -> list[zarr.Array]:
    """Create an empty OME-Zarr group (metadata and all levels) for a streaming writer (NOT atomic).

    Write into the temporary path of :func:`cryo_pipeline.io.atomic.atomic_write_path`;
    fill level 0 and each further level (the 2× block mean of the one above, e.g. by
    region with :func:`cryo_pipeline.ops.pyramid.downsample_mean_2x`).

    ``halved_chunk_levels``: levels ``1..n`` get chunks ``chunks / 2**k`` (so a block of
    whole level-0 chunks reduces to whole chunks of each of them: one writer per chunk,
    see :class:`OmeZarrBlockWriter`); the others keep ``chunks``.

    Returns
    -------
    list of zarr.Array
        The levels ``s0, s1, …``, opened for writing.
    """
    path = Path(path)
    if not (math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise ValueError(f"{path}: voxel_size_angstrom must be > 0, got {voxel_size_angstrom}")
    if path.exists():
        raise FileExistsError(f"{path}: already exists; write into a new (temporary) path")
    shapes = pyramid_shapes(shape_zyx, max_top_px=max_top_px)
    paths = [f"s{k}" for k in range(len(shapes))]
    image = Image.new(
        array_specs=[_level_spec(shape, [max(1, int(c) // 2**k) for c in chunks] if 0 < k <= halved_chunk_levels
                                 else chunks) for k, shape in enumerate(shapes)], paths=paths,
        axes=[Axis(name=axis, type="space", unit="angstrom") for axis in "zyx"],
        scales=[[voxel_size_angstrom * 2**k] * 3 for k in range(len(shapes))],
        translations=[[voxel_size_angstrom * pyramid_translation(k)] * 3 for k in range(len(shapes))],
        name=name, multiscale_type="2x2x2 block mean",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    group = image.to_zarr(zarr.storage.LocalStore(str(path)), path="")
    record = {"axes": "zyx", "voxel_size_angstrom": float(voxel_size_angstrom), **dict(attributes or {})}
    record.setdefault("provenance", provenance_record())
    group.attrs.update({OME_ZARR_KEY: to_jsonable(record)})
    return [group[p] for p in paths]


def write_ome_zarr(
    path: str | os.PathLike[str],
    volume: np.ndarray,
    *,
    voxel_size_angstrom: float,
    attributes: Mapping[str, Any] | None = None,
    chunks: Sequence[int] = (64, 64, 64),
    max_top_px: int = PYRAMID_TOP_PX,
) -> None:
    """Write a ``(d, h, w)`` volume held in memory (or memory-mapped) and its pyramid, atomically.

    Each level is made from the one above (1/8 of its size), so the levels after
    level 0 add about 1/7 of one pass over the volume.
    """
    data = np.asarray(volume)
    if data.ndim != 3:
        raise ValueError(f"{path}: an OME-Zarr volume must be (d, h, w), got shape {data.shape}")
    with atomic_write_path(path) as tmp:
        levels = create_ome_zarr(tmp, data.shape, voxel_size_angstrom=voxel_size_angstrom, attributes=attributes,
                                 chunks=chunks, max_top_px=max_top_px)
        level = data.astype(np.float32, copy=False)
        for k, array in enumerate(levels):
            if k:
                level = downsample_mean_2x(level)
            array[...] = level
    logger.info("wrote %s: %d level(s) from %s, voxel %g Å", path, len(levels), data.shape, voxel_size_angstrom)


def validate_ome_zarr(path: str | os.PathLike[str]) -> Image:
    """Load ``path`` through the NGFF 0.5 models; raise one ``ValueError`` line if it does not conform.

    Returns
    -------
    ome_zarr_models.v05.image.Image
        The validated metadata (``.ome_attributes.multiscales``).
    """
    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        return Image.from_zarr(group)
    except (ValidationError, ValueError, KeyError, FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a valid OME-Zarr 0.5 image ({first})") from None


def read_ome_zarr(path: str | os.PathLike[str], *, level: int = 0) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read one level of a validated ``volume.ome.zarr``: the array and its ``scale`` (Å per voxel, zyx)."""
    image = validate_ome_zarr(path)
    datasets = image.ome_attributes.multiscales[0].datasets
    if not 0 <= level < len(datasets):
        raise ValueError(f"{path}: level {level} does not exist (levels 0..{len(datasets) - 1})")
    dataset = datasets[level]
    scale = next(t.scale for t in dataset.coordinateTransformations if t.type == "scale")
    data = zarr.open_array(str(Path(path) / dataset.path), mode="r")[...]
    return np.asarray(data), tuple(float(s) for s in scale)


class OmeZarrBlockWriter:
    """Fill an OME-Zarr and its pyramid from blocks of whole level-0 chunks, as region tasks produce them.

    Each :meth:`write_block` writes the block to level 0 and its 2× block means to the
    first ``task_levels`` levels below (whose chunks are halved per level, so the block
    is whole chunks there too: tasks writing different blocks never share a chunk).
    :meth:`finish` makes the remaining levels from the last of those, which is at most
    ``1/8**task_levels`` of the volume: no second pass over the full volume.
    Blocks must start on multiples of ``chunks`` (a block at the volume's end may be short).

    Use inside :func:`cryo_pipeline.io.atomic.atomic_write_path`, like :func:`create_ome_zarr`.
    """

    def __init__(self, path: str | os.PathLike[str], shape_zyx: Sequence[int], *, voxel_size_angstrom: float,
                 attributes: Mapping[str, Any] | None = None, chunks: Sequence[int] = (64, 64, 64),
                 max_top_px: int = PYRAMID_TOP_PX, task_levels: int = 2):
        self.chunks = tuple(int(c) for c in chunks)
        n_levels = len(pyramid_shapes(shape_zyx, max_top_px=max_top_px))
        self.task_levels = min(task_levels, n_levels - 1, int(math.log2(min(self.chunks))))
        self.path = Path(path)
        self.levels = create_ome_zarr(path, shape_zyx, voxel_size_angstrom=voxel_size_angstrom,
                                      attributes=attributes, chunks=chunks, max_top_px=max_top_px,
                                      halved_chunk_levels=self.task_levels)

    def write_block(self, lo_zyx: Sequence[int], block: np.ndarray) -> None:
        """Write ``block`` (zyx) at ``lo_zyx`` of level 0 and its means into the task levels."""
        lo = [int(v) for v in lo_zyx]
        if any(v % c for v, c in zip(lo, self.chunks, strict=True)):
            raise ValueError(f"{self.path}: block origin {tuple(lo)} is not on the chunk grid {self.chunks}")
        data = np.asarray(block, dtype=np.float32)
        for k in range(self.task_levels + 1):
            if k:
                data = downsample_mean_2x(data)
                lo = [v // 2 for v in lo]
            self.levels[k][tuple(slice(v, v + n) for v, n in zip(lo, data.shape, strict=True))] = data

    def finish(self) -> None:
        """Make the levels below the task levels, each from the one above (all in memory: they are small)."""
        level = None
        for k in range(self.task_levels + 1, len(self.levels)):
            level = downsample_mean_2x(self.levels[k - 1][...] if level is None else level)
            self.levels[k][...] = level
