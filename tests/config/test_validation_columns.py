"""Sheet columns of issue 12 (reference range, halves): bad input gives one line naming row and column."""

import numpy as np
import pytest

from cryo_pipeline.io.sheet import read_dataset_sheet

HEADER = ("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
          "\tmethods\tangles\treference_tilt_min_deg\treference_tilt_max_deg\thalves\n")


def _sheet(tmp_path, *lines, angles=np.arange(-76.0, 76.5, 2.0)):
    (tmp_path / "ts.mrc").write_bytes(b"")
    (tmp_path / "ts.tlt").write_text("\n".join(f"{a:g}" for a in angles) + "\n")
    path = tmp_path / "datasets.tsv"
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def _error(path) -> str:
    with pytest.raises(ValueError) as info:
        read_dataset_sheet(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_valid_needle_row_reads_with_its_reference_and_halves(tmp_path):
    path = _sheet(tmp_path, "needle\ttiltseries\tts.mrc\t33.6\t-60\t60\t\t\t\twbp,cn\tts.tlt\t-76\t76\talternate")
    (row,) = read_dataset_sheet(path)
    assert row.reference_range_deg == (-76.0, 76.0) and row.halves == "alternate"


def test_reference_range_not_containing_the_working_range(tmp_path):
    path = _sheet(tmp_path, "needle\ttiltseries\tts.mrc\t33.6\t-60\t60\t\t\t\twbp\tts.tlt\t-76\t50\t")
    message = _error(path)
    assert "line 2 (needle)" in message and "column reference_tilt_max_deg (50) is below tilt_max_deg (60)" in message


def test_halves_on_a_tomogram_row(tmp_path):
    path = _sheet(tmp_path, "mt\ttomogram\tts.mrc\t10.5\t-60\t60\t\t\t\tisonet\t\t\t\talternate")
    message = _error(path)
    assert "line 2 (mt)" in message and "column halves needs a tilt series, but kind is tomogram" in message


def test_fewer_than_four_tilts_in_a_half_from_the_angles_file(tmp_path):
    path = _sheet(tmp_path, "few\ttiltseries\tts.mrc\t33.6\t-60\t60\t\t\t\twbp\tts.tlt\t\t\talternate",
                  angles=np.array([-60.0, -20.0, 0.0, 20.0, 60.0, 70.0, 76.0]))
    message = _error(path)
    assert "line 2 (few): column halves: a half has only 2 tilt(s)" in message


def test_fewer_than_four_tilts_in_a_half_of_a_synthetic_row(tmp_path):
    path = _sheet(tmp_path, "sim\tsynthetic\thollow_sphere\t10\t-60\t60\t20\ttiltseries\t\twbp\t\t-80\t80\talternate")
    assert "column halves: a half has only 3 tilt(s); half maps need at least 4" in _error(path)
