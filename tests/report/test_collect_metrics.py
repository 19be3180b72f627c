"""collect_metrics keeps columns only some methods write, for the report; the report reads CN's seam_ratio."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from cryo_pipeline.io.tables import METRIC_COLUMNS
from cryo_pipeline.report.metrics_table import read_metrics
from cryo_pipeline.stages import collect_metrics


def _table(path: Path, dataset: str, method: str, **extra) -> Path:
    row = dict.fromkeys(METRIC_COLUMNS, "")
    row.update(dataset=dataset, method=method, volume_path=f"{dataset}/{method}.mrc", psnr_db=20.0, **extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(path, sep="\t", index=False)
    return path


def test_extra_columns_follow_the_evaluate_columns(tmp_path: Path) -> None:
    inputs = [_table(tmp_path / "b" / "cn.tsv", "b", "cn", seam_ratio=1.08, extra_metric=0.5),
              _table(tmp_path / "b" / "corrupted.tsv", "b", "corrupted"),
              _table(tmp_path / "a" / "wbp.tsv", "a", "wbp")]
    out = tmp_path / "metrics.tsv"
    collect_metrics.run(inputs=inputs, out=out)
    table = pd.read_csv(out, sep="\t")
    assert tuple(table.columns) == (*METRIC_COLUMNS, "extra_metric")
    assert table["extra_metric"].isna().sum() == 2
    assert list(zip(table["dataset"], table["method"], strict=True)) == [("a", "wbp"), ("b", "cn"), ("b", "corrupted")]
    report_view = read_metrics(out).set_index("method")["seam_ratio"]
    assert report_view["cn"] == pytest.approx(1.08) and math.isnan(report_view["corrupted"])
    without = tmp_path / "plain.tsv"
    collect_metrics.run(inputs=inputs[1:], out=without)
    assert tuple(pd.read_csv(without, sep="\t").columns) == METRIC_COLUMNS
    older = pd.read_csv(without, sep="\t").drop(columns=["seam_ratio"], errors="ignore")
    older.to_csv(without, sep="\t", index=False)  # a table written before CN existed
    assert math.isnan(read_metrics(without)["seam_ratio"].iloc[0])  # absent column reads as NaN


def test_a_table_without_the_evaluate_columns_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "old.tsv"
    pd.DataFrame([{"dataset": "a", "method": "wbp"}]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"old\.tsv lacks column\(s\) kind"):
        collect_metrics.run(inputs=[_table(tmp_path / "ok.tsv", "a", "cn"), bad], out=tmp_path / "m.tsv")
    with pytest.raises(ValueError, match="no metric tables"):
        collect_metrics.run(inputs=[], out=tmp_path / "m.tsv")
