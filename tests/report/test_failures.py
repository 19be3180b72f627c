"""Failed datasets: missing metric tables are found, attributed to their logs and reported."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryo_pipeline.report.failures import find_failures
from cryo_pipeline.stages import report as report_stage

COLUMNS = ("dataset", "method", "kind", "corruption", "psnr_db", "psnr_paper_db", "ssim", "ssim_global",
           "fit_a", "fit_b", "wedge_fill", "volume_path", "ground_truth_path", "curves_path")


def _log(path: Path, text: str, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = path.stat().st_mtime - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_missing_tables_point_at_the_log_with_the_error(tmp_path: Path) -> None:
    results, logs = tmp_path / "results" / "r", tmp_path / "logs" / "r"
    ok = results / "good" / "wbp" / "metrics.tsv"
    ok.parent.mkdir(parents=True)
    ok.write_text("dataset\tmethod\n")
    expected = [ok, results / "bad.v2" / "corrupted" / "metrics.tsv", results / "bad.v2" / "wbp" / "metrics.tsv",
                results / "bad" / "isonet" / "metrics.tsv", results / "never" / "wbp" / "metrics.tsv"]
    # "bad" and "bad.v2" share a prefix: each log belongs to the longest matching dataset name
    _log(logs / "simulate_volume" / "bad.v2.log", "2026 INFO reading\nerror: bad.mrc is not an MRC file\n", 10)
    _log(logs / "evaluate" / "bad.v2.corrupted.log", "2026 INFO nothing to see\n", 0)
    _log(logs / "simulate_volume" / "bad.log", "2026 INFO ok\n", 30)
    _log(logs / "train_cryogen" / "bad.isonet.log", "Traceback (most recent call last):\nRuntimeError: NaN loss\n", 5)
    _log(logs / "train_cryogen" / "bad.cryogen.log", "error: not this method's log\n", 0)
    failures = {(f.dataset, f.method): f for f in find_failures(expected, logs_dir=logs, datasets=["good"])}
    assert set(failures) == {("bad.v2", "corrupted"), ("bad.v2", "wbp"), ("bad", "isonet"), ("never", "wbp")}
    corrupted = failures[("bad.v2", "corrupted")]
    assert corrupted.status == "failed"
    assert corrupted.log_path == str(logs / "simulate_volume" / "bad.v2.log")  # the error, not the newer log
    assert corrupted.logs == (str(logs / "evaluate" / "bad.v2.corrupted.log"), corrupted.log_path)
    assert "bad.mrc is not an MRC file" in corrupted.log_tail
    assert failures[("bad.v2", "wbp")].logs == (corrupted.log_path,)  # the dataset-level log only
    isonet = failures[("bad", "isonet")]
    assert isonet.status == "failed" and isonet.log_path.endswith("train_cryogen/bad.isonet.log")
    assert str(logs / "simulate_volume" / "bad.log") in isonet.logs
    assert str(logs / "train_cryogen" / "bad.cryogen.log") not in isonet.logs
    assert failures[("never", "wbp")].status == "not run" and failures[("never", "wbp")].logs == ()
    assert find_failures([ok], logs_dir=logs) == []
    assert find_failures(expected[1:2], logs_dir=None)[0].status == "not run"


@pytest.fixture
def partial_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A run where dataset 'broken' failed in simulate_volume and 'ok' finished."""
    import mrcfile

    monkeypatch.chdir(tmp_path)
    volume = Path("results/r/ok/wbp/volume.mrc")
    volume.parent.mkdir(parents=True)
    with mrcfile.new(volume) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32))
        mrc.voxel_size = 5.0
    tables = {}
    for method in ("corrupted", "wbp"):
        path = Path(f"results/r/ok/{method}/metrics.tsv")
        path.parent.mkdir(parents=True, exist_ok=True)
        row = dict.fromkeys(COLUMNS, "")
        row.update(dataset="ok", method=method, kind="tiltseries", wedge_fill=0.01, volume_path=str(volume))
        pd.DataFrame([row]).to_csv(path, sep="\t", index=False)
        tables[method] = path
    log = _log(Path("logs/r/simulate_volume/broken.log"), "error: broken.mrc: not an MRC file (bad header)\n")
    expected = [tables["corrupted"], tables["wbp"], Path("results/r/broken/corrupted/metrics.tsv"),
                Path("results/r/broken/wbp/metrics.tsv")]
    return {"expected": expected, "log": log}


def test_partial_report_lists_the_failed_dataset_with_its_log(partial_run: dict) -> None:
    out = Path("results/r/report.html")
    report_stage.run(metrics_tsv=None, out_html=out, run_name="r", expected_tables=partial_run["expected"],
                     logs_dir=Path("logs/r"), benchmarks_dir=Path("benchmarks/r"),
                     sweep_tsv=Path("results/r/sweep.tsv"), workflow_log=".snakemake/log/x.snakemake.log")
    html = out.read_text()
    failures = re.search(r'<section id="failures">(.*?)</section>', html, re.S).group(1)
    rows = re.findall(r"<tr>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>",
                      failures, re.S)
    assert rows == [("broken", "corrupted", "failed", "logs/r/simulate_volume/broken.log"),
                    ("broken", "wbp", "failed", "logs/r/simulate_volume/broken.log")]
    assert "broken.mrc: not an MRC file (bad header)" in failures  # the log's last lines, folded
    assert "The workflow failed; this report was written by its error handler" in html
    assert ".snakemake/log/x.snakemake.log" in html
    assert 'id="dataset-1"' in html and "Dataset: ok" in html and "Dataset: broken" not in html
    sweep = pd.read_csv("results/r/sweep.tsv", sep="\t", keep_default_na=False)
    assert list(zip(sweep["dataset"], sweep["method"], sweep["status"], sweep["log_path"], strict=True)) == [
        ("ok", "corrupted", "no ground truth", ""), ("ok", "wbp", "no ground truth", ""),
        ("broken", "corrupted", "failed", "logs/r/simulate_volume/broken.log"),
        ("broken", "wbp", "failed", "logs/r/simulate_volume/broken.log")]


def test_partial_report_when_every_dataset_failed(partial_run: dict) -> None:
    out = Path("all_failed.html")
    expected = [Path("results/r/broken/corrupted/metrics.tsv")]
    report_stage.run(metrics_tsv=None, out_html=out, run_name="r", expected_tables=expected,
                     logs_dir=Path("logs/r"))
    html = out.read_text()
    assert "logs/r/simulate_volume/broken.log" in html and "Dataset:" not in html
    assert '<table class="summary">' in html  # the summary is there, with no rows
