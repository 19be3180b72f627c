"""Ablation sweeps: detection of the swept parameter from the sheet, and metric-vs-parameter plots."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryo_pipeline.io.sheet import read_dataset_sheet
from cryo_pipeline.report import ablation
from cryo_pipeline.report.ablation import ablation_figure, ablation_series, describe_fixed, detect_sweeps
from cryo_pipeline.report.metrics_table import normalise_metrics
from cryo_pipeline.stages import report as report_stage

REPO = Path(__file__).resolve().parents[2]
ABLATION_SHEET = REPO / "config" / "datasets_ablation.tsv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _settings(sheet: Path = ABLATION_SHEET) -> dict[str, dict]:
    return {row.dataset: row.model_dump(mode="json") for row in read_dataset_sheet(sheet)}


def _fake_metrics(settings: dict[str, dict]) -> pd.DataFrame:
    """PSNR rising with the range and falling with the step; wbp 1 dB above corrupted."""
    rows = []
    for name, s in settings.items():
        base = 18.0 + 0.1 * s["tilt_max_deg"] - 0.3 * s["tilt_step_deg"]
        for method, offset in (("corrupted", 0.0), ("wbp", 1.0)):
            rows.append({"dataset": name, "method": method, "psnr_db": base + offset, "psnr_paper_db": base,
                         "ssim": 0.5 + offset / 10, "ssim_global": 0.7, "wedge_fill": 0.01,
                         "dfsc_missing_mean": 0.02, "volume_path": f"results/abl/{name}/{method}.mrc",
                         "ground_truth_path": f"results/abl/{name}/gt.mrc"})
    return normalise_metrics(pd.DataFrame(rows).astype(str), source="fake")


def test_the_ablation_sheet_holds_figure_5s_two_sweeps() -> None:
    sweeps = detect_sweeps(_settings())
    assert [(s.parameter, s.values) for s in sweeps] == [
        ("tilt_step_deg", (1.0, 2.0, 4.0, 8.0)),
        ("tilt_range_deg", (40.0, 50.0, 60.0, 70.0)),
    ]
    step, tilt_range = sweeps
    assert step.datasets == ("shapes_a1_b60", "shapes_a2_b60", "shapes_a4_b60", "shapes_a8_b60")
    assert tilt_range.datasets == ("shapes_a2_b40", "shapes_a2_b50", "shapes_a2_b60", "shapes_a2_b70")
    assert describe_fixed(step) == ("synthetic mixed_shapes, corruption tiltseries, tilt -60.0° to 60.0°, "
                                    "SNR 10.0, shape 32×64×64")
    assert "step 2.0°" in describe_fixed(tilt_range) and "tilt -" not in describe_fixed(tilt_range)


def test_detection_needs_three_values_and_otherwise_equal_rows() -> None:
    base = {"kind": "synthetic", "source": "mixed_shapes", "tilt_min_deg": -60.0, "tilt_max_deg": 60.0,
            "tilt_step_deg": 2.0, "snr": 10.0, "seed": 1, "methods": ["wbp"]}
    two = {"a": base, "b": {**base, "tilt_step_deg": 4.0}}
    assert detect_sweeps(two) == []
    assert len(detect_sweeps(two, min_values=2)) == 1
    seeds = {"a": base, "b": {**base, "tilt_step_deg": 4.0, "seed": 2}, "c": {**base, "tilt_step_deg": 8.0}}
    assert detect_sweeps(seeds) == []  # b is other data (another seed): no three equal rows
    methods = {"a": base, "b": {**base, "snr": 5.0, "methods": ["wbp", "cn"]}, "c": {**base, "snr": 1.0}}
    (snr,) = detect_sweeps(methods)  # the methods a row asks for are not a setting
    assert snr.parameter == "snr" and snr.datasets == ("c", "b", "a")
    asymmetric = {n: {**base, "tilt_min_deg": -50.0, "tilt_max_deg": v} for n, v in (("a", 50), ("b", 60), ("c", 70))}
    (tilt_max,) = detect_sweeps(asymmetric)
    assert tilt_max.parameter == "tilt_max_deg"
    assert detect_sweeps(_settings(REPO / "config" / "datasets.tsv")) == []  # the demo sheet sweeps nothing


def test_each_metric_is_plotted_against_the_parameter_per_method() -> None:
    settings = _settings()
    step, tilt_range = detect_sweeps(settings)
    metrics = _fake_metrics(settings)
    series = ablation_series(step, metrics)
    assert list(series) == ["psnr_paper_db", "ssim_global", "psnr_db", "ssim", "dfsc_missing_mean", "wedge_fill"]
    assert list(series["psnr_db"]) == ["corrupted", "wbp"]  # no seam ratio without a CN row
    wbp = series["psnr_db"]["wbp"]
    assert wbp.index.tolist() == [1.0, 2.0, 4.0, 8.0]
    np.testing.assert_allclose(wbp.to_numpy(), [25.0 - 0.3 * a for a in wbp.index])
    np.testing.assert_allclose(ablation_series(tilt_range, metrics)["psnr_paper_db"]["corrupted"].to_numpy(),
                               [18.0 + 0.1 * b - 0.6 for b in (40, 50, 60, 70)])
    assert ablation_figure(step, metrics).startswith(PNG_MAGIC) and plt.get_fignums() == []
    failed = metrics[~metrics["dataset"].isin(step.datasets)]
    with pytest.raises(ValueError, match="no dataset"):
        ablation_figure(step, failed)
    assert plt.get_fignums() == []


def test_report_has_the_ablation_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = _settings()
    metrics = _fake_metrics(settings)
    volume = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    for path in metrics["volume_path"].tolist() + metrics["ground_truth_path"].tolist():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(volume)
            mrc.voxel_size = 10.0
    metrics.to_csv("metrics.tsv", sep="\t", index=False)
    monkeypatch.setattr(ablation, "ablation_figure", lambda sweep, table: PNG_MAGIC + sweep.parameter.encode())
    report_stage.run(metrics_tsv=Path("metrics.tsv"), out_html=Path("r.html"), run_name="abl", sheet=ABLATION_SHEET)
    html = Path("r.html").read_text()
    section = re.search(r'<section id="ablation">(.*?)</section>', html, re.S).group(1)
    assert section.count("<img ") == 2
    assert "Metrics against tilt step α (°)" in section and "Metrics against tilt range β (±°)" in section
    assert "tilt step α (°) = 1, 2, 4, 8" in section
    assert "tilt step" in re.search(r'<section id="dataset-1">(.*?)</section>', html, re.S).group(1)
