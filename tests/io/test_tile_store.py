"""Tile stores: one chunk per tile, geometry in the attributes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cryo_pipeline.io.tile_store import create_tile_store, open_tile_store, write_tile_store


def _write(path, **overrides):
    kwargs = dict(volume_shape_zyx=(20, 30, 24), tile_px=(8, 16, 12), overlap_px=2, voxel_size_angstrom=3.5,
                  group=1, n_groups=4, tilt_min_deg=-60.0, tilt_max_deg=55.0)
    kwargs.update(overrides)
    tiles = np.arange(2 * 8 * 16 * 12, dtype=np.float64).reshape(2, 8, 16, 12)
    write_tile_store(path, tiles, [[0, 0, 0], [12, 14, 12]], **kwargs)
    return tiles


def test_round_trip_with_attributes(tmp_path):
    tiles = _write(tmp_path / "t.zarr")
    array, attrs = open_tile_store(tmp_path / "t.zarr")
    assert array.dtype == np.float32 and array.chunks == (1, 8, 16, 12)
    np.testing.assert_array_equal(array[...], tiles.astype(np.float32))
    np.testing.assert_array_equal(attrs["origins"], [[0, 0, 0], [12, 14, 12]])
    assert (attrs["volume_shape_zyx"], attrs["tile_px"], attrs["overlap_px"]) == ((20, 30, 24), (8, 16, 12),
                                                                                  (2, 2, 2))
    assert (attrs["group"], attrs["n_groups"], attrs["voxel_size_angstrom"], attrs["axes"]) == (1, 4, 3.5, "zyx")
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == (-60.0, 55.0) and "provenance" in attrs
    assert [p.name for p in tmp_path.iterdir()] == ["t.zarr"]  # atomic: no temporary left


def test_empty_group_is_a_valid_store(tmp_path):
    create_tile_store(tmp_path / "e.zarr", origins=np.zeros((0, 3)), volume_shape_zyx=(8, 8, 8), tile_px=8,
                      overlap_px=0, voxel_size_angstrom=1.0, group=3, n_groups=4)
    array, attrs = open_tile_store(tmp_path / "e.zarr")
    assert array.shape == (0, 8, 8, 8) and attrs["origins"].shape == (0, 3)


def test_bad_geometry_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reach outside the volume"):
        _write(tmp_path / "a.zarr", volume_shape_zyx=(20, 28, 24))
    with pytest.raises(ValueError, match=r"group 4 must be in \[0, n_groups=4\)"):
        _write(tmp_path / "b.zarr", group=4)
    with pytest.raises(ValueError, match="overlap_px"):
        _write(tmp_path / "c.zarr", overlap_px=8)
    with pytest.raises(ValueError, match="voxel_size_angstrom must be > 0"):
        _write(tmp_path / "d.zarr", voxel_size_angstrom=0.0)
    with pytest.raises(ValueError, match=r"tiles must be \(k, \*tile_px\)"):
        _write(tmp_path / "e.zarr", tile_px=8)
    assert not list(tmp_path.iterdir())


def test_missing_attributes_and_non_stores_are_named(tmp_path):
    zarr.create_array(store=str(tmp_path / "plain.zarr"), shape=(1, 4, 4, 4), dtype="float32",
                      attributes={"origins": [[0, 0, 0]], "voxel_size_angstrom": 1.0})
    with pytest.raises(ValueError, match=r"no 'volume_shape_zyx', 'tile_px', 'overlap_px', 'group', 'n_groups'"):
        open_tile_store(tmp_path / "plain.zarr")
    with pytest.raises(ValueError, match="no such folder"):
        open_tile_store(tmp_path / "absent.zarr")
