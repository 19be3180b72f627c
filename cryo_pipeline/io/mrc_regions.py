"""An MRC volume written in place, region by region, by parallel tasks.

For outputs too large to assemble in one process (the Dask stitch), the file is created once
with its header and its full (sparse) size (:func:`create_mrc_regions`); every task then
writes its own boxes at their byte offsets with ``os.pwrite`` (:meth:`MrcRegionWriter.write`:
one call per z-plane when the box spans the full width; no memory map, so the written pages
never count towards a task's resident memory), and the statistics of the header —
min, max, mean, rms — are set at the end from sums the tasks returned
(:func:`finish_mrc_regions`), without reading the data again. Boxes of different tasks must
not overlap; they may share a page (the kernel orders writes to disjoint byte ranges).
Create the file at a temporary path (:func:`cryo_pipeline.io.atomic.atomic_write_path`):
it is complete only after :func:`finish_mrc_regions`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import mrcfile
import numpy as np

from cryo_pipeline.io.mrc import new_mmap_with_header

__all__ = ["MrcRegionWriter", "create_mrc_regions", "finish_mrc_regions"]


@dataclass(frozen=True)
class MrcRegionWriter:
    """Where an MRC file's voxels are (small and picklable: sent to every task).

    Attributes
    ----------
    path : str
        The file (created by :func:`create_mrc_regions`).
    shape : (d, h, w)
        Volume shape, float32 (mode 2).
    data_offset : int
        Byte offset of voxel (0, 0, 0).
    """

    path: str
    shape: tuple[int, int, int]
    data_offset: int

    def write(self, lo_zyx: Sequence[int], block: np.ndarray) -> None:
        """Write ``block`` `(dz, dy, dx)` (cast to float32) at volume index ``lo_zyx``."""
        z0, y0, x0 = (int(v) for v in lo_zyx)
        d, h, w = self.shape
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 3 or min(z0, y0, x0) < 0 or any(
                a + n > m for a, n, m in zip((z0, y0, x0), block.shape, self.shape, strict=True)):
            raise ValueError(f"{self.path}: block {block.shape} at {(z0, y0, x0)} does not fit the volume {self.shape}")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for k in range(block.shape[0]):
                row0 = ((z0 + k) * h + y0) * w + x0
                if block.shape[2] == w:  # the plane's rows are contiguous in the file
                    _write_all(fd, block[k], self.data_offset + 4 * row0)
                    continue
                for j in range(block.shape[1]):
                    _write_all(fd, block[k, j], self.data_offset + 4 * (row0 + j * w))
        finally:
            os.close(fd)


def _write_all(fd: int, array: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(array)).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def create_mrc_regions(
    path: str | os.PathLike[str],
    shape_zyx: Sequence[int],
    *,
    voxel_size_angstrom: float,
    origin_angstrom: Sequence[float] = (0.0, 0.0, 0.0),
    labels: Sequence[str] = (),
) -> MrcRegionWriter:
    """Create a float32 MRC file of ``shape_zyx`` (sparse, zero-valued) for region writes.

    Parameters
    ----------
    path : path-like
        New file (use a temporary path; see the module notes).
    shape_zyx : (d, h, w)
    voxel_size_angstrom : float
        Isotropic voxel size in Å, > 0.
    origin_angstrom : (z, y, x) floats
        The header's ``origin``.
    labels : sequence of str
        Up to 10 printable-ASCII labels of at most 80 characters (before mrcfile's "Created by").
    """
    shape = tuple(int(n) for n in shape_zyx)
    with new_mmap_with_header(path, shape, mrc_mode=2, voxel_size_angstrom=voxel_size_angstrom,
                              origin_angstrom=origin_angstrom, labels=labels,
                              caller=f"create_mrc_regions({path})") as mrc:  # a sparse data block
        offset = int(mrc.header.nbytes + mrc.extended_header.nbytes)
    return MrcRegionWriter(str(path), shape, offset)  # type: ignore[arg-type]


def finish_mrc_regions(path: str | os.PathLike[str], *, minimum: float, maximum: float, total: float,
                       total_sq: float, count: int) -> None:
    """Set the header's dmin, dmax, dmean and rms from sums over every voxel (no data read).

    Parameters
    ----------
    minimum, maximum : float
        Extremes of the voxels.
    total, total_sq : float
        Sum and sum of squares of the voxels (float64).
    count : int
        Number of voxels (must be the volume's).

    Raises
    ------
    ValueError
        A non-finite statistic (NaN or Inf voxels), or ``count`` not the volume size.
    """
    with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
        header = mrc.header.copy()
        n = int(mrc.header.nx) * int(mrc.header.ny) * int(mrc.header.nz)
    if count != n:
        raise ValueError(f"{path}: statistics over {count} voxels, but the volume has {n}; some regions were not "
                         "written")
    if not all(math.isfinite(v) for v in (minimum, maximum, total, total_sq)):
        raise ValueError(f"{path}: the data hold NaN or Inf values (min {minimum}, max {maximum}); nothing was written")
    mean = total / count
    header.dmin, header.dmax, header.dmean = minimum, maximum, mean
    header.rms = math.sqrt(max(0.0, total_sq / count - mean * mean))
    fd = os.open(path, os.O_WRONLY)
    try:
        _write_all(fd, np.frombuffer(header.tobytes(), dtype=np.uint8), 0)
    finally:
        os.close(fd)
