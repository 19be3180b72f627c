"""MRC volumes and image stacks (``.mrc .st .ali .rec .map .mrcs``) via :mod:`mrcfile`.

Arrays are ``zyx`` (sections, rows, columns) and come back as C-contiguous float32.
Supported modes: 0 (int8, signed as MRC2014 says), 1 (int16), 2 (float32),
6 (uint16) and 12 (float16). Old, non-conformant headers (e.g. FEI 2003 headers
without the ``MAP`` ID) are read permissively. Before any data is read the header
is checked against the file size, so a truncated or foreign file fails with one
line naming the path and the problem, never with a bare ``None`` or a warning; the
data block is then read exactly as that checked header declares it (mrcfile's header
layout, numpy for the data), so the header checks and the data read never disagree.
The voxel size is never silently 1: a header voxel size of 0 is an error unless
an explicit value is passed.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from cryo_pipeline.io.atomic import atomic_write_path

logger = logging.getLogger(__name__)

__all__ = [
    "MrcFormatError",
    "MrcVolume",
    "open_mrc_for_writing",
    "read_mrc",
    "read_mrc_header",
    "read_mrc_memmap",
    "write_mrc",
]

_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
_UNSUPPORTED = {3: "complex int16", 4: "complex float32", 101: "4-bit packed"}
_MAX_VOXELS = 2**31
_PLAUSIBLE_VOXEL_ANGSTROM = (1e-3, 1e5)  # a header voxel size outside this is corruption, not a microscope
_WRITE_DTYPES = (np.int8, np.int16, np.uint16, np.float16, np.float32)


class MrcFormatError(ValueError):
    """An MRC file that cannot be read; the message names the path and the problem."""


@dataclass(frozen=True)
class MrcVolume:
    """A volume with its geometry.

    Attributes
    ----------
    data : `(d, h, w)` float32 array, zyx order (a 2D image is `(1, h, w)`).
    voxel_size_angstrom : float
        Isotropic voxel size in Å; 0.0 only when read with ``allow_missing_voxel_size``.
    origin_angstrom : (z, y, x) origin in Å from the header's ``origin`` field.
    """

    data: np.ndarray
    voxel_size_angstrom: float
    origin_angstrom: tuple[float, float, float]


def _parse_header(path: Path) -> dict[str, Any]:
    """Read and check the 1024-byte header without touching the data block."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a pipe would block open(), a device never end
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise MrcFormatError(f"{path}: cannot open (it is {what}; give an MRC file)")
        size = info.st_size
        with open(path, "rb") as fh:
            raw = fh.read(HEADER_DTYPE.itemsize)
    except OSError as err:
        raise MrcFormatError(f"{path}: cannot open ({err.strerror or err})") from None
    if len(raw) < HEADER_DTYPE.itemsize:
        raise MrcFormatError(f"{path}: not an MRC file ({len(raw)} bytes; an MRC header alone is 1024)")
    has_map_id = raw[208:211] == b"MAP"
    stamp_order = {0x44: "<", 0x11: ">"}.get(raw[212], "<")
    orders = [stamp_order, ">" if stamp_order == "<" else "<"]
    headers = [np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(o))[0] for o in orders]
    known = [h for h in headers if int(h["mode"]) in _MODES or int(h["mode"]) in _UNSUPPORTED]
    if not known:
        what = "corrupt MRC header (" if has_map_id else "not an MRC file (no 'MAP' ID and "
        raise MrcFormatError(f"{path}: {what}mode value {int(headers[0]['mode'])} is not an MRC mode)")
    h = known[0]
    mode = int(h["mode"])
    if mode not in _MODES:
        raise MrcFormatError(
            f"{path}: MRC mode {mode} ({_UNSUPPORTED[mode]}) is not supported; "
            "supported modes are 0 (int8), 1 (int16), 2 (float32), 6 (uint16), 12 (float16)")
    nx, ny, nz, nsymbt = (int(h[k]) for k in ("nx", "ny", "nz", "nsymbt"))
    if min(nx, ny, nz) <= 0 or nsymbt < 0:
        raise MrcFormatError(f"{path}: invalid MRC header: dimensions (nx, ny, nz) = ({nx}, {ny}, {nz}) "
                             f"must be positive and the extended header size ({nsymbt}) >= 0")
    n_voxels = nx * ny * nz
    if n_voxels > _MAX_VOXELS:
        raise MrcFormatError(f"{path}: MRC header declares {nz} x {ny} x {nx} = {n_voxels} voxels "
                             f"(more than 2**31); the header is corrupt or this is not an MRC file")
    dtype = np.dtype(_MODES[mode]).newbyteorder(h.dtype["mode"].byteorder)
    expected = HEADER_DTYPE.itemsize + nsymbt + n_voxels * dtype.itemsize
    if size < expected:
        raise MrcFormatError(
            f"{path}: truncated MRC file: header declares {nz} x {ny} x {nx} voxels of mode {mode} "
            f"({expected} bytes with headers) but the file has only {size} bytes")
    if size > expected:
        logger.debug("%s: %d bytes beyond the declared data block are ignored", path, size - expected)
    axis_map = (int(h["mapc"]), int(h["mapr"]), int(h["maps"]))
    if sorted(axis_map) != [1, 2, 3]:
        logger.debug("%s: invalid axis map %s, assuming columns=x, rows=y, sections=z", path, axis_map)
        axis_map = (1, 2, 3)
    stored = (axis_map[2], axis_map[1], axis_map[0])  # spatial axis (1=x) of array axes 0, 1, 2
    perm = tuple(stored.index(a) for a in (3, 2, 1))
    stored_shape = (nz, ny, nx)
    cell = h["cella"]
    sampling = (int(h["mx"]), int(h["my"]), int(h["mz"]))
    voxel_xyz = tuple(float(c) / m if m > 0 else 0.0 for c, m in zip(cell.tolist(), sampling, strict=True))
    origin = h["origin"]
    labels = [text for lab in h["label"][: max(0, min(int(h["nlabl"]), 10))]
              if (text := bytes(lab).decode("ascii", "replace").strip())]
    return {
        "path": path,
        "shape_zyx": tuple(stored_shape[p] for p in perm),
        "mode": mode,
        "dtype": str(np.dtype(_MODES[mode])),
        "voxel_size_angstrom": voxel_xyz[0],
        "voxel_size_xyz_angstrom": voxel_xyz,
        "origin_angstrom": (float(origin["z"]), float(origin["y"]), float(origin["x"])),
        "extended_header_bytes": nsymbt,
        "has_map_id": has_map_id,
        "labels": labels,
        "_perm": perm,
        "_stored_shape": stored_shape,
        "_dtype": dtype,
        "_data_offset": HEADER_DTYPE.itemsize + nsymbt,
    }


