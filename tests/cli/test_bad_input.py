"""Acceptance list of issue "Foundation": bad input gives ONE clear line ``error: ...`` that
names the file/key/value, a non-zero exit, and nothing half-written (no output under its
final name, no ``.*.tmp-*`` left in the output folder)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryo_pipeline.cli.main import main
from cryo_pipeline.io.angles import write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.sheet import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

N_TILTS, HEIGHT, WIDTH = 12, 10, 14
ANGLES = np.linspace(-55.0, 55.0, N_TILTS)


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` reconfigures the root logger; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def fails(capsys, *args: object, status: int = 2) -> str:
    """Run a command that must fail; return its single ``error: ...`` line."""
    assert main([str(a) for a in args]) == status
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, captured.err
    assert lines[-1] == errors[0], captured.err  # the last word, after any progress logging
    assert captured.err.count(errors[0][len("error: "):]) == 1, "the message is repeated"
    assert "Traceback" not in captured.err and captured.out == ""
    return errors[0]


def assert_nothing_written(folder: Path) -> None:
    """The output folder is absent or empty: no final file, no hidden temporary."""
    if folder.exists():
        assert sorted(p.name for p in folder.iterdir()) == []


def _dataset(**values) -> str:
    return json.dumps(values)


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """A small tilt series (+ angles) and a volume, written as a stage would."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    paths = {"series": folder / "ts.mrc", "angles": folder / "ts.tlt", "volume": folder / "vol.mrc"}
    write_mrc(paths["series"], rng.random((N_TILTS, HEIGHT, WIDTH), dtype=np.float32), voxel_size_angstrom=4.0)
    write_tilt_angles(paths["angles"], ANGLES)
    write_mrc(paths["volume"], rng.random((9, HEIGHT, WIDTH), dtype=np.float32), voxel_size_angstrom=4.0)
    return paths


def _tiltseries_row(paths, **changes) -> str:
    values = {"dataset": "ts", "kind": "tiltseries", "source": str(paths["series"]), "angles": str(paths["angles"]),
              "voxel_size_angstrom": 4.0, "tilt_min_deg": -60, "tilt_max_deg": 60, "methods": "wbp", **changes}
    return _dataset(**{k: v for k, v in values.items() if v is not None})


SYNTHETIC = _dataset(dataset="syn", kind="synthetic", source="hollow_sphere", voxel_size_angstrom=4.0,
                     tilt_min_deg=-60, tilt_max_deg=60, tilt_step_deg=10, corruption="tiltseries", shape_px="16")


def _truncate(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) - 100])
    return target


# --- (1) truncated MRC ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["apply-fourier-wedge", "project-tilt-series", "reconstruct-wbp", "evaluate"])
def test_truncated_mrc(capsys, tmp_path, inputs, command):
    source = inputs["series"] if command == "reconstruct-wbp" else inputs["volume"]
    broken = _truncate(source, tmp_path / "in" / "broken.mrc")
    out = tmp_path / "out"
    args = {
        "apply-fourier-wedge": ["--volume", broken, "--dataset-json", SYNTHETIC, "--out", out / "w.mrc"],
        "project-tilt-series": ["--volume", broken, "--dataset-json", SYNTHETIC, "--out", out / "t.mrc",
                                "--angles-out", out / "t.tlt"],
        "reconstruct-wbp": ["--tilt-series", broken, "--angles", inputs["angles"],
                            "--dataset-json", _tiltseries_row(inputs), "--out", out / "r.mrc"],
        "evaluate": ["--volume", broken, "--method", "wbp", "--dataset-json", SYNTHETIC, "--out", out / "m.tsv",
                     "--curves-out", out / "c.json"],
    }[command]
    line = fails(capsys, command, *args)
    assert line.startswith(f"error: {broken}: truncated MRC file: header declares ")
    assert f"the file has only {broken.stat().st_size} bytes" in line
    assert_nothing_written(out)


