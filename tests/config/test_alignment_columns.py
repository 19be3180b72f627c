"""Sheet columns tilt_axis_deg and alignment, and kind portal: what a row may say, and one clear error line."""

import pytest

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.io.sheet import read_dataset_sheet

HEADER = "dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\tmethods\tangles\ttilt_axis_deg\t" \
         "alignment\tdata_kind\ttilt_step_deg\tcorruption\tsnr\n"


def _sheet(tmp_path, *lines):
    path = tmp_path / "datasets.tsv"
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def test_tilt_axis_outside_plus_minus_180_names_sheet_line_dataset_and_column(tmp_path):
    path = _sheet(tmp_path, "ok\ttiltseries\tts.mrc\t10\t-60\t60\twbp\tts.tlt\t85\t\t",
                  "needle\ttiltseries\tts.mrc\t10\t-60\t60\twbp\tts.tlt\t270\t\t")
    with pytest.raises(ValueError) as err:
        read_dataset_sheet(path)
    message = str(err.value)
    assert f"{path} line 3 (needle)" in message and "tilt_axis_deg" in message and "180" in message
    assert "\n" not in message.strip()


def test_columns_resolve_and_route_a_row_through_the_alignment(tmp_path):
    path = _sheet(tmp_path, "x\ttiltseries\tts.mrc\t10\t-60\t60\twbp\tts.tlt\t\tts.xf\t",
                  "n\ttiltseries\tts.mrc\t10\t-60\t60\twbp\tts.tlt\t90\t\t",
                  "a\ttiltseries\tts.mrc\t10\t-60\t60\twbp\t\t\tts.aln\t",
                  "y\ttiltseries\tts.mrc\t10\t-60\t60\twbp\tts.tlt\t0\t\t",
                  "p\tportal\trun:333\t\t-60\t60\twbp\t\t\t\ttiltseries")
    rows = {row.dataset: row for row in read_dataset_sheet(path)}
    assert rows["x"].alignment == str(tmp_path / "ts.xf")  # relative to the sheet
    assert [rows[n].needs_alignment for n in "xnayp"] == [True, True, True, False, True]
    assert rows["p"].source == "run:333" and rows["p"].effective_kind == "tiltseries"
    fetched = rows["p"].with_fetched_paths()
    assert (fetched.source, fetched.angles, fetched.alignment) == (
        "resources/p/tilt_series.mrc", "resources/p/angles.tlt", "resources/p/alignment.json")


@pytest.mark.parametrize(("columns", "match"), [
    (dict(kind="tomogram", tilt_axis_deg=90.0), "column tilt_axis_deg applies to tilt series only"),
    (dict(tilt_axis_deg=85.0, alignment="ts.xf"), "both given; an alignment file carries its own rotation"),
    (dict(alignment="ts.txt"), "must be an IMOD .xf, AreTomo .aln or CryoET Data Portal .json"),
    (dict(kind="portal", source="run:333"), "kind 'portal' needs data_kind"),
    (dict(kind="portal", source="10445", data_kind="tiltseries"), "must be run:<id>, tiltseries:<id> or tomogram:<id>"),
    (dict(kind="portal", source="run:333", data_kind="tiltseries", angles="a.tlt"), "column angles is not used"),
])
def test_inconsistent_rows_are_one_clear_line(columns, match):
    base = dict(dataset="d", kind="tiltseries", source="ts.mrc", angles=None, tilt_min_deg=-60, tilt_max_deg=60,
                methods=("wbp",))
    if base["kind"] == "tiltseries" and columns.get("kind", "tiltseries") == "tiltseries" and "alignment" not in columns:
        base["angles"] = "ts.tlt"
    with pytest.raises(ValueError, match=match):
        DatasetRow(**{**base, **columns})
