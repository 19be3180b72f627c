"""Every ``cryo-pipeline`` command run in-process on tiny data: exit 0 and real outputs
(geometry in the MRC header, the wedge really gone, WBP close to the truth, the records
next to each output), plus the installed entry point run as a subprocess."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import yaml

from cryo_pipeline import __version__
from cryo_pipeline.cli.commands import COMMANDS
from cryo_pipeline.cli.main import main
from cryo_pipeline.config.schema import render_schema_yaml
from cryo_pipeline.config.stages import FourierWedgeConfig, SimulateConfig, WbpConfig
from cryo_pipeline.io.tables import METRIC_COLUMNS
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` reconfigures the root logger; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def cli(*args: object) -> None:
    """Run one command in-process; it must succeed."""
    assert main([str(a) for a in args]) == 0


def _dataset(**values) -> str:
    return json.dumps(values)


# odd sizes: no Nyquist plane, so the wedge mask is exactly Hermitian-symmetric
FOURIER = _dataset(dataset="sph_f", kind="synthetic", source="hollow_sphere", voxel_size_angstrom=7.5,
                   tilt_min_deg=-50, tilt_max_deg=40, corruption="fourier", shape_px="25x21x27")
FULL_RANGE = _dataset(dataset="sph_ts", kind="synthetic", source="hollow_sphere", voxel_size_angstrom=5.0,
                      tilt_min_deg=-90, tilt_max_deg=90, tilt_step_deg=1, corruption="tiltseries", methods="wbp",
                      shape_px="32x12x32")


def _record(mrc_path: Path) -> dict:
    """The ``.json`` record beside an output, with the provenance every record has."""
    record = json.loads(mrc_path.with_suffix(".json").read_text())
    assert record["package"] == "cryo_pipeline" and record["package_version"] == __version__
    for key in ("python_version", "numpy_version", "hostname", "time_utc", "command", "device"):
        assert record[key], key
    assert record["runtime_s"] >= 0
    return record


@pytest.fixture(scope="module")
def fourier_run(tmp_path_factory) -> dict[str, Path]:
    """simulate-volume → apply-fourier-wedge on an asymmetric ±(50, 40)° wedge."""
    root = tmp_path_factory.mktemp("fourier")
    paths = {"truth": root / "sph_f" / "ground_truth.mrc", "wedged": root / "sph_f" / "fourier_wedged.mrc"}
    cli("simulate-volume", "--dataset-json", FOURIER, "--out", paths["truth"])
    cli("apply-fourier-wedge", "--volume", paths["truth"], "--dataset-json", FOURIER, "--out", paths["wedged"])
    return paths


@pytest.fixture(scope="module")
def tiltseries_run(tmp_path_factory) -> dict[str, Path]:
    """simulate-volume → project-tilt-series (noiseless, ±90° in 1° steps) → reconstruct-wbp."""
    root = tmp_path_factory.mktemp("tiltseries") / "sph_ts"
    paths = {name: root / f"{name}.mrc" for name in ("ground_truth", "tilt_series", "wbp")}
    paths["angles"] = root / "tilt_series.tlt"
    cli("simulate-volume", "--dataset-json", FULL_RANGE, "--out", paths["ground_truth"])
    # the footprint projector: its 0° image is exactly the sum over z (the supersampled default samples rays)
    cli("project-tilt-series", "--volume", paths["ground_truth"], "--dataset-json", FULL_RANGE,
        "--config-json", '{"projector": "footprint"}', "--out", paths["tilt_series"], "--angles-out", paths["angles"])
    cli("reconstruct-wbp", "--tilt-series", paths["tilt_series"], "--angles", paths["angles"],
        "--dataset-json", FULL_RANGE, "--config-json", '{"filter": "ramp"}',
        "--reference-volume", paths["ground_truth"], "--out", paths["wbp"])
    return paths


# --- simulate / corrupt / reconstruct ------------------------------------------------------------
def test_simulate_volume_writes_geometry_and_record(fourier_run):
    with mrcfile.open(fourier_run["truth"]) as mrc:
        assert mrc.data.shape == (25, 21, 27)  # zyx from shape_px "25x21x27"
        for axis in "xyz":
            assert float(getattr(mrc.voxel_size, axis)) == pytest.approx(7.5, rel=1e-6)
        data = np.asarray(mrc.data, dtype=np.float64)
    assert data.max() == pytest.approx(1.0) and data.min() == 0.0  # a binary hollow sphere
    assert 0.01 < data.mean() < 0.2
    record = _record(fourier_run["truth"])
    assert record["stage"] == "simulate_volume"
    assert record["dataset"]["dataset"] == "sph_f" and record["dataset"]["shape_px"] == [25, 21, 27]
    assert record["config"] == SimulateConfig().model_dump(mode="json")
    assert sorted(p.name for p in fourier_run["truth"].parent.iterdir()) == [
        "fourier_wedged.json", "fourier_wedged.mrc", "ground_truth.json", "ground_truth.mrc"]


def test_apply_fourier_wedge_zeroes_the_missing_wedge(fourier_run):
    with mrcfile.open(fourier_run["truth"]) as mrc:
        truth = np.asarray(mrc.data, dtype=np.float64)
    with mrcfile.open(fourier_run["wedged"]) as mrc:
        wedged = np.asarray(mrc.data, dtype=np.float64)
        assert float(mrc.voxel_size.x) == pytest.approx(7.5, rel=1e-6)
    assert wedged.shape == truth.shape
    mask = missing_wedge_mask_3d(truth.shape, tilt_min_deg=-50, tilt_max_deg=40)
    measured, missing = mask == 1, mask == 0
    assert 0.3 < missing.mean() < 0.7  # the ±(50, 40)° wedge is a real part of the spectrum
    spectrum, reference = np.fft.fftn(wedged), np.fft.fftn(truth)
    scale = np.abs(reference).max()
    assert np.abs(spectrum[missing]).max() < 1e-5 * scale
    assert np.abs(reference[missing]).max() > 1e-2 * scale  # there was something to remove
    assert np.abs(spectrum[measured] - reference[measured]).max() < 1e-5 * scale
    record = _record(fourier_run["wedged"])
    assert record["stage"] == "apply_fourier_wedge"
    assert record["config"] == FourierWedgeConfig().model_dump(mode="json")


def test_project_tilt_series_shape_angles_and_zero_tilt(tiltseries_run):
    with mrcfile.open(tiltseries_run["tilt_series"]) as mrc:
        series = np.asarray(mrc.data, dtype=np.float64)
        assert float(mrc.voxel_size.x) == pytest.approx(5.0, rel=1e-6)
    assert series.shape == (181, 12, 32)  # (n_tilts, h, w)
    lines = tiltseries_run["angles"].read_text().splitlines()
    assert len(lines) == 181
    np.testing.assert_allclose([float(v) for v in lines], np.arange(-90, 91))
    with mrcfile.open(tiltseries_run["ground_truth"]) as mrc:
        truth = np.asarray(mrc.data, dtype=np.float64)
    # at 0° the rays run along z: the image is the sum over z (line integrals, 1 voxel = 1)
    np.testing.assert_allclose(series[90], truth.sum(axis=0), rtol=1e-4, atol=1e-4)
    record = _record(tiltseries_run["tilt_series"])
    assert record["stage"] == "project_tilt_series" and record["volume_shape_zyx"] == [32, 12, 32]


def test_wbp_of_a_full_noiseless_series_recovers_the_ground_truth(tiltseries_run):
    with mrcfile.open(tiltseries_run["ground_truth"]) as mrc:
        truth = np.asarray(mrc.data, dtype=np.float64)
    with mrcfile.open(tiltseries_run["wbp"]) as mrc:
        volume = np.asarray(mrc.data, dtype=np.float64)
        assert float(mrc.voxel_size.x) == pytest.approx(5.0, rel=1e-6)
    assert volume.shape == truth.shape  # depth from --reference-volume
    assert np.corrcoef(volume.ravel(), truth.ravel())[0, 1] > 0.95
    record = _record(tiltseries_run["wbp"])
    assert record["stage"] == "reconstruct_wbp" and record["n_tilts_used"] == 181
    assert record["config"] == WbpConfig(filter="ramp").model_dump(mode="json")
    assert record["device"] in ("cpu", "cuda")


# --- evaluate / collect-metrics / report --------------------------------------------------------
@pytest.fixture(scope="module")
def metrics_run(fourier_run, tiltseries_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("metrics")
    paths = {"wbp": root / "sph_ts_wbp.tsv", "corrupted": root / "sph_f_corrupted.tsv",
             "no_truth": root / "sph_f_no_truth.tsv", "metrics": root / "metrics.tsv",
             "html": root / "report.html"}
    cli("evaluate", "--volume", tiltseries_run["wbp"], "--method", "wbp",
        "--ground-truth", tiltseries_run["ground_truth"], "--meta", tiltseries_run["wbp"].with_suffix(".json"),
        "--dataset-json", FULL_RANGE, "--out", paths["wbp"], "--curves-out", root / "sph_ts_wbp_curves.json")
    cli("evaluate", "--volume", fourier_run["wedged"], "--method", "corrupted",
        "--ground-truth", fourier_run["truth"], "--meta", fourier_run["wedged"].with_suffix(".json"),
        "--dataset-json", FOURIER, "--config-json", '{"windowed_ssim": false}',
        "--out", paths["corrupted"], "--curves-out", root / "sph_f_corrupted_curves.json")
    cli("evaluate", "--volume", fourier_run["wedged"], "--method", "corrupted", "--dataset-json", FOURIER,
        "--out", paths["no_truth"], "--curves-out", root / "no_truth_curves.json")
    cli("collect-metrics", "--inputs", paths["wbp"], paths["corrupted"], "--out", paths["metrics"])
    cli("report", "--metrics", paths["metrics"], "--run-name", "cli-test-run",
        "--pipeline-config-json", json.dumps({"run": "cli-test-run"}), "--out", paths["html"])
    return paths


def _one_row(path: Path) -> dict:
    table = pd.read_csv(path, sep="\t", keep_default_na=True)
    assert tuple(table.columns) == METRIC_COLUMNS
    assert len(table) == 1
    return table.iloc[0].to_dict()


def test_evaluate_writes_one_row_with_all_columns_and_the_runtime(metrics_run, tiltseries_run):
    row = _one_row(metrics_run["wbp"])
    meta = json.loads(tiltseries_run["wbp"].with_suffix(".json").read_text())
    assert row["runtime_s"] == pytest.approx(meta["runtime_s"], rel=1e-5)
    assert row["device"] == meta["device"]
    assert (row["dataset"], row["method"], row["kind"], row["corruption"]) == ("sph_ts", "wbp", "synthetic",
                                                                             "tiltseries")
    assert row["voxel_size_angstrom"] == pytest.approx(5.0, rel=1e-6)
    assert (row["tilt_min_deg"], row["tilt_max_deg"]) == (-90, 90)
    assert row["ssim_global"] > 0.9 and 0.0 < row["ssim"] <= 1.0
    assert row["psnr_paper_db"] > 20 and row["psnr_db"] > 20
    assert row["fsc_resolution_angstrom"] >= 2 * 5.0  # never beyond Nyquist
    assert math.isnan(row["dfsc_missing_mean"]) and math.isnan(row["wedge_fill"])  # ±90° misses nothing
    curves = json.loads(Path(row["curves_path"]).read_text())
    assert curves and all(isinstance(v, list) and len(v) > 3 for v in curves.values())


def test_evaluate_of_the_fourier_wedge(metrics_run):
    row = _one_row(metrics_run["corrupted"])
    assert (row["dataset"], row["method"], row["corruption"]) == ("sph_f", "corrupted", "fourier")
    assert math.isnan(row["ssim"])  # windowed_ssim false
    assert 0 < row["ssim_global"] < 1
    # the wedged volume is the orthogonal projection of the truth onto the measured region:
    # the least-squares fit is the identity, so both PSNR families agree (truth already in [0, 1])
    assert row["fit_a"] == pytest.approx(1.0, abs=1e-4) and row["fit_b"] == pytest.approx(0.0, abs=1e-4)
    assert row["psnr_db"] == pytest.approx(row["psnr_paper_db"], abs=1e-3)
    # the wedge is empty: nothing correlates or fills there; the measured region (planes widened
    # by half a voxel, so it reaches a little past the hard edge) correlates well
    assert abs(row["dfsc_missing_mean"]) < 1e-3
    assert row["wedge_fill"] < 1e-6
    assert row["dfsc_measured_mean"] > 0.85


def test_evaluate_without_ground_truth_gives_only_no_reference_metrics(metrics_run):
    row = _one_row(metrics_run["no_truth"])
    assert row["wedge_fill"] < 1e-6  # the Fourier-wedged volume, scored without its truth
    for column in ("psnr_db", "psnr_paper_db", "ssim", "ssim_global", "dfsc_missing_mean", "runtime_s"):
        assert math.isnan(row[column]), column
    assert pd.isna(row["ground_truth_path"]) and pd.isna(row["curves_path"]) and pd.isna(row["device"])


def test_collect_metrics_sorts_by_dataset_then_method(metrics_run, tmp_path):
    table = pd.read_csv(metrics_run["metrics"], sep="\t")
    assert tuple(table.columns) == METRIC_COLUMNS
    assert list(zip(table["dataset"], table["method"], strict=True)) == [("sph_f", "corrupted"), ("sph_ts", "wbp")]
    reordered = tmp_path / "m.tsv"
    cli("collect-metrics", "--inputs", metrics_run["corrupted"], metrics_run["wbp"], "--out", reordered)
    assert reordered.read_text() == metrics_run["metrics"].read_text()


def test_report_is_one_self_contained_html(metrics_run):
    html = metrics_run["html"].read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "cli-test-run" in html and "sph_f" in html and "sph_ts" in html
    assert html.count('src="data:image/png;base64,') >= 4  # orthoslices etc. are embedded
    assert 'src="http' not in html and "<link " not in html  # opens offline


# --- validate-config / export-schema --------------------------------------------------------------
def test_validate_config_accepts_a_config_and_its_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.tsv"
    shutil.copy(REPO / "config" / "datasets.tsv", sheet)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"run": "r1", "datasets": str(sheet), "wbp": {"filter": "hann"}}))
    cli("validate-config", "--config", config)
    out = capsys.readouterr().out.strip()
    assert out == (f"{config}: ok; 3 dataset(s) in {sheet}: "
                   "sphere64_fourier, shapes_tiltseries, sphere64_tiltseries")


def test_validate_config_of_the_repository(monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the default --config and the sheet path are relative to the workflow folder
    cli("validate-config")
    assert capsys.readouterr().out.startswith("config/config.yaml: ok; ")


def test_export_schema_writes_the_generated_schema(tmp_path):
    out = tmp_path / "schemas" / "config.schema.yaml"
    cli("export-schema", "--out", out)
    text = out.read_text()
    assert text == render_schema_yaml()
    schema = yaml.safe_load(text)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["wbp"]["properties"]["filter"]["default"] == "ramp"
    assert [p.name for p in out.parent.iterdir()] == ["config.schema.yaml"]


# --- the installed entry point --------------------------------------------------------------------
@pytest.fixture(scope="module")
def entry_point() -> str:
    found = shutil.which("cryo-pipeline", path=str(Path(sys.executable).parent)) or shutil.which("cryo-pipeline")
    assert found, "the cryo-pipeline console script is not installed (pip install -e .)"
    return found


def test_entry_point_version_and_help(entry_point):
    version = subprocess.run([entry_point, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0
    assert version.stdout.strip() == f"cryo_pipeline {__version__}"
    usage = subprocess.run([entry_point, "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: cryo-pipeline")
    for command in COMMANDS:
        assert command in usage.stdout, command


def test_entry_point_exit_status_on_bad_input(entry_point, tmp_path):
    missing = tmp_path / "absent.mrc"
    result = subprocess.run(
        [entry_point, "apply-fourier-wedge", "--volume", str(missing), "--dataset-json", FOURIER,
         "--out", str(tmp_path / "o" / "w.mrc")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {missing}: cannot open (No such file or directory)"]
    assert result.stdout == ""
    assert not (tmp_path / "o").exists()
