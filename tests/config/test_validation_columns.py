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


def test_a_simulated_row_is_projected_over_its_reference_range_on_the_working_grid():
    from cryo_pipeline.config.dataset import DatasetRow

    row = DatasetRow(dataset="sim", kind="synthetic", source="hollow_sphere", voxel_size_angstrom=10.0,
                     corruption="tiltseries", tilt_step_deg=2.0, tilt_min_deg=-60, tilt_max_deg=60,
                     reference_tilt_min_deg=-75, reference_tilt_max_deg=76)
    angles = row.simulated_angles_deg()
    np.testing.assert_array_equal(angles, np.arange(-74.0, 76.5, 2.0))
    plain = row.model_copy(update={"reference_tilt_min_deg": None, "reference_tilt_max_deg": None})
    np.testing.assert_array_equal(plain.simulated_angles_deg(), np.arange(-60.0, 60.5, 2.0))


def test_half_rows_are_tilt_series_of_their_own():
    from cryo_pipeline.config.dataset import DatasetRow
    from cryo_pipeline.config.halves import half_rows, split_half_name

    row = DatasetRow(dataset="sim", kind="synthetic", source="hollow_sphere", voxel_size_angstrom=10.0,
                     corruption="tiltseries", tilt_step_deg=2.0, snr=5, tilt_min_deg=-60, tilt_max_deg=60,
                     reference_tilt_min_deg=-76, reference_tilt_max_deg=76, halves="alternate", methods="wbp,cn")
    rows = half_rows(row, base="results/r/sim")
    assert list(rows) == ["sim__even", "sim__odd"]
    odd = rows["sim__odd"]
    assert (odd.kind, odd.source, odd.angles) == ("tiltseries", "results/r/sim/halves/odd.mrc",
                                                  "results/r/sim/halves/odd.tlt")
    assert odd.methods == ("wbp", "cn") and odd.halves is None and odd.reference_range_deg is None
    assert (odd.tilt_min_deg, odd.tilt_max_deg, odd.voxel_size_angstrom) == (-60.0, 60.0, 10.0)
    assert split_half_name("sim__odd") == ("sim", "odd") and split_half_name("sim") is None
    frames = DatasetRow(dataset="ts", kind="tiltseries", source="a.mrc", angles="a.tlt", tilt_min_deg=-60,
                        tilt_max_deg=60, halves="frames", source_even="e.mrc", source_odd="o.mrc")
    assert half_rows(frames, base="results/r/ts")["ts__even"].source == "e.mrc"


def test_alternate_halves_of_a_raw_series_are_split_aligned_frame_halves_keep_the_alignment():
    from cryo_pipeline.config.dataset import DatasetRow
    from cryo_pipeline.config.halves import half_rows

    common = {"kind": "tiltseries", "source": "raw.mrc", "angles": "raw.tlt", "tilt_min_deg": -60,
              "tilt_max_deg": 60, "alignment": "raw.xf"}
    alternate = DatasetRow(dataset="ts", halves="alternate", **common)
    assert alternate.needs_alignment
    even = half_rows(alternate, base="results/r/ts")["ts__even"]
    assert even.alignment is None and not even.needs_alignment  # split_halves reads the aligned series
    frames = DatasetRow(dataset="ts", halves="frames", source_even="e.mrc", source_odd="o.mrc", **common)
    odd = half_rows(frames, base="results/r/ts")["ts__odd"]
    assert odd.alignment == "raw.xf" and odd.needs_alignment  # a raw frame stack, aligned like the source


def test_sheet_names_that_look_like_halves_are_rejected(tmp_path):
    path = _sheet(tmp_path, "needle__even\ttiltseries\tts.mrc\t33.6\t-60\t60\t\t\t\twbp\tts.tlt\t\t\t")
    assert "needle__even end in __even/__odd" in _error(path)
