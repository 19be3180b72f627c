"""Tests for Zarr v3 volume stores: exact round trips with geometry attributes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.zarr_store import (
    create_volume_zarr,
    open_volume_zarr,
    read_volume_zarr,
    write_volume_zarr,
)


def test_round_trip_with_attributes(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((20, 33, 17)).astype(np.float32)
    path = tmp_path / "tomo 01.v2.zarr"
    prov = {"package_version": "0.1.0", "command": ["cryo-pipeline", "x"]}
    write_volume_zarr(path, data, voxel_size_angstrom=10.52, tilt_min_deg=-58.0, tilt_max_deg=62.0,
                      chunks=(8, 16, 16), provenance=prov, extra_attrs={"method": "wbp", "scale": np.float32(2)})
    back, attrs = read_volume_zarr(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.float32
    assert attrs["axes"] == "zyx"
    assert attrs["voxel_size_angstrom"] == 10.52
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == (-58.0, 62.0)
    assert attrs["provenance"] == prov
    assert attrs["method"] == "wbp" and attrs["scale"] == 2.0
    arr = zarr.open_array(str(path), mode="r")  # plain zarr sees a v3 array at the root
    assert arr.metadata.zarr_format == 3
    assert arr.metadata.dimension_names == ("z", "y", "x")
    assert arr.chunks == (8, 16, 16)
    assert json.loads((path / "zarr.json").read_text())["node_type"] == "array"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_tilt_range_omitted_and_default_provenance(tmp_path):
    path = tmp_path / "v.zarr"
    write_volume_zarr(path, np.ones((4, 5, 6), np.int16), voxel_size_angstrom=3.0)
    arr = open_volume_zarr(path)
    assert "tilt_min_deg" not in arr.attrs and "tilt_max_deg" not in arr.attrs
    assert arr.attrs["provenance"]["package"] == "cryo_pipeline"
    assert arr.chunks == (4, 5, 6)  # chunks clipped to the shape
    assert arr.dtype == np.int16


def test_stack_of_volumes(tmp_path):
    data = np.arange(3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)
    path = tmp_path / "subtomos.zarr"
    write_volume_zarr(path, data, voxel_size_angstrom=2.0, chunks=(4, 4, 4))
    arr = open_volume_zarr(path)
    assert arr.metadata.dimension_names == ("n", "z", "y", "x")
    assert arr.chunks == (1, 4, 4, 4)
    np.testing.assert_array_equal(read_volume_zarr(path)[0], data)


def test_overwrite_replaces_store_atomically(tmp_path):
    path = tmp_path / "v.zarr"
    write_volume_zarr(path, np.zeros((8, 8, 8), np.float32), voxel_size_angstrom=1.0)
    write_volume_zarr(path, np.full((2, 3, 4), 7.0, np.float32), voxel_size_angstrom=2.0)
    data, attrs = read_volume_zarr(path)
    assert data.shape == (2, 3, 4) and np.all(data == 7.0) and attrs["voxel_size_angstrom"] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="voxel_size_angstrom must be > 0"):
        write_volume_zarr(tmp_path / "v.zarr", np.zeros((2, 2, 2)), voxel_size_angstrom=0.0)
    with pytest.raises(ValueError, match="reserved"):
        write_volume_zarr(tmp_path / "v.zarr", np.zeros((2, 2, 2)), voxel_size_angstrom=1.0,
                          extra_attrs={"axes": "xyz"})
    with pytest.raises(ValueError, match="larger than tilt_max_deg"):
        write_volume_zarr(tmp_path / "v.zarr", np.zeros((2, 2, 2)), voxel_size_angstrom=1.0,
                          tilt_min_deg=30, tilt_max_deg=-30)
    with pytest.raises(ValueError, match="shape"):
        write_volume_zarr(tmp_path / "v.zarr", np.zeros((2, 2)), voxel_size_angstrom=1.0)
    assert list(tmp_path.iterdir()) == []


def test_streaming_writer_in_atomic_temp(tmp_path):
    final = tmp_path / "pred.zarr"
    with atomic_write_path(final) as tmp:
        arr = create_volume_zarr(tmp, (10, 6, 6), chunks=(4, 6, 6), voxel_size_angstrom=5.0,
                                 tilt_min_deg=-60, tilt_max_deg=60)
        for z0 in range(0, 10, 4):
            arr[z0 : z0 + 4] = z0
        assert not final.exists()
    data, attrs = read_volume_zarr(final)
    np.testing.assert_array_equal(data[:, 0, 0], [0, 0, 0, 0, 4, 4, 4, 4, 8, 8])
    assert attrs["tilt_min_deg"] == -60.0
    with pytest.raises(FileExistsError):
        create_volume_zarr(final, (2, 2, 2), voxel_size_angstrom=1.0)


def test_open_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not a Zarr store"):
        open_volume_zarr(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ValueError, match="not a Zarr array store"):
        open_volume_zarr(tmp_path / "empty.zarr")
    plain = zarr.create_array(store=str(tmp_path / "plain.zarr"), shape=(2, 2, 2), dtype="f4",
                              attributes={"axes": "zyx"})
    plain[...] = 1
    with pytest.raises(ValueError, match="no 'voxel_size_angstrom' attribute"):
        read_volume_zarr(tmp_path / "plain.zarr")
    with pytest.raises(ValueError, match="mode"):
        open_volume_zarr(tmp_path / "plain.zarr", mode="w")
