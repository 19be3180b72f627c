"""Memory-mapped MRC access: read_mrc_memmap (same checks as read_mrc) and the atomic mmap writer."""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryo_pipeline.io.mrc import MrcFormatError, open_mrc_for_writing, read_mrc, read_mrc_memmap, write_mrc

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint16, np.int8])
def test_memmap_equals_read_mrc(tmp_path, dtype):
    data = (np.arange(3 * 4 * 5) - 20).reshape(3, 4, 5).astype(np.float32)
    if dtype is np.uint16:
        data -= data.min()
    path = tmp_path / "v.mrc"
    write_mrc(path, data.astype(dtype), voxel_size_angstrom=2.5)
    mapped, voxel = read_mrc_memmap(path)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    assert mapped.shape == (3, 4, 5) and mapped.dtype == dtype and voxel == 2.5
    np.testing.assert_array_equal(np.asarray(mapped, dtype=np.float32), read_mrc(path).data)


def test_memmap_honours_the_axis_map_and_the_override(tmp_path):
    zyx = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "perm.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    with pytest.raises(ValueError, match=r"has no voxel size"):
        read_mrc_memmap(path)
    mapped, voxel = read_mrc_memmap(path, voxel_size_angstrom=4.0)
    assert voxel == 4.0
    np.testing.assert_array_equal(mapped, zyx)


def test_memmap_rejects_truncated_files_like_read_mrc(tmp_path):
    path = tmp_path / "t.mrc"
    write_mrc(path, np.zeros((4, 8, 8), dtype=np.float32), voxel_size_angstrom=1.0)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MrcFormatError, match=r"truncated MRC file"):
        read_mrc_memmap(path)


def test_memmap_reads_the_real_fei_tilt_series():
    path = REAL / "tiltseries_haadf_needle_etspy.mrc"
    if not path.is_file():
        pytest.skip(f"real data file {path} is missing")
    mapped, voxel = read_mrc_memmap(path, voxel_size_angstrom=33.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as mrc:
            np.testing.assert_array_equal(mapped, mrc.data)
    assert mapped.shape == (77, 256, 256) and voxel == 33.6


def test_writer_appears_only_when_complete_with_geometry_and_stats(tmp_path):
    out = tmp_path / "sub" / "w.mrc"
    data = np.random.default_rng(0).standard_normal((6, 7, 8)).astype(np.float32)
    with open_mrc_for_writing(out, data.shape, voxel_size_angstrom=3.0, origin_angstrom=(1, 2, 3),
                              labels=["cryo_pipeline test"]) as target:
        assert not out.exists()
        assert isinstance(target, np.memmap) and target.shape == data.shape and not target.any()
        target[:] = data
    assert [p.name for p in out.parent.iterdir()] == ["w.mrc"]
    back = read_mrc(out)
    np.testing.assert_array_equal(back.data, data)
    assert back.voxel_size_angstrom == 3.0 and back.origin_angstrom == (1.0, 2.0, 3.0)
    with mrcfile.open(out) as mrc:
        assert mrc.get_labels()[0] == "cryo_pipeline test"
        assert float(mrc.header.dmin) == pytest.approx(float(data.min()))
        assert float(mrc.header.dmean) == pytest.approx(float(data.mean()), abs=1e-6)
        assert float(mrc.header.rms) == pytest.approx(float(data.std()), rel=1e-5)


def test_writer_leaves_nothing_on_failure_or_nan(tmp_path):
    out = tmp_path / "w.mrc"
    with pytest.raises(RuntimeError, match="boom"), open_mrc_for_writing(out, (2, 3, 4), voxel_size_angstrom=1.0):
        raise RuntimeError("boom")
    with pytest.raises(ValueError, match=r"NaN or Inf values; nothing was written"):
        with open_mrc_for_writing(out, (2, 3, 4), voxel_size_angstrom=1.0) as target:
            target[1, 1, 1] = np.nan
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"voxel_size_angstrom must be > 0, got 0"):
        with open_mrc_for_writing(out, (2, 3, 4), voxel_size_angstrom=0):
            pass
    with pytest.raises(ValueError, match=r"dtype float64 not supported"):
        with open_mrc_for_writing(out, (2, 3, 4), voxel_size_angstrom=1.0, dtype=np.float64):
            pass
