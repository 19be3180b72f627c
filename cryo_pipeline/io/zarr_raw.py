"""Boxes of uncompressed Zarr v3 arrays read from and written to their chunk files directly.

zarr-python decodes a whole chunk for any read that touches it, through several buffer copies
and its async machinery (~1 GB/s for 1 MiB chunks on the project's CI machine). For an
**uncompressed** array (codecs = the ``bytes`` codec alone, little-endian) on a **local** store,
a chunk file is the C-order array of its values, so a box is one contiguous byte span per
chunk (or one span per run of rows when the box is a thin part of it):
:class:`ChunkFileReader` reads exactly that with ``os.preadv`` (into the caller's buffer when
the box is contiguous there) — one copy, no decoding. :class:`ChunkFileWriter` writes whole
chunks as files the same way (zarr-python spends ~1 ms per 1 MiB chunk on top of the write).
Every other array (a codec, a remote store, another chunk grid) goes through zarr itself, so
callers never need to know which path ran. A chunk file that does not exist holds the fill value (zarr does not
write chunks equal to it). Only the chunk layout of the Zarr v3 specification is used:
regular chunk grid, chunk keys from the array's own key encoding, edge chunks stored at the
full chunk shape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

__all__ = ["ChunkFileReader", "ChunkFileWriter"]

#: Bytes that one more read call costs about as much time as (its Python and syscall overhead,
#: ~30 µs, at ~4 GB/s from the page cache): a box is read run by run (no temporary buffer) when
#: its runs are longer than this, else as one span unless that reads more extra bytes than this
#: per run.
_RUN_COST_BYTES = 128 * 1024


def _raw_layout(array: zarr.Array) -> tuple[Path, np.dtype] | None:
    """The chunk files' folder and dtype when ``array`` qualifies for raw reads, else None."""
    try:
        from zarr.codecs import BytesCodec
        from zarr.core.chunk_grids import RegularChunkGrid
        from zarr.storage import LocalStore

        meta = array.metadata
        codecs = getattr(meta, "codecs", ())
        store = array.store_path.store
        if (meta.zarr_format != 3 or len(codecs) != 1 or not isinstance(codecs[0], BytesCodec)
                or not isinstance(store, LocalStore) or not isinstance(meta.chunk_grid, RegularChunkGrid)
                or not hasattr(os, "preadv")):
            return None
        dtype = np.dtype(array.dtype)
        endian = getattr(codecs[0].endian, "value", codecs[0].endian)
        if dtype.itemsize > 1 and endian != "little" or dtype.byteorder == ">":
            return None
        return Path(str(store.root)) / array.store_path.path, dtype.newbyteorder("<")
    except (AttributeError, ImportError, TypeError):  # another zarr version's internals: read through zarr
        return None