def test_truncated_ground_truth_in_evaluate(capsys, tmp_path, inputs):
    broken = _truncate(inputs["volume"], tmp_path / "in" / "gt_broken.mrc")
    out = tmp_path / "out"
    line = fails(capsys, "evaluate", "--volume", inputs["volume"], "--ground-truth", broken, "--method", "wbp",
                 "--dataset-json", SYNTHETIC, "--out", out / "m.tsv", "--curves-out", out / "c.json")
    assert line.startswith(f"error: {broken}: truncated MRC file")
    assert_nothing_written(out)


def test_not_an_mrc_file(capsys, tmp_path, inputs):
    text = tmp_path / "in" / "notes.mrc"
    text.write_text("this is not a volume\n" * 80)
    line = fails(capsys, "apply-fourier-wedge", "--volume", text, "--dataset-json", SYNTHETIC,
                 "--out", tmp_path / "out" / "w.mrc")
    assert line.startswith(f"error: {text}: not an MRC file")
    assert_nothing_written(tmp_path / "out")


# --- (2) angle count --------------------------------------------------------------------------------
def test_angle_count_differs_from_tilt_images(capsys, tmp_path, inputs):
    short = tmp_path / "in" / "short.tlt"
    write_tilt_angles(short, ANGLES[:-3])
    line = fails(capsys, "reconstruct-wbp", "--tilt-series", inputs["series"], "--angles", short,
                 "--dataset-json", _tiltseries_row(inputs, angles=str(short)), "--out", tmp_path / "out" / "r.mrc")
    assert line.startswith(f"error: tilt angles ({N_TILTS - 3}) in {short} do not match tilt images ({N_TILTS}) "
                           f"in {inputs['series']}")
    assert_nothing_written(tmp_path / "out")


def test_bad_angle_file(capsys, tmp_path, inputs):
    bad = tmp_path / "in" / "bad.tlt"
    bad.write_text("-30\n0\n30o\n")
    line = fails(capsys, "reconstruct-wbp", "--tilt-series", inputs["series"], "--angles", bad,
                 "--dataset-json", _tiltseries_row(inputs, angles=str(bad)), "--out", tmp_path / "out" / "r.mrc")
    assert line == f"error: {bad}: line 3: '30o' is not a number"
    assert_nothing_written(tmp_path / "out")


# --- (3) voxel size 0 -------------------------------------------------------------------------------
@pytest.fixture
def voxel0_series(tmp_path, inputs) -> Path:
    path = tmp_path / "in" / "no_voxel.mrc"
    with mrcfile.new(path) as mrc:  # mrcfile leaves the voxel size at 0
        mrc.set_data(read_mrc(inputs["series"]).data)
    with mrcfile.open(path) as mrc:
        assert float(mrc.voxel_size.x) == 0.0
    return path


def test_voxel_size_zero_without_an_override(capsys, tmp_path, inputs, voxel0_series):
    row = _tiltseries_row(inputs, source=str(voxel0_series), voxel_size_angstrom=None)
    line = fails(capsys, "reconstruct-wbp", "--tilt-series", voxel0_series, "--angles", inputs["angles"],
                 "--dataset-json", row, "--out", tmp_path / "out" / "r.mrc")
    assert line.startswith(f"error: {voxel0_series}: the MRC header has no voxel size (voxel size 0.0 Å)")
    assert "voxel_size_angstrom column" in line  # says how to fix it
    assert_nothing_written(tmp_path / "out")


def test_voxel_size_zero_with_the_sheets_value(tmp_path, inputs, voxel0_series):
    row = _tiltseries_row(inputs, source=str(voxel0_series), voxel_size_angstrom=6.25)
    out = tmp_path / "out" / "r.mrc"
    assert main(["reconstruct-wbp", "--tilt-series", str(voxel0_series), "--angles", str(inputs["angles"]),
                 "--dataset-json", row, "--config-json", '{"thickness_px": 8}', "--out", str(out)]) == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (8, HEIGHT, WIDTH)
        assert float(mrc.voxel_size.x) == pytest.approx(6.25, rel=1e-6)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json", "r.mrc", "r.ome.zarr"]


# --- (4) unknown config key / sheet column ----------------------------------------------------------
HEADER = "\t".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
ROW = "sph\tsynthetic\thollow_sphere\t10\t-60\t60\t2\ttiltseries\t\twbp\t\t0\t32"


