"""Subtomogram stores: one Zarr v3 store per tomogram, written cube by cube.

Layout (a single array at the store root, so it opens with ``zarr.open_array`` and in
napari): ``subtomos`` is `(n, s, s, s)` float32, one cube per chunk, dimension names
``["n", "z", "y", "x"]``. Cubes are stored **raw** (the tomogram's values); the
whole-tomogram statistics needed to normalise them travel in the attributes:

* ``axes = "zyx"`` (of each cube), ``voxel_size_angstrom``, ``tilt_min_deg``, ``tilt_max_deg``,
* ``cube_size_px`` (stored edge ``s``, √2-enlarged or not) and ``cube_size_core_px``
  (the edge the network trains on; the core sits at offset ``s//2 − core//2``),
* ``source_tomogram`` (path or name), ``normalization`` (``mean``, ``std`` of the whole
  tomogram, ``mean_in_mask``, ``std_in_mask``), ``provenance``.

The store appears under its final name only once every cube is written
(:func:`cryo_pipeline.io.atomic.atomic_write_path`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.tables import read_subtomo_table
from cryo_pipeline.io.zarr_store import create_volume_zarr, open_volume_zarr

logger = logging.getLogger(__name__)

__all__ = [
    "REQUIRED_SUBTOMO_ATTRS",
    "SubtomoStoreWriter",
    "open_subtomo_store",
    "read_training_cubes",
]

REQUIRED_SUBTOMO_ATTRS = (
    "axes", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg", "cube_size_px", "cube_size_core_px",
    "source_tomogram", "normalization", "provenance",
)
REQUIRED_NORMALIZATION_KEYS = ("mean", "std")


class SubtomoStoreWriter:
    """Context manager that streams cubes into a new subtomogram store, atomically.

    Parameters
    ----------
    path : path-like
        Final store folder (e.g. ``subtomos/tomo_10.00Apx.zarr``); replaced only on success.
    n_cubes : int
        Number of cubes; every index in ``range(n_cubes)`` must be written.
    cube_px : int
        Stored cube edge.
    voxel_size_angstrom : float
        Voxel size in Å (> 0).
    tilt_min_deg, tilt_max_deg : float
        Tilt range of the tomogram's missing wedge.
    source_tomogram : str
        Path or name of the tomogram the cubes come from.
    normalization : mapping
        At least ``mean`` and ``std`` (whole tomogram); usually also ``mean_in_mask``
        and ``std_in_mask``.
    provenance : mapping, optional
        Provenance record (default: :func:`cryo_pipeline.io.provenance.provenance_record`).
    cube_core_px : int, optional
        Edge of the core cube (default ``cube_px``).

    Examples
    --------
    >>> with SubtomoStoreWriter(out, n_cubes=2, cube_px=32, voxel_size_angstrom=10.0,  # doctest: +SKIP
    ...                         tilt_min_deg=-60, tilt_max_deg=60, source_tomogram="t.mrc",
    ...                         normalization={"mean": 0.0, "std": 1.0}) as writer:
    ...     writer.write(0, cube0); writer.write(1, cube1)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_cubes: int,
        cube_px: int,
        voxel_size_angstrom: float,
        tilt_min_deg: float,
        tilt_max_deg: float,
        source_tomogram: str,
        normalization: Mapping[str, float],
        provenance: Mapping[str, Any] | None = None,
        cube_core_px: int | None = None,
    ) -> None:
        self.path = Path(path)
        core = int(cube_core_px if cube_core_px is not None else cube_px)
        if n_cubes < 1 or cube_px < 1 or not 1 <= core <= cube_px:
            raise ValueError(f"{self.path}: need n_cubes >= 1 and 1 <= cube_core_px <= cube_px, "
                             f"got n_cubes={n_cubes}, cube_px={cube_px}, cube_core_px={core}")
        missing = [k for k in REQUIRED_NORMALIZATION_KEYS if k not in normalization]
        bad = {k: v for k, v in normalization.items() if not math.isfinite(float(v))}
        if missing or bad:
            raise ValueError(f"{self.path}: normalization needs finite {', '.join(REQUIRED_NORMALIZATION_KEYS)}; "
                             f"missing {missing}, non-finite {bad}")
        if float(normalization["std"]) <= 0:
            raise ValueError(f"{self.path}: normalization std must be > 0, got {normalization['std']} "
                             "(a constant tomogram cannot be normalised)")
        self.n_cubes, self.cube_px = int(n_cubes), int(cube_px)
        self._create = dict(
            voxel_size_angstrom=voxel_size_angstrom, tilt_min_deg=float(tilt_min_deg),
            tilt_max_deg=float(tilt_max_deg), provenance=provenance,
            extra_attrs={"cube_size_px": self.cube_px, "cube_size_core_px": core,
                         "source_tomogram": str(source_tomogram),
                         "normalization": {k: float(v) for k, v in normalization.items()}},
        )
        self._atomic: Any = None
        self._array: zarr.Array | None = None
        self._written = np.zeros(self.n_cubes, dtype=bool)

    def __enter__(self) -> SubtomoStoreWriter:
        self._atomic = atomic_write_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            s = self.cube_px
            self._array = create_volume_zarr(tmp, (self.n_cubes, s, s, s), dtype=np.float32, chunks=(s, s, s),
                                             **self._create)
        except BaseException as err:
            self._atomic.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, index: int, cube: np.ndarray) -> None:
        """Store one cube (`(s, s, s)`, converted to float32) at position ``index``."""
        if self._array is None:
            raise RuntimeError(f"{self.path}: SubtomoStoreWriter.write outside its `with` block")
        arr = np.asarray(cube, dtype=np.float32)
        if arr.shape != (self.cube_px,) * 3:
            raise ValueError(f"{self.path}: cube {index} has shape {arr.shape}, expected {(self.cube_px,) * 3}")
        if not 0 <= index < self.n_cubes:
            raise IndexError(f"{self.path}: cube index {index} outside 0..{self.n_cubes - 1}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{self.path}: cube {index} holds NaN or Inf")
        self._array[index] = arr
        self._written[index] = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        atomic, self._atomic, self._array = self._atomic, None, None
        if exc is None and not self._written.all():
            missing = np.flatnonzero(~self._written)
            exc = ValueError(f"{self.path}: {missing.size} of {self.n_cubes} cubes were never written "
                             f"(first: {missing[:5].tolist()}); the store was not created")
            atomic.__exit__(type(exc), exc, None)
            raise exc
        if exc is None:
            atomic.__exit__(None, None, None)
            logger.debug("wrote %s: %d cubes of %d³", self.path, self.n_cubes, self.cube_px)
            return False
        atomic.__exit__(exc_type, exc, tb)
        return False


