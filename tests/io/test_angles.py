"""Tests for tilt angle files (.tlt/.rawtlt/.mdoc)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles, write_tilt_angles

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"

MDOC = """PixelSpacing = 5.4
Voltage = 300
ImageFile = TS_01.st
ImageSize = 1024 1024
DataMode = 1

[T = SerialEM: Digitized on EMBL Krios  TiltAngle = 99]

[T = Tilt axis angle = 85.3, binning = 1]

[ZValue = 2]
TiltAngle = 3.00012
StagePosition = 10.2 -3.1
Magnification = 42000

[ZValue = 0]
TiltAngle = -0.00049
ExposureDose = 3.5

[FrameSet = 0]
TiltAngle = 55

[ZValue = 1]
TiltAngle = -2.99
"""


def test_tlt_with_comments_and_blank_lines(tmp_path):
    path = tmp_path / "TS_01.tlt"
    path.write_text("# written by hand\n\n -60.0\n-57.5   # first good one\n\n0\n  60.00\n\n")
    angles = read_tilt_angles(path)
    assert angles.dtype == np.float64
    np.testing.assert_array_equal(angles, [-60.0, -57.5, 0.0, 60.0])


def test_mdoc_sorted_by_zvalue(tmp_path):
    path = tmp_path / "TS_01.st.mdoc"
    path.write_text(MDOC)
    np.testing.assert_allclose(read_tilt_angles(path), [-0.00049, -2.99, 3.00012], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[ZValue = 0]\nTiltAngle = 1\n[ZValue = 0]\nTiltAngle = 2\n", "ZValue 0 appears twice"),
        ("[ZValue = 0]\nExposureDose = 1\n[ZValue = 1]\nTiltAngle = 2\n",
         r"line 1: section \[ZValue = 0\] has no TiltAngle"),
        ("[ZValue = 0]\nTiltAngle = abc\n", "line 2: 'abc' is not a number"),
        ("PixelSpacing = 1\n", "no \\[ZValue = n\\] section"),
        ("[ZValue = 0]\nTiltAngle = 95\n", "outside \\[-90, 90\\]"),
    ],
)
def test_mdoc_errors(tmp_path, text, pattern):
    path = tmp_path / "bad.mdoc"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as err:
        read_tilt_angles(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "no tilt angles"),
        ("\n# only a comment\n   \n", "no tilt angles"),
        ("10\n20\nabc def\n30\n", "line 3: 'abc def' is not a number"),
        ("10\n-90.5\n", "line 2: tilt angle -90.5 is outside \\[-90, 90\\]"),
        ("nan\n", "line 1: tilt angle nan is outside"),
    ],
)
def test_list_errors_name_file_and_line(tmp_path, text, pattern):
    path = tmp_path / "my tilts.rawtlt"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as err:
        read_tilt_angles(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        read_tilt_angles(tmp_path / "nope.tlt")
    (tmp_path / "bin.tlt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="not a text file"):
        read_tilt_angles(tmp_path / "bin.tlt")


def test_write_read_round_trip_two_decimals(tmp_path):
    angles = np.array([-60.004, -0.5, 0.0, 12.345678, 60.0])
    path = tmp_path / "out" / "TS_01_10.00Apx.tlt"
    write_tilt_angles(path, angles)
    assert path.read_text().splitlines() == ["-60.00", "-0.50", "0.00", "12.35", "60.00"]
    np.testing.assert_allclose(read_tilt_angles(path), angles, rtol=0, atol=0.005 + 1e-12)
    with pytest.raises(ValueError, match="outside"):
        write_tilt_angles(tmp_path / "bad.tlt", [0.0, 91.0])
    with pytest.raises(ValueError, match="non-empty 1D"):
        write_tilt_angles(tmp_path / "bad.tlt", [])
    assert not (tmp_path / "bad.tlt").exists()


def test_check_angles_match_names_both_files():
    check_angles_match(np.zeros(5), 5, angles_path="a.tlt", images_path="a.st")
    with pytest.raises(ValueError) as err:
        check_angles_match(np.zeros(41), 40, angles_path="/d/TS_01.tlt", images_path="/d/TS 01.st")
    msg = str(err.value)
    assert "tilt angles (41)" in msg and "tilt images (40)" in msg
    assert "/d/TS_01.tlt" in msg and "/d/TS 01.st" in msg


def test_real_rawtlt():
    path = REAL / "tiltseries_haadf_needle_etspy.rawtlt"
    if not path.is_file():
        pytest.skip(f"real data file {path} is missing")
    angles = read_tilt_angles(path)
    np.testing.assert_allclose(angles, np.arange(-76.0, 76.0 + 1, 2.0), rtol=0, atol=1e-6)
    check_angles_match(angles, 77, angles_path=path, images_path="tiltseries_haadf_needle_etspy.mrc")


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(text=st.text(max_size=300), suffix=st.sampled_from([".tlt", ".rawtlt", ".mdoc"]))
def test_random_text_only_ever_raises_value_error(text, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_text(text, encoding="utf-8")
        try:
            angles = read_tilt_angles(path)
        except ValueError as err:
            assert str(path) in str(err)
            return
        assert angles.ndim == 1 and angles.size > 0
        assert np.all(np.abs(angles) <= 90.0)


@_FUZZ
@given(st.lists(st.floats(min_value=-90, max_value=90, allow_nan=False), min_size=1, max_size=50))
def test_valid_angle_lists_round_trip(values):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.tlt"
        path.write_text("\n".join(repr(v) for v in values) + "\n")
        np.testing.assert_array_equal(read_tilt_angles(path), np.array(values))


_MDOC_LINES = st.sampled_from([
    "[ZValue = 0]", "[ZValue = 1]", "[ZValue = -3]", "[ZValue=12]", "[T = SerialEM]", "[FrameSet = 0]",
    "TiltAngle = 5", "TiltAngle = -60.5", "TiltAngle = abc", "TiltAngle = 120", "TiltAngle =",
    "ExposureDose = 3", "", "  ", "[ZValue = x]", "[", "TiltAngle",
])


@_FUZZ
@given(st.lists(_MDOC_LINES, max_size=30))
def test_structured_mdoc_fuzz_only_raises_value_error(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.mdoc"
        path.write_text("\n".join(lines))
        try:
            angles = read_tilt_angles(path)
        except ValueError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return
        n_sections = sum(1 for line in lines if line.startswith("[ZValue") and line != "[ZValue = x]")
        assert angles.size == n_sections
        assert np.all(np.abs(angles) <= 90.0)