def _config(tmp_path: Path, body: str, *rows: str, header: str = HEADER) -> Path:
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("\n".join((header, *rows)) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"run: bad\ndatasets: {sheet}\n{body}")
    return config


def test_unknown_config_key(capsys, tmp_path):
    config = _config(tmp_path, "wbp:\n  filtr: ramp\n", ROW)
    line = fails(capsys, "validate-config", "--config", config)
    assert line == f"error: {config}: wbp.filtr: Extra inputs are not permitted (got 'ramp')"


def test_out_of_range_config_value(capsys, tmp_path):
    config = _config(tmp_path, "simulate:\n  map_interpolation_order: 9\n", ROW)
    line = fails(capsys, "validate-config", "--config", config)
    assert line.startswith(f"error: {config}: simulate.map_interpolation_order: ")
    assert line.endswith("(got 9)")


def test_unknown_stage_config_key(capsys, tmp_path, inputs):
    line = fails(capsys, "reconstruct-wbp", "--tilt-series", inputs["series"], "--angles", inputs["angles"],
                 "--dataset-json", _tiltseries_row(inputs), "--config-json", '{"filtr": "ramp"}',
                 "--out", tmp_path / "out" / "r.mrc")
    assert line == "error: wbp: filtr: Extra inputs are not permitted (got 'ramp')"
    assert_nothing_written(tmp_path / "out")


def test_unknown_sheet_column(capsys, tmp_path):
    config = _config(tmp_path, "", ROW + "\t1.5", header=HEADER + "\tpixel_size")
    line = fails(capsys, "validate-config", "--config", config)
    assert line.startswith(f"error: {tmp_path / 'sheet.tsv'}: unknown column(s) pixel_size; allowed: dataset, ")


def test_missing_config_file(capsys, tmp_path):
    line = fails(capsys, "validate-config", "--config", tmp_path / "nope.yaml")
    assert line == f"error: config file {tmp_path / 'nope.yaml'} does not exist"


# --- (5) tilt range -----------------------------------------------------------------------------------
def test_tilt_range_outside_90_in_the_sheet(capsys, tmp_path):
    config = _config(tmp_path, "", ROW.replace("\t-60\t", "\t-95\t"))
    line = fails(capsys, "validate-config", "--config", config)
    assert line == (f"error: {tmp_path / 'sheet.tsv'} line 2 (sph): tilt_min_deg: "
                    "Input should be greater than or equal to -90 (got '-95')")


def test_tilt_min_not_below_tilt_max_in_the_sheet(capsys, tmp_path):
    config = _config(tmp_path, "", ROW.replace("\t-60\t60\t", "\t40\t-40\t"))
    line = fails(capsys, "validate-config", "--config", config)
    assert line == (f"error: {tmp_path / 'sheet.tsv'} line 2 (sph): "
                    "dataset sph: tilt_min_deg (40.0) must be < tilt_max_deg (-40.0)")


def test_sheet_range_keeps_fewer_than_two_tilts(capsys, tmp_path, inputs):
    row = _tiltseries_row(inputs, tilt_min_deg=60, tilt_max_deg=80)
    line = fails(capsys, "reconstruct-wbp", "--tilt-series", inputs["series"], "--angles", inputs["angles"],
                 "--dataset-json", row, "--out", tmp_path / "out" / "r.mrc")
    assert line.startswith("error: only 0 tilt(s) of -55..55 deg lie inside the sheet's range [60, 80]")
    assert_nothing_written(tmp_path / "out")


# --- (6) --dataset-json ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"snr": -1}, "error: --dataset-json: snr: Input should be greater than 0 (got -1)"),
        ({"tilt_max_deg": 91}, "error: --dataset-json: tilt_max_deg: Input should be less than or equal to 90 (got 91)"),
        ({"kind": "movie"}, "error: --dataset-json: kind: Input should be 'synthetic', 'tiltseries', 'tomogram', "
                            "'empiar' or 'portal' (got 'movie')"),
        ({"voxel_size": 4}, "error: --dataset-json: voxel_size: Extra inputs are not permitted (got 4)"),
        ({"shape_px": "16x16"}, "error: --dataset-json: shape_px: shape_px '16x16' must give 3 sizes between 8 and "
                                "4096 voxels (got '16x16')"),
        ({"tilt_min_deg": 70}, "error: --dataset-json: dataset syn: tilt_min_deg (70.0) must be < tilt_max_deg (60.0)"),
    ],
)
def test_bad_dataset_json_value(capsys, tmp_path, changes, expected):
    row = {**json.loads(SYNTHETIC), **changes}
    line = fails(capsys, "simulate-volume", "--dataset-json", json.dumps(row), "--out", tmp_path / "out" / "g.mrc")
    assert line == expected
    assert_nothing_written(tmp_path / "out")


