"""The summary section: one row per (dataset, method), and what its columns mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cryo_pipeline.report.dataset import SEAM_RATIO_LIMIT
from cryo_pipeline.report.html import MISSING, Column, FigureBlock, Section, TableBlock, table_rows

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("dataset", "dataset"),
    Column("method", "method"),
    Column("psnr_db", "PSNR ours (dB)", ".2f", "10·log10(1/MSE) after the a·v+b fit"),
    Column("psnr_paper_db", "PSNR papers (dB)", ".2f", "10·log10(max(GT)/MSE), values as given"),
    Column("ssim", "SSIM ours", ".4f", "windowed 3D SSIM, σ = 1.5, after the fit"),
    Column("ssim_global", "SSIM global", ".4f", "CryoGEN paper's global SSIM, values as given"),
    Column("psnr_cn_paper_db", "PSNR CN paper (dB)", ".2f",
           "CN paper's code: per-y-slice PSNR after [0, 1] rescale and mean/std match, averaged"),
    Column("ssim_cn_paper", "SSIM CN paper", ".4f", "CN paper's code: mean 2D SSIM over z-planes, 7×7 window"),
    Column("fit_a", "fit a", ".4g", "least-squares scale a in a·v+b"),
    Column("fit_b", "fit b", ".4g", "least-squares offset b in a·v+b"),
    Column("fsc_resolution_angstrom", "FSC 0.143 (Å)", ".1f"),
    Column("fsc_resolution_05_angstrom", "FSC 0.5 (Å)", ".1f"),
    Column("dfsc_measured_mean", "dFSC measured", ".3f", "mean directional FSC, measured region"),
    Column("dfsc_missing_mean", "dFSC missing", ".3f", "mean directional FSC, missing region"),
    Column("wedge_fill", "wedge fill", ".3f", "missing-region power / expected (no reference)"),
    Column("seam_ratio", "seam ratio", ".3f", "CN: mean |Δ| across slab boundaries / within slabs"),
    Column("seam_ratio_ground_truth", "seam ratio GT", ".3f",
           "the ground truth's own ratio at the same rows (what no seam looks like)"),
    Column("runtime_s", "runtime (s)", ".1f", "the method's computation, as its stage recorded it"),
    Column("jobs_wall_s", "jobs (s)", ".1f", "summed wall time of the method's jobs (Snakemake benchmarks)"),
    Column("device", "device"),
    Column("hardware", "hardware", "", "processor (where recorded) and host of the method's last job"),
)
OPTIONAL_COLUMNS = ("seam_ratio", "seam_ratio_ground_truth", "psnr_cn_paper_db", "ssim_cn_paper", "jobs_wall_s",
                    "hardware")
"""Columns shown only when some row has a value."""

METRIC_NOTES = (
    "Two metric families. As the papers print them (PSNR papers, SSIM global): computed on the values as "
    "given, without rescaling; PSNR = 10·log10(I_m / MSE) with I_m the maximum of the ground truth, and the "
    "CryoGEN paper's global SSIM (one mean, variance and covariance per volume, C1 = (0.01·L)², "
    "C2 = (0.03·L)², L = ground-truth range).",
    "Ours (PSNR ours, SSIM ours): the ground truth is mapped to [0, 1] (min–max) and a least-squares fit "
    "a·v + b of each volume v to it is made first, so a method's own intensity scale does not count against "
    "it; PSNR = 10·log10(1/MSE) and SSIM is the windowed 3D SSIM (Gaussian σ = 1.5, data range 1). The "
    "fitted a and b are shown in the table.",
    "Which paper each column reproduces: PSNR papers is the formula printed in both papers (CryoGEN A.3.1, "
    "CN §3.6.2) and SSIM global the CryoGEN paper's (its Table 1 is computed this way); PSNR CN paper and SSIM "
    "CN paper reproduce the CN paper's Table 1, which its released code computes differently from its printed "
    "formula: both volumes rescaled to [0, 1], the output given the ground truth's mean and std, PSNR per "
    "y-slice (peak = that slice's ground-truth maximum) averaged over the slices, SSIM the mean 2D SSIM of the "
    "z-planes (7 × 7 window). PSNR ours and SSIM ours reproduce no paper.",
    "FSC resolutions are where the FSC first drops below 0.143 and 0.5; dFSC are the directional FSC means "
    "over the measured and the missing Fourier region. Wedge fill needs no reference: power in the missing "
    f"region over the power expected there from the measured region at the same radius. {MISSING} means the "
    "metric does not apply (no ground truth) or was not computed.",
)
RUNTIME_NOTE = ("runtime: the method's own computation as its stage recorded it (training and inference "
                "for the learned methods); jobs: summed wall time of the method's Snakemake jobs from the "
                "benchmark files, scoring left out; hardware: the processor where the stage recorded it, and "
                "the host.")
SEAM_NOTE = ("Seam ratio (CN only): mean |Δ| between adjacent y-rows across slab boundaries divided by the "
             f"same within slabs; ≤ {SEAM_RATIO_LIMIT} means no visible seams. With a ground truth, its own ratio "
             "at the same rows is shown beside it: structure that happens to change at those rows raises both, so "
             "a CN ratio at or below the ground truth's adds no seam.")


def summary_columns(table: pd.DataFrame) -> list[Column]:
    """:data:`SUMMARY_COLUMNS` minus the optional ones no row has a value for."""
    def has_values(key: str) -> bool:
        if key not in table.columns:
            return False
        values = table[key]
        if pd.api.types.is_numeric_dtype(values):
            return bool(np.isfinite(values.to_numpy(dtype=float)).any())
        return bool((values.fillna("").astype(str).str.strip() != "").any())

    return [c for c in SUMMARY_COLUMNS if c.key not in OPTIONAL_COLUMNS or has_values(c.key)]


def no_reference_datasets(table: pd.DataFrame) -> list[str]:
    """Datasets none of whose rows names a ground truth."""
    has_gt = table.groupby("dataset", sort=False)["ground_truth_path"].agg(lambda s: bool((s != "").any()))
    return [str(d) for d, known in has_gt.items() if not known]


def summary_section(table: pd.DataFrame, *, figures: Sequence[FigureBlock] = ()) -> Section:
    """The summary table (one row per (dataset, method)) with notes on every metric shown."""
    columns = summary_columns(table)
    keys = {c.key for c in columns}
    notes = list(METRIC_NOTES)
    if "seam_ratio" in keys:
        notes.append(SEAM_NOTE)
    notes.append(RUNTIME_NOTE)
    no_reference = no_reference_datasets(table)
    if no_reference:
        notes.append(f"No ground truth for {', '.join(no_reference)}: only the no-reference metrics are shown "
                     "(wedge fill, and the seam ratio for CN); the reference-based ones read "
                     f"{MISSING} for these datasets.")
    block = TableBlock("", "", columns, table_rows(table, columns), css_class="summary")
    return Section(id="summary", title="Summary", tables=[block], notes=notes, figures=list(figures))
