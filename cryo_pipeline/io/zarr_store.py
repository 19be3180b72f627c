"""Zarr v3 volume stores: one array at the store root, geometry in its attributes.

Every store holds a single array (``zarr.json`` at the root) with dimension names
``["z", "y", "x"]`` (3D) or ``["n", "z", "y", "x"]`` (a stack of volumes, e.g.
subtomograms) and the attributes

* ``axes = "zyx"`` (the spatial axis order; a stack's leading ``n`` is in the
  dimension names),
* ``voxel_size_angstrom`` (> 0),
* ``tilt_min_deg`` / ``tilt_max_deg`` (omitted when unknown),
* ``provenance`` (see :mod:`cryo_pipeline.io.provenance`),

plus any extra attributes a stage adds. Such a store opens directly in napari
and with ``zarr.open_array``.
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

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.provenance import provenance_record, to_jsonable

logger = logging.getLogger(__name__)

__all__ = ["BY_DTYPE", "create_volume_zarr", "final_compressors", "open_volume_zarr", "read_volume_zarr",
           "write_volume_zarr"]

REQUIRED_ATTRS = ("axes", "voxel_size_angstrom")
#: ``compressors`` value that picks the codec by dtype (:func:`final_compressors`).
BY_DTYPE = "by-dtype"


def final_compressors(dtype: Any) -> Any:
    """The codec of a final volume store, chosen by measurement (``python -m bench codecs``).

    float volumes (tomograms, predictions): **uncompressed** — zstd and blosc save ~4–15 % of
    the bytes of float32 tomograms (full-mantissa noise) for 1.5–3× the write CPU, and an
    uncompressed store is read and written straight from its chunk files
    (:mod:`cryo_pipeline.io.zarr_raw`). Integer and boolean volumes (masks, labels):
    ``zstd`` level 1, which stores them many times smaller at about the speed of a copy.
    """
    if np.issubdtype(np.dtype(dtype), np.floating):
        return None
    from zarr.codecs import ZstdCodec

    return ZstdCodec(level=1)
_RESERVED = ("axes", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg", "provenance")
_DIMENSION_NAMES = {3: ["z", "y", "x"], 4: ["n", "z", "y", "x"]}


def _attributes(
    path: Path,
    *,
    voxel_size_angstrom: float,
    tilt_min_deg: float | None,
    tilt_max_deg: float | None,
    provenance: Mapping[str, Any] | None,
    extra_attrs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not (math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise ValueError(f"{path}: voxel_size_angstrom must be > 0, got {voxel_size_angstrom}")
    attrs: dict[str, Any] = {"axes": "zyx", "voxel_size_angstrom": float(voxel_size_angstrom)}
    for key, value in (("tilt_min_deg", tilt_min_deg), ("tilt_max_deg", tilt_max_deg)):
        if value is not None:
            if not -90.0 <= value <= 90.0:
                raise ValueError(f"{path}: {key} must be within [-90, 90], got {value}")
            attrs[key] = float(value)
    if tilt_min_deg is not None and tilt_max_deg is not None and tilt_min_deg > tilt_max_deg:
        raise ValueError(f"{path}: tilt_min_deg {tilt_min_deg} is larger than tilt_max_deg {tilt_max_deg}")
    clash = sorted(set(extra_attrs or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"{path}: extra_attrs may not set the reserved attributes {clash}; use the keyword arguments")
    attrs["provenance"] = dict(provenance) if provenance is not None else provenance_record()
    attrs.update(extra_attrs or {})
    return to_jsonable(attrs)


def _resolve(compressors: Any, dtype: Any) -> Any:
    return final_compressors(dtype) if isinstance(compressors, str) and compressors == BY_DTYPE else compressors


def create_volume_zarr(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    *,
    dtype: Any = np.float32,
    chunks: Sequence[int] = (64, 64, 64),
    voxel_size_angstrom: float,
    tilt_min_deg: float | None = None,
    tilt_max_deg: float | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    fill_value: float = 0,
    compressors: Any = BY_DTYPE,
) -> zarr.Array:
    """Create an empty volume store for a streaming writer (NOT atomic by itself).

    Write into the temporary path of :func:`cryo_pipeline.io.atomic.atomic_write_path`
    so the store appears under its final name only once complete::

        with atomic_write_path(out) as tmp:
            arr = create_volume_zarr(tmp, shape, voxel_size_angstrom=v)
            for sl, block in blocks: arr[sl] = block

    Parameters
    ----------
    path : path-like
        New store folder; must not exist.
    shape : `(d, h, w)` or `(n, d, h, w)`
        Array shape (zyx, or a stack of zyx volumes).
    dtype : numpy dtype-like
        Stored dtype (float32 by default).
    chunks : 3 ints
        Spatial chunk shape (clipped to ``shape``); a stack uses one volume per chunk.
    voxel_size_angstrom : float
        Voxel size in Å, > 0.
    tilt_min_deg, tilt_max_deg : float, optional
        Tilt range of the data's missing wedge in degrees; omitted when None.
    provenance : mapping, optional
        Defaults to :func:`cryo_pipeline.io.provenance.provenance_record`.
    extra_attrs : mapping, optional
        More JSON-able attributes; may not override the reserved ones.
    fill_value : number
        Value of chunks never written.
    compressors
        Zarr v3 ``compressors``; by default :func:`final_compressors` of ``dtype``, None for uncompressed.

    Returns
    -------
    zarr.Array
        Opened for writing.
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in _DIMENSION_NAMES or min(shape) <= 0:
        raise ValueError(f"{path}: shape must be (d, h, w) or (n, d, h, w) with positive sizes, got {shape}")
    if len(chunks) != 3 or min(chunks) <= 0:
        raise ValueError(f"{path}: chunks must be 3 positive ints (z, y, x), got {tuple(chunks)}")
    if path.exists():
        raise FileExistsError(f"{path}: already exists; write into a new (temporary) path")
    attrs = _attributes(path, voxel_size_angstrom=voxel_size_angstrom, tilt_min_deg=tilt_min_deg,
                        tilt_max_deg=tilt_max_deg, provenance=provenance, extra_attrs=extra_attrs)
    full_chunks = ((1,) if len(shape) == 4 else ()) + tuple(int(c) for c in chunks)
    full_chunks = tuple(min(c, s) for c, s in zip(full_chunks, shape, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    return zarr.create_array(store=str(path), shape=shape, dtype=np.dtype(dtype), chunks=full_chunks,
                             dimension_names=_DIMENSION_NAMES[len(shape)], attributes=attrs,
                             fill_value=fill_value, zarr_format=3, compressors=_resolve(compressors, dtype))


def write_volume_zarr(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    voxel_size_angstrom: float,
    tilt_min_deg: float | None = None,
    tilt_max_deg: float | None = None,
    chunks: Sequence[int] = (64, 64, 64),
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a whole volume (or stack of volumes) to a new Zarr v3 store, atomically.

    Parameters
    ----------
    path : path-like
        Store folder; an existing store there is replaced only once the new one is complete.
    data : `(d, h, w)` or `(n, d, h, w)` array
        zyx volume or stack; its dtype is kept.
    voxel_size_angstrom, tilt_min_deg, tilt_max_deg, chunks, provenance, extra_attrs
        As for :func:`create_volume_zarr`.
    """
    arr = np.asarray(data)
    with atomic_write_path(path) as tmp:
        store = create_volume_zarr(tmp, arr.shape, dtype=arr.dtype, chunks=chunks,
                                   voxel_size_angstrom=voxel_size_angstrom, tilt_min_deg=tilt_min_deg,
                                   tilt_max_deg=tilt_max_deg, provenance=provenance, extra_attrs=extra_attrs)
        store[...] = arr
    logger.debug("wrote %s: shape %s %s, voxel %g Å", path, arr.shape, arr.dtype, voxel_size_angstrom)


def open_volume_zarr(path: str | os.PathLike[str], mode: str = "r") -> zarr.Array:
    """Open a volume store written by this module.

    Parameters
    ----------
    path : path-like
        Store folder.
    mode : {"r", "r+", "a"}
        zarr open mode (read-only by default).

    Returns
    -------
    zarr.Array
        `(d, h, w)` or `(n, d, h, w)` array; its ``attrs`` hold the geometry.

    Raises
    ------
    ValueError
        Not a Zarr array store, wrong number of dimensions, or a required attribute
        (``axes``, ``voxel_size_angstrom``) missing (the key is named).
    """
    path = Path(path)
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"{path}: mode must be 'r', 'r+' or 'a', got {mode!r}")
    if not path.is_dir():
        raise ValueError(f"{path}: not a Zarr store ({'no such folder' if not path.exists() else 'not a folder'})")
    try:
        arr = zarr.open_array(store=str(path), mode=mode)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a Zarr array store ({type(err).__name__}: {err})") from None
    attrs = dict(arr.attrs)
    for key in REQUIRED_ATTRS:
        if key not in attrs:
            raise ValueError(f"{path}: Zarr store has no {key!r} attribute; it was not written by "
                             "cryo_pipeline.io.zarr_store (required: axes, voxel_size_angstrom)")
    if arr.ndim not in _DIMENSION_NAMES or attrs["axes"] != "zyx":
        raise ValueError(f"{path}: expected a zyx volume or stack, got {arr.ndim} dims with axes={attrs['axes']!r}")
    return arr


def read_volume_zarr(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a whole volume store into memory.

    Parameters
    ----------
    path : path-like
        Store folder.

    Returns
    -------
    data : `(d, h, w)` or `(n, d, h, w)` array
        In the stored dtype.
    attrs : dict
        The store's attributes (``axes``, ``voxel_size_angstrom``, ``provenance``, ...).
    """
    arr = open_volume_zarr(path)
    return np.asarray(arr[...]), dict(arr.attrs)