def test_dataset_json_that_is_not_json(capsys, tmp_path):
    line = fails(capsys, "simulate-volume", "--dataset-json", '{"dataset": "syn", ', "--out", tmp_path / "g.mrc")
    assert line.startswith("error: --dataset-json: <top>: Invalid JSON: ")
    assert_nothing_written(tmp_path)


# --- (7) unknown phantom --------------------------------------------------------------------------------
def test_unknown_phantom_name(capsys, tmp_path):
    row = {**json.loads(SYNTHETIC), "source": "hollow_spere"}
    line = fails(capsys, "simulate-volume", "--dataset-json", json.dumps(row), "--out", tmp_path / "out" / "g.mrc")
    assert line == ("error: --dataset-json: dataset syn: source 'hollow_spere' is neither a phantom (hollow_sphere, "
                    "triangular_prism, mixed_shapes, spheres_set, shapes_set) nor a map file (.mrc, .map, .rec, .mrcs, .st, .ali)")
    assert_nothing_written(tmp_path / "out")


def test_missing_map_file(capsys, tmp_path):
    absent = tmp_path / "maps" / "absent.mrc"
    row = {**json.loads(SYNTHETIC), "source": str(absent)}
    line = fails(capsys, "simulate-volume", "--dataset-json", json.dumps(row), "--out", tmp_path / "out" / "g.mrc")
    assert line == f"error: {absent}: cannot open (No such file or directory)"
    assert_nothing_written(tmp_path / "out")


# --- a failure after part of the work ------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_failing_record_leaves_no_volume(monkeypatch, tmp_path):
    """The MRC is written first; the record then fails: neither appears under its final name."""
    from cryo_pipeline.stages import simulate_volume

    written = []
    real_write_mrc = simulate_volume.write_mrc

    def write_mrc(path, *args, **kwargs):
        real_write_mrc(path, *args, **kwargs)
        written.append(Path(path))
        assert Path(path).is_file()

    monkeypatch.setattr(simulate_volume, "write_mrc", write_mrc)
    monkeypatch.setattr(simulate_volume, "write_stage_meta", _boom)
    out = tmp_path / "out" / "ground_truth.mrc"
    with pytest.raises(OSError, match="No space left on device"):
        main(["simulate-volume", "--dataset-json", SYNTHETIC, "--out", str(out)])
    assert len(written) == 1  # the volume was written (to its temporary name) before the failure
    assert_nothing_written(out.parent)


def test_failing_angles_leave_no_tilt_series(monkeypatch, tmp_path, inputs):
    """project-tilt-series has three outputs; a failure on the second leaves none of them."""
    from cryo_pipeline.stages import project_tilt_series

    monkeypatch.setattr(project_tilt_series, "write_tilt_angles", _boom)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        main(["project-tilt-series", "--volume", str(inputs["volume"]), "--dataset-json", SYNTHETIC,
              "--out", str(out / "ts.mrc"), "--angles-out", str(out / "ts.tlt")])
    assert_nothing_written(out)


def test_failed_rerun_keeps_the_previous_complete_outputs(monkeypatch, tmp_path):
    from cryo_pipeline.stages import simulate_volume

    out = tmp_path / "out" / "ground_truth.mrc"
    assert main(["simulate-volume", "--dataset-json", SYNTHETIC, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["ground_truth.json", "ground_truth.mrc"]
    monkeypatch.setattr(simulate_volume, "write_stage_meta", _boom)
    bigger = json.dumps({**json.loads(SYNTHETIC), "shape_px": "20"})
    with pytest.raises(OSError):
        main(["simulate-volume", "--dataset-json", bigger, "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
