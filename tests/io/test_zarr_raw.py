"""Chunk-file reads and writes of uncompressed Zarr v3 arrays equal zarr's own, and fall back to zarr otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from cryo_pipeline.io.zarr_raw import ChunkFileReader, ChunkFileWriter

SHAPE, CHUNKS = (3, 37, 50, 29), (1, 16, 20, 8)  # edge chunks on every axis


def _array(tmp_path, name="a.zarr", compressors=None):
    return zarr.create_array(store=str(tmp_path / name), shape=SHAPE, chunks=CHUNKS, dtype=np.float32,
                             compressors=compressors, fill_value=0)


def test_reads_of_random_boxes_equal_zarr_including_missing_and_edge_chunks(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal(SHAPE).astype(np.float32)
    data[1, 16:32, 20:40, 8:16] = 0  # chunks equal to the fill value: zarr writes no file for them
    _array(tmp_path)[...] = data
    reader = ChunkFileReader(zarr.open_array(str(tmp_path / "a.zarr"), mode="r"))
    assert reader.raw
    for _ in range(200):
        lo = [int(rng.integers(0, n)) for n in SHAPE]
        box = tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, SHAPE, strict=True))
        np.testing.assert_array_equal(reader.read(box), data[box])
    # thin boxes of large chunks: one read per run of rows, into a view of a larger buffer
    out = np.zeros((1, 37, 3, 29), np.float32)
    reader.read((slice(2, 3), slice(0, 37), slice(41, 44), slice(0, 29)), out=out)
    np.testing.assert_array_equal(out, data[2:3, :, 41:44])


def test_compressed_arrays_are_read_and_written_through_zarr(tmp_path):
    data = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    array = _array(tmp_path, compressors=ZstdCodec(level=1))
    writer = ChunkFileWriter(array)
    assert not writer.raw
    writer.write((0, 16, 0, 0), data[:, 16:37])
    reader = ChunkFileReader(zarr.open_array(str(tmp_path / "a.zarr"), mode="r"))
    assert not reader.raw
    np.testing.assert_array_equal(reader.read((slice(0, 3), slice(16, 37), slice(0, 50), slice(0, 29))),
                                  data[:, 16:37])


def test_chunk_file_writes_are_read_back_by_zarr(tmp_path):
    data = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    writer = ChunkFileWriter(_array(tmp_path))
    assert writer.raw
    writer.write((0, 0, 0, 0), data[:, :32])  # whole chunks
    writer.write((0, 32, 0, 0), data[:, 32:])  # the edge chunks, padded with the fill value
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], data)
    with pytest.raises(ValueError, match="not aligned with the chunks"):
        writer.write((0, 8, 0, 0), data[:, 8:24])
