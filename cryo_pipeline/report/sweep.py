"""Sweep summary: every dataset of the sheet in one table and one plot.

The table has one row per (dataset, method) with the gain over the dataset's
``corrupted`` row (PSNR in dB and SSIM, both metric families), the reference-free
metrics and a status (ok, no ground truth, or failed with its log). It is written as
``sweep_summary.tsv`` and shown in the report pivoted: one row per dataset, one column
per method and metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cryo_pipeline.config.methods import CORRUPTED
from cryo_pipeline.report.failures import Failure
from cryo_pipeline.report.figures import closing_subplots, figure_png, png_data_uri
from cryo_pipeline.report.html import Column, FigureBlock, Section, TableBlock, format_value
from cryo_pipeline.report.methods import method_color, ordered_methods

GAINS = (
    ("psnr_db", "psnr_gain_db"),
    ("psnr_paper_db", "psnr_paper_gain_db"),
    ("ssim", "ssim_gain"),
    ("ssim_global", "ssim_global_gain"),
)
SWEEP_COLUMNS = (
    "dataset", "method", "status", "psnr_db", "psnr_gain_db", "psnr_paper_db", "psnr_paper_gain_db",
    "ssim", "ssim_gain", "ssim_global", "ssim_global_gain", "fsc_resolution_angstrom",
    "dfsc_missing_mean", "wedge_fill", "seam_ratio", "runtime_s", "log_path",
)
STATUS_OK, STATUS_NO_REFERENCE = "ok", "no ground truth"


def sweep_table(metrics: pd.DataFrame, failures: Sequence[Failure] = ()) -> pd.DataFrame:
    """One row per (dataset, method) with gains over ``corrupted``, and one per failure.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Normalised metrics table (:mod:`cryo_pipeline.report.metrics_table`).
    failures : sequence of Failure
        Missing pairs; their rows carry the status and the log path, metrics NaN.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SWEEP_COLUMNS`, datasets in the table's order then failed ones,
        methods in report order. A gain is NaN where the method or the corrupted row
        has no value (no ground truth, or the corrupted row failed).
    """
    rows = []
    for dataset, group in metrics.groupby("dataset", sort=False):
        base = group[group["method"] == CORRUPTED]
        for record in group.to_dict(orient="records"):
            row = {c: record.get(c, np.nan) for c in SWEEP_COLUMNS}
            for metric, gain in GAINS:
                reference = float(base[metric].iloc[0]) if not base.empty else np.nan
                row[gain] = float(record[metric]) - reference
            has_reference = bool(record.get("ground_truth_path"))
            row.update(status=STATUS_OK if has_reference else STATUS_NO_REFERENCE, log_path="")
            rows.append(row)
    for failure in failures:
        row = {c: np.nan for c in SWEEP_COLUMNS}
        row.update(dataset=failure.dataset, method=failure.method, status=failure.status,
                   log_path=failure.log_path or (failure.logs[0] if failure.logs else ""))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    if table.empty:
        return table
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = ordered_methods(table["method"])
    table["_d"] = table["dataset"].map(datasets.index)
    table["_m"] = table["method"].map(methods.index)
    return table.sort_values(["_d", "_m"], kind="stable").drop(columns=["_d", "_m"]).reset_index(drop=True)


def write_sweep_tsv(table: pd.DataFrame) -> str:
    """The sweep table as TSV text (6 significant digits, empty for NaN)."""
    return table.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="")


def _grouped_bars(ax, table: pd.DataFrame, column: str, *, title: str, legend: bool) -> None:
    """Bars of ``column``: one group per dataset, one bar per method (report colours)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = ordered_methods(table["method"])
    x = np.arange(len(datasets))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        values = table[table["method"] == method].set_index("dataset")[column]
        heights = np.array([values.get(d, np.nan) for d in datasets], dtype=np.float64)
        bars = ax.bar(x + (i - (len(methods) - 1) / 2) * width, np.nan_to_num(heights), width,
                      color=method_color(method), label=method if legend else None)
        ax.bar_label(bars, [f"{h:.2f}" if np.isfinite(h) else "" for h in heights], fontsize=6)
    ax.set_xticks(x, datasets, fontsize=8, rotation=15)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _width(table: pd.DataFrame) -> float:
    return max(7.0, 2.2 * table["dataset"].nunique() + 3)


def gain_figure(table: pd.DataFrame) -> bytes:
    """Grouped bars per dataset: PSNR gain (ours) and SSIM gain (ours) over corrupted, per method.

    Datasets without a ground truth or without any finite gain are left out; with none
    left the figure says so instead of plotting.
    """
    scored = table[(table["method"] != CORRUPTED) & np.isfinite(table["psnr_gain_db"].astype(float))]
    panels = (("psnr_gain_db", "PSNR gain over corrupted, ours (dB)"), ("ssim_gain", "SSIM gain over corrupted, ours"))
    with closing_subplots(1, 2, figsize=(_width(scored), 3.6)) as (fig, axes):
        for ax, (column, title) in zip(axes[0], panels, strict=True):
            if scored.empty:
                ax.text(0.5, 0.5, "no dataset with a ground truth and a method to compare",
                        ha="center", va="center", fontsize=9, transform=ax.transAxes)
                ax.set_axis_off()
                continue
            _grouped_bars(ax, scored, column, title=title, legend=ax is axes[0, 0])
            ax.axhline(0.0, color="0.3", lw=0.8)
        if not scored.empty:
            fig.legend(loc="outside right upper", fontsize=8)
        return figure_png(fig)


def psnr_bars_figure(metrics: pd.DataFrame) -> bytes:
    """Grouped bars of PSNR per method per dataset, both metric families.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Rows with ``dataset``, ``method``, ``psnr_db`` and ``psnr_paper_db``. Rows
        whose PSNR is NaN (no ground truth) are left out.
    """
    families = (("psnr_db", "PSNR, ours (dB)"), ("psnr_paper_db", "PSNR, as papers print (dB)"))
    scored = metrics[np.isfinite(metrics[[c for c, _ in families]].astype(float)).any(axis=1)]
    if scored.empty:
        raise ValueError("psnr_bars_figure: no row has a finite PSNR (no ground truth?)")
    with closing_subplots(1, 2, figsize=(_width(scored), 3.4)) as (fig, axes):
        for ax, (column, title) in zip(axes[0], families, strict=True):
            _grouped_bars(ax, scored, column, title=title, legend=ax is axes[0, 0])
        fig.legend(loc="outside right upper", fontsize=8)
        return figure_png(fig)


PIVOT_GROUPS = (
    ("psnr_gain_db", "PSNR gain, ours (dB)", "+.2f", False),
    ("psnr_paper_gain_db", "PSNR gain, papers (dB)", "+.2f", False),
    ("ssim_gain", "SSIM gain, ours", "+.4f", False),
    ("wedge_fill", "wedge fill", ".3f", True),
)
"""(column, group header, format, include the corrupted row) of the pivoted sweep table."""


def _status(group: pd.DataFrame) -> str:
    failed = [f"{m} {s}" for m, s in zip(group["method"], group["status"], strict=True)
              if s not in (STATUS_OK, STATUS_NO_REFERENCE)]
    if failed:
        return "; ".join(failed)
    return STATUS_NO_REFERENCE if (group["status"] == STATUS_NO_REFERENCE).all() else STATUS_OK


def sweep_block(table: pd.DataFrame) -> TableBlock:
    """The sweep table pivoted: one row per dataset (and a mean row), metric groups × methods."""
    methods = ordered_methods(table["method"])
    columns = [Column("dataset", "dataset"), Column("status", "status")]
    groups: list[tuple[str, int]] = [("", 2)]
    for key, header, spec, with_corrupted in PIVOT_GROUPS:
        shown = [m for m in methods if with_corrupted or m != CORRUPTED]
        if not shown:
            continue
        columns += [Column(f"{key}:{m}", m, spec, f"{header}: {m}") for m in shown]
        groups.append((header, len(shown)))
    rows = []
    for dataset, group in table.groupby("dataset", sort=False):
        values = group.set_index("method")
        cells = [str(dataset), _status(group)]
        for column in columns[2:]:
            key, method = column.key.split(":", 1)
            cells.append(format_value(values[key].get(method, np.nan), column.spec))
        rows.append(cells)
    if table["dataset"].nunique() > 1:
        means = ["mean", "over datasets with a value"]
        for column in columns[2:]:
            key, method = column.key.split(":", 1)
            values = table.loc[table["method"] == method, key].astype(float)
            finite = values[np.isfinite(values)]
            means.append(format_value(finite.mean() if len(finite) else np.nan, column.spec))
        rows.append(means)
    caption = ("Gains are the method's value minus the dataset's corrupted input (the volume as given); "
               "the same numbers, one row per (dataset, method), are in sweep_summary.tsv.")
    return TableBlock("", caption, columns, rows, groups=groups, css_class="sweep")


def sweep_section(table: pd.DataFrame, gain_png: bytes) -> Section:
    """The pivoted sweep table and the gain plot."""
    figure = FigureBlock("Gain over the corrupted input per method",
                         "Datasets with a ground truth; ours family (after the a·v+b fit).", png_data_uri(gain_png))
    return Section(id="sweep", title="Sweep summary", tables=[sweep_block(table)], figures=[figure])