def open_subtomo_store(path: str | os.PathLike[str], mode: str = "r") -> tuple[zarr.Array, dict[str, Any]]:
    """Open a subtomogram store and check its attributes.

    Parameters
    ----------
    path : path-like
        Store folder written by :class:`SubtomoStoreWriter`.
    mode : {"r", "r+", "a"}
        zarr open mode.

    Returns
    -------
    array : zarr.Array
        `(n, s, s, s)` float32 cubes (raw intensities).
    attrs : dict
        The attributes listed in the module docstring.

    Raises
    ------
    ValueError
        Not a store, not `(n, s, s, s)`, or a required attribute missing (the key and
        the store are named), e.g. a store without ``tilt_min_deg``.
    """
    path = Path(path)
    array = open_volume_zarr(path, mode=mode)
    attrs = dict(array.attrs)
    for key in REQUIRED_SUBTOMO_ATTRS:
        if key not in attrs:
            raise ValueError(f"{path}: subtomogram store has no {key!r} attribute (required: "
                             f"{', '.join(REQUIRED_SUBTOMO_ATTRS)}); re-run extract_subtomos to rewrite it")
    norm = attrs["normalization"]
    missing = [k for k in REQUIRED_NORMALIZATION_KEYS if not isinstance(norm, dict) or k not in norm]
    if missing:
        raise ValueError(f"{path}: subtomogram store's 'normalization' attribute has no {missing[0]!r} key; "
                         "re-run extract_subtomos to rewrite it")
    s = attrs["cube_size_px"]
    if array.ndim != 4 or array.shape[1:] != (s, s, s):
        raise ValueError(f"{path}: expected (n, {s}, {s}, {s}) cubes (cube_size_px={s}), got shape {array.shape}")
    return array, attrs


def read_training_cubes(path: str | os.PathLike[str], table: str | os.PathLike[str] | None = None,
                        ) -> tuple[np.ndarray, dict[str, Any]]:
    """The training cubes of a store (raw float32, `(n_train, s, s, s)`) and its attributes.

    With ``table`` (:func:`cryo_pipeline.io.tables.read_subtomo_table`), only the cubes
    whose ``split`` is ``train``; without it, every cube.

    Raises
    ------
    ValueError
        As :func:`open_subtomo_store`, or the table lists another number of cubes.
    """
    array, attrs = open_subtomo_store(path)
    indices = np.arange(array.shape[0])
    if table is not None:
        split = read_subtomo_table(table)["split"].to_numpy()
        if split.size != array.shape[0]:
            raise ValueError(f"{table} lists {split.size} cubes but {path} holds {array.shape[0]}")
        indices = np.flatnonzero(split == "train")
    cubes = np.asarray(array[indices.tolist()], dtype=np.float32) if indices.size else np.zeros(
        (0, *array.shape[1:]), np.float32)
    return cubes, attrs
