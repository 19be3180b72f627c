"""Subtomogram stores (cryo_pipeline.io.subtomo_store): layout, attributes, atomicity, errors."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter, open_subtomo_store
from cryo_pipeline.io.tables import read_subtomo_table, write_subtomo_table
from cryo_pipeline.io.zarr_store import write_volume_zarr

NORM = {"mean": 1.5, "std": 2.0, "mean_in_mask": 1.0, "std_in_mask": 3.0}


def _writer(path, **overrides):
    kwargs = dict(n_cubes=3, cube_px=8, voxel_size_angstrom=10.52, tilt_min_deg=-55.0, tilt_max_deg=62.0,
                  source_tomogram="data/tomo_10.00Apx.mrc", normalization=NORM, cube_core_px=6)
    return SubtomoStoreWriter(path, **{**kwargs, **overrides})


def _cubes(n=3, s=8):
    return np.random.default_rng(0).standard_normal((n, s, s, s)).astype(np.float32)


def test_round_trip_layout_and_attributes(tmp_path):
    path = tmp_path / "tomo_10.00Apx.zarr"
    cubes = _cubes()
    with _writer(path) as writer:
        assert not path.exists()  # nothing under the final name while writing
        for i in (2, 0, 1):
            writer.write(i, cubes[i])
    array, attrs = open_subtomo_store(path)
    assert array.shape == (3, 8, 8, 8) and array.dtype == np.float32
    assert array.chunks == (1, 8, 8, 8)  # one cube per chunk
    assert list(array.metadata.dimension_names) == ["n", "z", "y", "x"]
    np.testing.assert_array_equal(array[...], cubes)
    assert attrs["axes"] == "zyx"
    assert attrs["voxel_size_angstrom"] == 10.52
    assert (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == (-55.0, 62.0)
    assert (attrs["cube_size_px"], attrs["cube_size_core_px"]) == (8, 6)
    assert attrs["source_tomogram"] == "data/tomo_10.00Apx.mrc"
    assert attrs["normalization"] == NORM
    assert attrs["provenance"]["package"] == "cryo_pipeline"
    assert zarr.open_array(str(path), mode="r").shape == (3, 8, 8, 8)  # plain zarr can read it
    assert [p.name for p in tmp_path.iterdir()] == ["tomo_10.00Apx.zarr"]  # no temp left behind


def test_failure_inside_the_block_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="boom"), _writer(path) as writer:
        writer.write(0, _cubes()[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_cubes_are_an_error_and_leave_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"1 of 3 cubes were never written \(first: \[1\]\)"), _writer(path) as w:
        w.write(0, _cubes()[0])
        w.write(2, _cubes()[2])
    assert list(tmp_path.iterdir()) == []


def test_an_existing_store_is_replaced_only_on_success(tmp_path):
    path = tmp_path / "s.zarr"
    cubes = _cubes()
    with _writer(path) as writer:
        for i in range(3):
            writer.write(i, cubes[i])
    with pytest.raises(RuntimeError), _writer(path, n_cubes=1) as writer:
        writer.write(0, cubes[0] + 1)
        raise RuntimeError("crash")
    np.testing.assert_array_equal(open_subtomo_store(path)[0][...], cubes)


@pytest.mark.parametrize(("call", "match"), [
    (lambda w: w.write(0, np.zeros((8, 8, 7))), r"shape \(8, 8, 7\), expected \(8, 8, 8\)"),
    (lambda w: w.write(3, np.zeros((8, 8, 8))), "index 3 outside 0..2"),
    (lambda w: w.write(0, np.full((8, 8, 8), np.nan)), "NaN"),
])
def test_bad_cubes_are_rejected(tmp_path, call, match):
    with pytest.raises((ValueError, IndexError), match=match), _writer(tmp_path / "s.zarr") as writer:
        call(writer)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("overrides", "match"), [
    ({"normalization": {"mean": 0.0}}, r"missing \['std'\]"),
    ({"normalization": {"mean": 0.0, "std": 0.0}}, "std must be > 0"),
    ({"normalization": {"mean": float("nan"), "std": 1.0}}, "non-finite"),
    ({"cube_core_px": 9}, "cube_core_px <= cube_px"),
    ({"n_cubes": 0}, "n_cubes >= 1"),
    ({"voxel_size_angstrom": 0.0}, "voxel_size_angstrom must be > 0"),
])
def test_bad_writer_arguments(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match), _writer(tmp_path / "s.zarr", **overrides):
        pass
    assert list(tmp_path.iterdir()) == []


def test_store_without_tilt_range_names_the_missing_key(tmp_path):
    path = tmp_path / "old.zarr"
    write_volume_zarr(path, np.zeros((2, 4, 4, 4), np.float32), voxel_size_angstrom=5.0, chunks=(4, 4, 4),
                      extra_attrs={"cube_size_px": 4, "cube_size_core_px": 4, "source_tomogram": "t.mrc",
                                   "normalization": {"mean": 0.0, "std": 1.0}})
    with pytest.raises(ValueError) as err:
        open_subtomo_store(path)
    assert "'tilt_min_deg'" in str(err.value) and str(path) in str(err.value)


def test_store_with_incomplete_normalization_or_wrong_shape(tmp_path):
    base = {"cube_size_px": 4, "cube_size_core_px": 4, "source_tomogram": "t.mrc"}
    bad_norm = tmp_path / "a.zarr"
    write_volume_zarr(bad_norm, np.zeros((1, 4, 4, 4), np.float32), voxel_size_angstrom=5.0, tilt_min_deg=-60,
                      tilt_max_deg=60, extra_attrs={**base, "normalization": {"mean": 0.0}})
    with pytest.raises(ValueError, match=r"'normalization' attribute has no 'std' key"):
        open_subtomo_store(bad_norm)
    bad_shape = tmp_path / "b.zarr"
    write_volume_zarr(bad_shape, np.zeros((1, 4, 4, 5), np.float32), voxel_size_angstrom=5.0, tilt_min_deg=-60,
                      tilt_max_deg=60, extra_attrs={**base, "normalization": {"mean": 0.0, "std": 1.0}})
    with pytest.raises(ValueError, match=r"expected \(n, 4, 4, 4\) cubes"):
        open_subtomo_store(bad_shape)
    with pytest.raises(ValueError, match="not a Zarr store"):
        open_subtomo_store(tmp_path / "missing.zarr")


def test_table_round_trip(tmp_path):
    path = tmp_path / "tomo_10.00Apx.tsv"
    centres = np.array([[4, 5, 6], [7, 8, 9]])
    write_subtomo_table(path, centres=centres, mask_fractions=np.array([0.5, 0.3125]),
                        is_validation=np.array([False, True]))
    assert path.read_text().splitlines()[0] == "index\tz\ty\tx\tmask_fraction\tsplit"
    table = read_subtomo_table(path)
    assert table["index"].tolist() == [0, 1]
    np.testing.assert_array_equal(table[["z", "y", "x"]].to_numpy(), centres)
    assert table["mask_fraction"].tolist() == [0.5, 0.3125]
    assert table["split"].tolist() == ["train", "val"]
    with pytest.raises(ValueError, match="same n cubes"):
        write_subtomo_table(path, centres=centres, mask_fractions=[0.5], is_validation=[True, False])
    (tmp_path / "bad.tsv").write_text("index\tz\n0\t1\n")
    with pytest.raises(ValueError, match="columns"):
        read_subtomo_table(tmp_path / "bad.tsv")