class _ChunkFiles:
    """An array's shape, chunks, fill value and — when it qualifies — the chunk files' folder and dtype."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.chunks = tuple(int(n) for n in array.chunks)
        layout = _raw_layout(array)
        self.raw = layout is not None
        self._root, self._dtype = layout if layout is not None else (None, None)
        fill = array.metadata.fill_value if hasattr(array.metadata, "fill_value") else 0
        self._fill = 0 if fill is None else fill


class ChunkFileReader(_ChunkFiles):
    """Read boxes of a Zarr v3 array, straight from the chunk files where it is uncompressed and local.

    Parameters
    ----------
    array : zarr.Array
        Opened for reading.

    Attributes
    ----------
    raw : bool
        True if boxes are read from the chunk files (else through zarr).
    """

    def __init__(self, array: zarr.Array) -> None:
        super().__init__(array)
        self._strides = np.cumprod((self.chunks[1:] + (1,))[::-1])[::-1].astype(np.int64)  # C strides, elements

    def read(self, box: Sequence[slice], out: np.ndarray | None = None) -> np.ndarray:
        """``array[box]`` (slices with step 1, inside the array) as a C-contiguous array.

        Parameters
        ----------
        box : sequence of slice
            One per dimension.
        out : array, optional
            Destination of the box's shape and the array's dtype (e.g. a view into a larger
            buffer); a new array if None.
        """
        if len(box) != len(self.shape):
            raise ValueError(f"box {tuple(box)} has {len(box)} dimensions, the array {len(self.shape)}")
        bounds = [s.indices(n)[:2] for s, n in zip(box, self.shape, strict=True)]
        if any(s.step not in (None, 1) for s in box) or any(b <= a for a, b in bounds):
            raise ValueError(f"box {tuple(box)} must be non-empty slices with step 1 inside {self.shape}")
        shape = tuple(b - a for a, b in bounds)
        if out is None:
            out = np.empty(shape, dtype=self.array.dtype)
        elif out.shape != shape:
            raise ValueError(f"out has shape {out.shape}, the box {shape}")
        if not self.raw:
            out[...] = self.array[tuple(slice(a, b) for a, b in bounds)]
            return out
        ranges = [range(a // c, (b - 1) // c + 1) for (a, b), c in zip(bounds, self.chunks, strict=True)]
        for index in np.ndindex(*(len(r) for r in ranges)):
            coords = tuple(r[i] for r, i in zip(ranges, index, strict=True))
            local = [(max(a, k * c) - k * c, min(b, (k + 1) * c) - k * c)
                     for (a, b), k, c in zip(bounds, coords, self.chunks, strict=True)]
            dest = tuple(slice(k * c + lo - a, k * c + hi - a)
                         for (a, _), k, c, (lo, hi) in zip(bounds, coords, self.chunks, local, strict=True))
            self._read_chunk(coords, local, out[dest])
        return out

    def _read_chunk(self, coords: tuple[int, ...], local: list[tuple[int, int]], dest: np.ndarray) -> None:
        path = self._root / self.array.metadata.encode_chunk_key(coords)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            dest[...] = self._fill
            return
        try:
            first = int(np.dot([lo for lo, _ in local], self._strides))
            span = int(np.dot([hi - 1 for _, hi in local], self._strides)) - first + 1
            partial = [d for d, ((lo, hi), c) in enumerate(zip(local, self.chunks, strict=True)) if hi - lo != c]
            k = max(partial, default=0)  # runs: the box's extent along axis k times the full axes after it
            n_runs = int(np.prod([hi - lo for lo, hi in local[:k]]))
            extra = (span - dest.size) * self._dtype.itemsize
            if extra == 0 or (dest.nbytes < n_runs * _RUN_COST_BYTES and extra <= n_runs * _RUN_COST_BYTES):
                self._read_span(fd, path, first, span, dest)  # one read of the span holding the box
                return
            # runs are long (their call overhead is small) or the span is mostly other data: one read per run
            for lead in np.ndindex(*(hi - lo for lo, hi in local[:k])):
                start = [lo + i for (lo, _), i in zip(local[:k], lead, strict=True)] + [local[k][0]]
                run = dest[lead]
                self._read_span(fd, path, int(np.dot(start, self._strides[: k + 1])), run.size, run)
        finally:
            os.close(fd)

    def _read_span(self, fd: int, path: Path, first: int, span: int, dest: np.ndarray) -> None:
        """Read elements ``[first, first + span)`` of the chunk file and copy the box ``dest`` from them."""
        direct = dest.flags.c_contiguous and span == dest.size and dest.dtype == self._dtype
        buffer = dest if direct else np.empty(span, dtype=self._dtype)
        _read_exactly(fd, memoryview(buffer.reshape(-1)).cast("B"), first * self._dtype.itemsize, path)
        if not direct:
            itemsize = self._dtype.itemsize
            dest[...] = np.lib.stride_tricks.as_strided(buffer, shape=dest.shape,
                                                        strides=tuple(int(s) * itemsize for s in
                                                                      self._strides[-dest.ndim:]))


def _read_exactly(fd: int, view: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise ValueError(f"{path}: chunk file ends after {offset + done} bytes; expected at least "
                             f"{offset + len(view)} (truncated or not an uncompressed chunk)")
        done += n


class ChunkFileWriter(_ChunkFiles):
    """Write chunk-aligned boxes of a Zarr v3 array, as chunk files directly where it is uncompressed and local.

    Parameters
    ----------
    array : zarr.Array
        Opened for writing. Writers of different boxes may run in parallel (threads or
        processes), one writer object each: a chunk belongs to one box.
    """

    def __init__(self, array: zarr.Array) -> None:
        super().__init__(array)
        self._folders: set[Path] = set()
        self._chunk = np.empty(self.chunks, dtype=self._dtype) if self.raw else None  # reused for every chunk

    def write(self, lo: Sequence[int], data: np.ndarray) -> None:
        """``array[lo : lo + data.shape] = data``; the box must start and end on chunk edges (or the array's end)."""
        bounds = [(int(a), int(a) + n) for a, n in zip(lo, data.shape, strict=True)]
        for (a, b), c, n in zip(bounds, self.chunks, self.shape, strict=True):
            if a < 0 or b > n or a % c or (b % c and b != n):
                raise ValueError(f"box {bounds} is not aligned with the chunks {self.chunks} of the array {self.shape}")
        if not self.raw:
            self.array[tuple(slice(a, b) for a, b in bounds)] = data
            return
        starts = [range(a // c, -(-b // c)) for (a, b), c in zip(bounds, self.chunks, strict=True)]
        for coords in np.ndindex(*(len(r) for r in starts)):
            index = tuple(r[i] for r, i in zip(starts, coords, strict=True))
            piece = data[tuple(slice(k * c - a, min((k + 1) * c, b) - a)
                               for k, c, (a, b) in zip(index, self.chunks, bounds, strict=True))]
            if piece.shape != self.chunks:  # an edge chunk is stored at the full chunk shape
                self._chunk[...] = self._fill
            self._chunk[tuple(slice(0, n) for n in piece.shape)] = piece
            self._write_file(self._root / self.array.metadata.encode_chunk_key(index), self._chunk)

    def _write_file(self, path: Path, chunk: np.ndarray) -> None:
        if path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(chunk.reshape(-1)).cast("B")
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        finally:
            os.close(fd)
