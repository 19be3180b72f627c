"""Sweep summary: gains over the corrupted input, the pivoted table, the TSV and the plot."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cryo_pipeline.report.failures import Failure
from cryo_pipeline.report.html import MISSING
from cryo_pipeline.report.metrics_table import normalise_metrics
from cryo_pipeline.report.sweep import gain_figure, sweep_block, sweep_table, write_sweep_tsv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics() -> pd.DataFrame:
    rows = [
        # dataset, method, psnr_db, psnr_paper_db, ssim, ssim_global, wedge_fill, ground truth
        ("sph", "isonet", "30.0", "29.0", "0.90", "0.97", "0.95", "gt.mrc"),
        ("sph", "corrupted", "21.5", "21.0", "0.60", "0.80", "0.00", "gt.mrc"),
        ("sph", "cryogen", "29.5", "29.5", "0.92", "0.96", "0.85", "gt.mrc"),
        ("shapes", "corrupted", "20.0", "20.0", "0.50", "0.70", "0.01", "gt.mrc"),
        ("shapes", "wbp", "21.0", "20.5", "0.55", "0.72", "0.02", "gt.mrc"),
        ("needle", "corrupted", "", "", "", "", "0.03", ""),
        ("needle", "wbp", "", "", "", "", "0.03", ""),
    ]
    table = pd.DataFrame(rows, columns=["dataset", "method", "psnr_db", "psnr_paper_db", "ssim", "ssim_global",
                                        "wedge_fill", "ground_truth_path"])
    table["volume_path"] = "v.mrc"
    return normalise_metrics(table, source="test")


def test_gains_are_relative_to_the_corrupted_row_of_the_same_dataset() -> None:
    failure = Failure("broken", "wbp", "failed", "logs/r/simulate_volume/broken.log", (), "")
    table = sweep_table(_metrics(), [failure])
    keyed = table.set_index(["dataset", "method"])
    assert list(zip(table["dataset"], table["method"], strict=True))[:3] == [
        ("sph", "corrupted"), ("sph", "isonet"), ("sph", "cryogen")]
    assert keyed.loc[("sph", "isonet"), "psnr_gain_db"] == pytest.approx(8.5)
    assert keyed.loc[("sph", "cryogen"), "psnr_paper_gain_db"] == pytest.approx(8.5)
    assert keyed.loc[("sph", "cryogen"), "ssim_gain"] == pytest.approx(0.32)
    assert keyed.loc[("shapes", "wbp"), "ssim_global_gain"] == pytest.approx(0.02)
    assert keyed.loc[("sph", "corrupted"), "psnr_gain_db"] == 0.0
    assert np.isnan(keyed.loc[("needle", "wbp"), "psnr_gain_db"])
    assert keyed.loc[("needle", "wbp"), "status"] == "no ground truth"
    assert keyed.loc[("sph", "isonet"), "status"] == "ok"
    assert keyed.loc[("broken", "wbp"), "status"] == "failed"
    assert keyed.loc[("broken", "wbp"), "log_path"] == "logs/r/simulate_volume/broken.log"
    back = pd.read_csv(io.StringIO(write_sweep_tsv(table)), sep="\t")
    assert back.shape == table.shape and back["psnr_gain_db"].iloc[1] == pytest.approx(8.5)


def test_pivoted_block_has_one_row_per_dataset_and_a_mean() -> None:
    failure = Failure("broken", "wbp", "failed", "logs/x.log", (), "")
    block = sweep_block(sweep_table(_metrics(), [failure]))
    headers = [c.header for c in block.columns]
    assert block.groups[0] == ("", 2)
    assert ("PSNR gain, ours (dB)", 3) in block.groups  # wbp, isonet, cryogen: corrupted left out
    assert ("wedge fill", 4) in block.groups  # corrupted included
    assert headers[:5] == ["dataset", "status", "wbp", "isonet", "cryogen"]
    rows = {r[0]: r for r in block.rows}
    assert list(rows) == ["sph", "shapes", "needle", "broken", "mean"]
    assert rows["sph"][2:5] == [MISSING, "+8.50", "+8.00"]
    assert rows["shapes"][2] == "+1.00"
    assert rows["needle"][1] == "no ground truth" and rows["broken"][1] == "wbp failed"
    assert rows["mean"][2:5] == ["+1.00", "+8.50", "+8.00"]  # over datasets with a value


def test_gain_figure_plots_or_says_why_not() -> None:
    assert gain_figure(sweep_table(_metrics())).startswith(PNG_MAGIC)
    no_reference = _metrics()
    no_reference = no_reference[no_reference["dataset"] == "needle"]
    assert gain_figure(sweep_table(no_reference)).startswith(PNG_MAGIC)
    assert plt.get_fignums() == []