def read_mrc_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an MRC header without reading the data (memory-cheap).

    Parameters
    ----------
    path : path-like
        MRC file.

    Returns
    -------
    dict
        ``shape_zyx`` (3 ints), ``mode``, ``dtype`` (stored dtype name),
        ``voxel_size_angstrom`` (x spacing as stored, 0.0 if ``mx`` is 0; unchecked here),
        ``voxel_size_xyz_angstrom``, ``origin_angstrom`` (zyx), ``extended_header_bytes``,
        ``has_map_id`` and ``labels``.

    Raises
    ------
    MrcFormatError
        Not an MRC file, unsupported mode, impossible dimensions or truncated data.
    """
    header = _parse_header(Path(path))
    return {k: v for k, v in header.items() if not k.startswith("_")}


def _voxel_size(header: dict[str, Any], override: float | None, allow_missing: bool) -> float:
    path = header["path"]
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise ValueError(f"{path}: voxel_size_angstrom override must be a positive number, got {override}")
        return float(override)
    vx, vy, vz = header["voxel_size_xyz_angstrom"]
    lowest, highest = _PLAUSIBLE_VOXEL_ANGSTROM
    if not (math.isfinite(vx) and lowest <= vx <= highest):
        missing = not (math.isfinite(vx) and vx > 0)
        if allow_missing:
            logger.warning("%s: the MRC header has no usable voxel size (%g Å); using 0.0 (unknown)", path, vx)
            return 0.0
        problem = (f"has no voxel size (voxel size {vx} Å)" if missing else
                   f"voxel size {vx:g} Å is implausible (outside {lowest:g}..{highest:g} Å: a corrupt header?)")
        raise ValueError(
            f"{path}: the MRC header {problem}; pass it explicitly "
            "(voxel_size_angstrom=..., --voxel-size-angstrom, or the dataset sheet's voxel_size_angstrom column)")
    if any(v > 0 and abs(v - vx) > 1e-4 * vx for v in (vy, vz)):
        logger.warning("%s: anisotropic voxel size (x, y, z) = (%g, %g, %g) Å; using x = %g Å",
                       path, vx, vy, vz, vx)
    return float(vx)


def read_mrc(
    path: str | os.PathLike[str],
    *,
    voxel_size_angstrom: float | None = None,
    allow_missing_voxel_size: bool = False,
) -> MrcVolume:
    """Read an MRC volume, tilt series or image stack as float32.

    Parameters
    ----------
    path : path-like
        MRC file (any extension).
    voxel_size_angstrom : float, optional
        Overrides the header's voxel size (always wins; must be > 0).
    allow_missing_voxel_size : bool
        Return voxel size 0.0 (unknown) instead of raising when the header has none.

    Returns
    -------
    MrcVolume
        ``data`` is a C-contiguous float32 `(d, h, w)` array in zyx order; a 2D
        image becomes `(1, h, w)`. Integer values are converted exactly.

    Raises
    ------
    MrcFormatError
        Not an MRC file, unsupported mode, bad dimensions, truncated data, or NaN/Inf voxels.
    ValueError
        No voxel size in the header and no override given.
    """
    header = _parse_header(Path(path))
    path = header["path"]
    voxel = _voxel_size(header, voxel_size_angstrom, allow_missing_voxel_size)
    # The data block is read as the checked header declares it (not re-derived by mrcfile,
    # whose volume-stack shape nz // mz fails on mz = 0 or mz not dividing nz).
    stored = _map_data(header, what="read")
    data = np.ascontiguousarray(stored.astype(np.float32).transpose(header["_perm"]))
    del stored
    if header["mode"] in (2, 12):
        n_bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if n_bad:
            raise MrcFormatError(f"{path}: {n_bad} of {data.size} voxels are NaN or Inf")
    return MrcVolume(data=data, voxel_size_angstrom=voxel, origin_angstrom=header["origin_angstrom"])


def write_mrc(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    voxel_size_angstrom: float,
    origin_angstrom: Sequence[float] = (0.0, 0.0, 0.0),
    labels: Sequence[str] = (),
) -> None:
    """Write a standard MRC2014 file atomically (opens in IMOD, ChimeraX, napari-mrcfile).

    Parameters
    ----------
    path : path-like
        Output file; parent folders are created, an existing file is replaced.
    data : `(d, h, w)` or `(h, w)` array, zyx order
        int8 (mode 0), int16 (1), uint16 (6), float16 (12) and float32 (2) are kept;
        uint8 is widened to uint16 (mode 6, MRC has no unsigned-byte mode); any other
        real dtype is converted to float32.
    voxel_size_angstrom : float
        Isotropic voxel size in Å, > 0.
    origin_angstrom : (z, y, x) floats
        Origin in Å, stored in the header's ``origin`` field.
    labels : sequence of str
        Up to 10 printable-ASCII labels of at most 80 characters (e.g. provenance);
        mrcfile's "Created by" label follows them while there is room.

    Raises
    ------
    ValueError
        Bad voxel size, shape, dtype, non-finite values or labels.
    """
    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"write_mrc({path}): data must be a non-empty 2D or 3D array, got shape {arr.shape}")
    if not (math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise ValueError(f"write_mrc({path}): voxel_size_angstrom must be > 0, got {voxel_size_angstrom}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"write_mrc({path}): cannot store dtype {arr.dtype} in MRC")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.uint16)
    elif arr.dtype.type not in _WRITE_DTYPES:
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"write_mrc({path}): {n_bad} voxels are NaN or Inf (after conversion to {arr.dtype})")
    labels = list(labels)
    bad = [lab for lab in labels if len(lab) > 80 or not (lab.isascii() and lab.isprintable())]
    if len(labels) > 10 or bad:
        raise ValueError(f"write_mrc({path}): at most 10 printable-ASCII labels of <= 80 characters, "
                         f"got {len(labels)}; offending: {bad[:1]}")
    if len(origin_angstrom) != 3:
        raise ValueError(f"write_mrc({path}): origin_angstrom must be (z, y, x), got {origin_angstrom}")
    oz, oy, ox = (float(v) for v in origin_angstrom)
    with atomic_write_path(path) as tmp, mrcfile.new(tmp) as mrc:
        mrc.set_data(np.ascontiguousarray(arr))
        mrc.voxel_size = float(voxel_size_angstrom)
        mrc.header.origin = (ox, oy, oz)
        created = mrc.get_labels()  # mrcfile's "Created by mrcfile.py <time>" label
        mrc.header.label[:] = b""
        mrc.header.nlabl = 0
        for lab in (labels + created)[:10]:
            mrc.add_label(lab)
    logger.debug("wrote %s: shape %s, mode dtype %s, voxel %g Å", path, arr.shape, arr.dtype, voxel_size_angstrom)


def read_mrc_memmap(
    path: str | os.PathLike[str], *, voxel_size_angstrom: float | None = None, require_finite: bool = False
) -> tuple[np.memmap, float]:
    """Memory-map an MRC volume read-only, without reading its data (for large tomograms).

    The header goes through the same checks as :func:`read_mrc` (size, mode, axis map).
    Unlike :func:`read_mrc` the values are neither converted nor checked for NaN/Inf
    unless ``require_finite`` is set: a consumer that streams the data (e.g. chunked
    deconvolution) checks what it reads.

    Parameters
    ----------
    path : path-like
        MRC file.
    voxel_size_angstrom : float, optional
        Overrides the header's voxel size (> 0).
    require_finite : bool
        Scan the data once, slab by slab (bounded memory), and raise like
        :func:`read_mrc` if any voxel is NaN or Inf.

    Returns
    -------
    data : `(d, h, w)` read-only ``np.memmap``, zyx order
        In the stored dtype and byte order (a transposed view if the header's axis map
        is not the standard one).
    voxel_size_angstrom : float

    Raises
    ------
    MrcFormatError
        Not an MRC file, unsupported mode, bad dimensions, truncated data, or (with
        ``require_finite``) NaN/Inf voxels.
    ValueError
        No voxel size in the header and no override given.
    """
    header = _parse_header(Path(path))
    voxel = _voxel_size(header, voxel_size_angstrom, False)
    data = _map_data(header, what="memory-map")
    if require_finite and data.dtype.kind == "f":
        step = max(1, 2**22 // (data.shape[1] * data.shape[2]))
        n_bad = sum(int(slab.size - np.count_nonzero(np.isfinite(slab)))
                    for slab in (data[z : z + step] for z in range(0, data.shape[0], step)))
        if n_bad:
            raise MrcFormatError(f"{header['path']}: {n_bad} of {data.size} voxels are NaN or Inf")
    return data.transpose(header["_perm"]), voxel


def _map_data(header: dict[str, Any], *, what: str) -> np.memmap:
    """The data block as a read-only memmap in stored order and dtype (header already checked)."""
    try:
        return np.memmap(header["path"], dtype=header["_dtype"], mode="r",
                         offset=header["_data_offset"], shape=header["_stored_shape"])
    except (OSError, ValueError) as err:
        raise MrcFormatError(f"{header['path']}: cannot {what} the MRC data ({err})") from None


@contextmanager
def open_mrc_for_writing(
    path: str | os.PathLike[str],
    shape_zyx: Sequence[int],
    *,
    voxel_size_angstrom: float,
    origin_angstrom: Sequence[float] = (0.0, 0.0, 0.0),
    labels: Sequence[str] = (),
    dtype: type | np.dtype = np.float32,
) -> Iterator[np.memmap]:
    """Create an MRC file as a writable memory map; it appears under ``path`` only on success.

    The file is created under a hidden temporary name beside ``path`` (zero-filled)
    and the body writes into the yielded array. When the body returns, the header's
    min/max/mean/rms are computed slab by slab, the map is flushed and the file renamed
    onto ``path``. If the body raises (or the data hold NaN/Inf), the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path-like
        Final output file; parent folders are created.
    shape_zyx : (d, h, w)
        Volume shape.
    voxel_size_angstrom : float
        Isotropic voxel size in Å, > 0.
    origin_angstrom : (z, y, x) floats
        Stored in the header's ``origin`` field.
    labels : sequence of str
        Up to 10 printable-ASCII labels of at most 80 characters.
    dtype : numpy dtype
        float32 (mode 2, default), int8, int16 or uint16.

    Yields
    ------
    numpy.memmap
        `(d, h, w)` writable array backed by the temporary file.
    """
    dtype = np.dtype(dtype)
    modes = {np.dtype(np.float32): 2, np.dtype(np.int8): 0, np.dtype(np.int16): 1, np.dtype(np.uint16): 6}
    if dtype not in modes:
        raise ValueError(f"open_mrc_for_writing({path}): dtype {dtype} not supported (float32, int8, int16, uint16)")
    shape = tuple(int(n) for n in shape_zyx)
    with atomic_write_path(path) as tmp:
        mrc = new_mmap_with_header(tmp, shape, mrc_mode=modes[dtype], voxel_size_angstrom=voxel_size_angstrom,
                                   origin_angstrom=origin_angstrom, labels=labels,
                                   caller=f"open_mrc_for_writing({path})")
        try:
            yield mrc.data
            _set_header_stats(mrc, Path(path))
        finally:
            mrc.close()
    logger.debug("wrote %s: shape %s, dtype %s, voxel %g Å (memory-mapped)", path, shape, dtype, voxel_size_angstrom)


def new_mmap_with_header(path: str | os.PathLike[str], shape_zyx: Sequence[int], *, mrc_mode: int,
                         voxel_size_angstrom: float, origin_angstrom: Sequence[float], labels: Sequence[str],
                         caller: str) -> Any:
    """A new memory-mapped MRC (sparse data block) with voxel size, origin and our labels set.

    The labels go before mrcfile's "Created by" label, as in :func:`write_mrc`; ``caller``
    names the writer in error messages. The caller closes the returned ``mrcfile`` object.
    """
    shape = tuple(int(n) for n in shape_zyx)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{caller}: shape_zyx must be 3 positive ints, got {tuple(shape_zyx)}")
    if not (math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise ValueError(f"{caller}: voxel_size_angstrom must be > 0, got {voxel_size_angstrom}")
    labels = list(labels)
    if len(labels) > 10 or any(len(lab) > 80 or not (lab.isascii() and lab.isprintable()) for lab in labels):
        raise ValueError(f"{caller}: at most 10 printable-ASCII labels of <= 80 characters")
    oz, oy, ox = (float(v) for v in origin_angstrom)
    mrc = mrcfile.new_mmap(path, shape=shape, mrc_mode=mrc_mode)
    try:
        mrc.voxel_size = float(voxel_size_angstrom)
        mrc.header.origin = (ox, oy, oz)
        created = mrc.get_labels()
        mrc.header.label[:] = b""
        mrc.header.nlabl = 0
        for lab in (labels + created)[:10]:
            mrc.add_label(lab)
    except BaseException:
        mrc.close()
        raise
    return mrc


def _set_header_stats(mrc: Any, path: Path) -> None:
    """dmin/dmax/dmean/rms from the data, slab by slab (float64 sums)."""
    data = mrc.data
    plane = max(1, data.shape[1] * data.shape[2])
    step = max(1, 2**22 // plane)
    lo, hi, total, total_sq = math.inf, -math.inf, 0.0, 0.0
    for z in range(0, data.shape[0], step):
        slab = np.asarray(data[z : z + step], dtype=np.float64)
        lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
        total += float(slab.sum())
        total_sq += float(np.square(slab).sum())
        handle = getattr(data, "_mmap", None)  # keep the resident set small: drop mapped pages
        if isinstance(handle, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"open_mrc_for_writing({path}): the data hold NaN or Inf values; nothing was written")
    mean = total / data.size
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
    mrc.header.rms = math.sqrt(max(0.0, total_sq / data.size - mean * mean))
