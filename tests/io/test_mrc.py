"""Tests for the MRC reader/writer: exact round trips, real files, one-line errors."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryo_pipeline.io.mrc import MrcFormatError, MrcVolume, read_mrc, read_mrc_header, write_mrc

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _real(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real data file {path} is missing (see shared/data/real/MANIFEST.md)")
    return path


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("dtype", "mode", "low", "high"),
    [(np.int8, 0, -128, 127), (np.int16, 1, -32768, 32767), (np.float32, 2, -1e6, 1e6),
     (np.uint16, 6, 0, 65535), (np.float16, 12, -6e4, 6e4)],
)
def test_round_trip_modes_exact(tmp_path, dtype, mode, low, high):
    rng = np.random.default_rng(mode)
    data = rng.uniform(low, high, size=(5, 7, 9)).astype(dtype)
    data.flat[0], data.flat[1] = low, high  # the extreme values survive
    path = tmp_path / f"mode{mode}.mrc"
    write_mrc(path, data, voxel_size_angstrom=2.17, origin_angstrom=(10.5, -3.0, 7.25))
    if mode != 12:  # mrcfile's validator computes the std in float16, which overflows here
        report = io.StringIO()
        assert mrcfile.validate(path, print_file=report), report.getvalue()  # strict MRC2014
    header = read_mrc_header(path)
    assert header["mode"] == mode
    assert header["shape_zyx"] == (5, 7, 9)
    vol = read_mrc(path)
    assert isinstance(vol, MrcVolume)
    assert vol.data.dtype == np.float32 and vol.data.flags.c_contiguous
    np.testing.assert_array_equal(vol.data, data.astype(np.float32))
    assert vol.voxel_size_angstrom == pytest.approx(2.17, rel=1e-6)
    assert vol.origin_angstrom == pytest.approx((10.5, -3.0, 7.25), abs=1e-6)


def test_header_stats_and_labels(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) - 5
    path = tmp_path / "stats.mrc"
    labels = ["cryo_pipeline 0.1.0 reconstruct-wbp", "x" * 80]
    write_mrc(path, data, voxel_size_angstrom=1.5, labels=labels)
    with mrcfile.open(path) as mrc:  # strict mode: standard MRC2014
        assert mrc.header.dmin == pytest.approx(-5.0)
        assert mrc.header.dmax == pytest.approx(18.0)
        assert mrc.header.dmean == pytest.approx(data.mean(), abs=1e-6)
        assert tuple(mrc.voxel_size.tolist()) == pytest.approx((1.5, 1.5, 1.5))
    assert read_mrc_header(path)["labels"][:2] == labels
    report = io.StringIO()
    assert mrcfile.validate(path, print_file=report), report.getvalue()


def test_uint8_widened_and_float64_narrowed(tmp_path):
    u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    write_mrc(tmp_path / "u8.mrc", u8, voxel_size_angstrom=1.0)
    assert read_mrc_header(tmp_path / "u8.mrc")["mode"] == 6
    np.testing.assert_array_equal(read_mrc(tmp_path / "u8.mrc").data, u8.astype(np.float32))
    f64 = np.linspace(-1, 1, 27).reshape(3, 3, 3)
    write_mrc(tmp_path / "f64.mrc", f64, voxel_size_angstrom=1.0)
    assert read_mrc_header(tmp_path / "f64.mrc")["mode"] == 2
    np.testing.assert_allclose(read_mrc(tmp_path / "f64.mrc").data, f64, rtol=1e-7, atol=1e-7)


def test_2d_image_reads_as_single_section(tmp_path):
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_mrc(tmp_path / "img.mrc", image, voxel_size_angstrom=4.0)
    vol = read_mrc(tmp_path / "img.mrc")
    assert vol.data.shape == (1, 3, 4)
    np.testing.assert_array_equal(vol.data[0], image)


@pytest.mark.parametrize("name", ["TS_01_10.00Apx.rec", "my tomo.mrc", "a.b.c.st", "x y/z.w.ali"])
def test_names_with_dots_and_spaces(tmp_path, name):
    data = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    path = tmp_path / name
    write_mrc(path, data, voxel_size_angstrom=10.0)
    np.testing.assert_array_equal(read_mrc(path).data, data)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp left


def test_overwrite_replaces_file(tmp_path):
    path = tmp_path / "v.mrc"
    write_mrc(path, np.zeros((4, 4, 4), np.float32), voxel_size_angstrom=1.0)
    write_mrc(path, np.ones((2, 2, 2), np.float32), voxel_size_angstrom=3.0)
    vol = read_mrc(path)
    assert vol.data.shape == (2, 2, 2) and vol.voxel_size_angstrom == pytest.approx(3.0)


def test_axis_order_header_is_honoured(tmp_path):
    # stored with columns = z, rows = y, sections = x (mapc, mapr, maps) = (3, 2, 1)
    zyx = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "perm.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))
        mrc.voxel_size = 2.0
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    assert read_mrc_header(path)["shape_zyx"] == (2, 3, 4)
    np.testing.assert_array_equal(read_mrc(path).data, zyx)


# ---------------------------------------------------------------- voxel size


def test_voxel_size_override_wins(tmp_path):
    path = tmp_path / "v.mrc"
    write_mrc(path, np.zeros((2, 2, 2), np.float32), voxel_size_angstrom=1.0)
    assert read_mrc(path, voxel_size_angstrom=5.5).voxel_size_angstrom == 5.5
    with pytest.raises(ValueError, match="override"):
        read_mrc(path, voxel_size_angstrom=0.0)


def test_anisotropic_voxel_logs_warning_and_uses_x(tmp_path, caplog):
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((2, 3, 4), np.float32))
        mrc.voxel_size = (2.0, 2.0, 3.0)
    with caplog.at_level(logging.WARNING, logger="cryo_pipeline.io.mrc"):
        vol = read_mrc(path)
    assert vol.voxel_size_angstrom == pytest.approx(2.0)
    assert "anisotropic" in caplog.text


def test_write_rejects_bad_voxel_size_and_nan(tmp_path):
    data = np.zeros((2, 2, 2), np.float32)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="voxel_size_angstrom"):
            write_mrc(tmp_path / "bad.mrc", data, voxel_size_angstrom=bad)
    data[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="1 voxels are NaN"):
        write_mrc(tmp_path / "bad.mrc", data, voxel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="labels"):
        write_mrc(tmp_path / "bad.mrc", np.zeros((2, 2)), voxel_size_angstrom=1.0, labels=["y" * 81])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- broken files


def _valid_file(tmp_path: Path, name: str = "ok.mrc") -> Path:
    path = tmp_path / name
    write_mrc(path, np.ones((4, 8, 8), np.float32), voxel_size_angstrom=2.0)
    return path


def test_truncated_file_is_one_line_error(tmp_path):
    path = _valid_file(tmp_path, "cut tomo.mrc")
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(MrcFormatError) as err:
        read_mrc(path)
    assert "truncated" in _one_line(err, path)
    with pytest.raises(ValueError, match="truncated"):
        read_mrc_header(path)


def test_header_only_file_and_tiny_file(tmp_path):
    path = _valid_file(tmp_path)
    path.write_bytes(path.read_bytes()[:1024])
    with pytest.raises(MrcFormatError, match="truncated"):
        read_mrc(path)
    path.write_bytes(b"MAP ")
    with pytest.raises(MrcFormatError) as err:
        read_mrc(path)
    assert "not an MRC file" in _one_line(err, path)


def test_unsupported_mode_3(tmp_path):
    path = _valid_file(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[12:16] = np.int32(3).tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError) as err:
        read_mrc(path)
    msg = _one_line(err, path)
    assert "mode 3" in msg and "not supported" in msg


def test_garbage_bytes_are_not_an_mrc(tmp_path):
    path = tmp_path / "garbage.mrc"
    rng = np.random.default_rng(7)
    raw = bytearray(rng.integers(0, 256, size=5000, dtype=np.uint8).tobytes())
    raw[12:16] = np.int32(777).tobytes()  # an impossible mode in both byte orders
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError) as err:
        read_mrc(path)
    assert "not an MRC file" in _one_line(err, path)


def test_giant_and_negative_dimensions(tmp_path):
    path = _valid_file(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[0:12] = np.array([2**20, 2**20, 4], dtype="<i4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError, match="2\\*\\*31"):
        read_mrc_header(path)
    raw[0:12] = np.array([8, -8, 4], dtype="<i4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError, match="must be positive"):
        read_mrc(path)
    raw[0:12] = np.array([800, 800, 4], dtype="<i4").tobytes()  # larger than the file
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError, match="only"):
        read_mrc(path)


def test_nan_voxels_are_counted(tmp_path):
    path = tmp_path / "nan.mrc"
    write_mrc(path, np.zeros((3, 3, 3), np.float32), voxel_size_angstrom=1.0)
    raw = bytearray(path.read_bytes())
    for index, value in ((0, np.nan), (2 * 9 + 1 * 3, np.inf)):  # voxels [0,0,0] and [2,1,0]
        raw[1024 + 4 * index : 1028 + 4 * index] = np.float32(value).tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(MrcFormatError) as err:
        read_mrc(path)
    assert "2 of 27 voxels are NaN or Inf" in _one_line(err, path)


def test_missing_file(tmp_path):
    with pytest.raises(MrcFormatError, match="cannot open"):
        read_mrc(tmp_path / "nope.mrc")


# ---------------------------------------------------------------- real data


def test_real_fei_tilt_series_matches_mrcfile():
    path = _real("tiltseries_haadf_needle_etspy.mrc")
    header = read_mrc_header(path)
    assert header["shape_zyx"] == (77, 256, 256)
    assert header["mode"] == 1 and header["extended_header_bytes"] == 131072
    assert header["has_map_id"] is False
    vol = read_mrc(path, voxel_size_angstrom=33.6)  # header says 1 Å, which is wrong
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as mrc:
            reference = np.asarray(mrc.data)
    assert reference.dtype == np.int16
    assert vol.data.shape == (77, 256, 256) and vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, reference.astype(np.float32))
    assert vol.data.min() == -31908 and vol.data.max() == 32325
    assert vol.voxel_size_angstrom == 33.6


def test_real_betagal_voxel_size():
    vol = read_mrc(_real("betagal_ngl_100px_3.54A.mrc"))
    assert vol.data.shape == (100, 100, 100)
    assert vol.voxel_size_angstrom == pytest.approx(3.54, abs=1e-5)
    assert vol.origin_angstrom == (0.0, 0.0, 0.0)
    assert float(vol.data.max()) == pytest.approx(0.1970, abs=1e-4)


def test_real_ribosome_without_voxel_size_needs_override():
    path = _real("ribosome70S_aspire_65px.mrc")
    assert read_mrc_header(path)["voxel_size_angstrom"] == 0.0
    with pytest.raises(ValueError) as err:
        read_mrc(path)
    msg = _one_line(err, path)
    assert "voxel" in msg and "voxel_size_angstrom" in msg
    vol = read_mrc(path, voxel_size_angstrom=5.0)
    assert vol.data.shape == (65, 65, 65) and vol.voxel_size_angstrom == 5.0
    assert read_mrc(path, allow_missing_voxel_size=True).voxel_size_angstrom == 0.0


def test_real_particle_stack_and_tomogram():
    stack = read_mrc(_real("ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"), voxel_size_angstrom=1.96)
    assert stack.data.shape == (220, 64, 64)
    tomo = read_mrc(_real("tomo_microtubule13pf_cylindra.mrc"))
    assert tomo.data.shape == (36, 206, 94)
    assert tomo.voxel_size_angstrom == pytest.approx(10.52, abs=1e-4)
    assert float(tomo.data.mean()) == pytest.approx(106.06, abs=0.01)
