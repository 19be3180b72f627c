"""The pipeline's TSV tables, each column list in one place: metrics, losses, subtomograms.

* ``metrics.tsv`` — one row per (dataset, method): ``evaluate`` writes one-row tables,
  ``collect_metrics`` concatenates them, the report reads them
  (:data:`METRIC_COLUMNS`; text, numeric and optional columns below).
* ``losses.tsv`` — one row per training step of ``train_cryogen`` (:data:`LOSS_COLUMNS`).
* ``subtomos.tsv`` — one row per cube of a subtomogram store, in store order
  (:data:`SUBTOMO_TABLE_COLUMNS`).

Numbers are written with ``%.6g``; every file is written atomically. To add a column,
add it here (and to the code that fills it); readers of older tables see it as empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.ops.validation import HELDOUT_TILT_COLUMNS, VALIDATION_COLUMNS

__all__ = [
    "HELDOUT_TABLE_COLUMNS",
    "LOSS_COLUMNS",
    "METRIC_COLUMNS",
    "METRIC_NUMERIC_COLUMNS",
    "METRIC_OPTIONAL_COLUMNS",
    "METRIC_OPTIONAL_TEXT_COLUMNS",
    "METRIC_TEXT_COLUMNS",
    "SUBTOMO_TABLE_COLUMNS",
    "read_subtomo_table",
    "table_text",
    "write_heldout_table",
    "write_loss_table",
    "write_metrics_row",
    "write_subtomo_table",
]

FLOAT_FORMAT = "%.6g"

METRIC_COLUMNS = (
    "dataset",
    "method",
    "kind",
    "corruption",
    "psnr_db",
    "psnr_paper_db",
    "psnr_cn_paper_db",
    "ssim",
    "ssim_global",
    "ssim_cn_paper",
    "fit_a",
    "fit_b",
    "fsc_resolution_angstrom",
    "fsc_resolution_05_angstrom",
    "dfsc_measured_mean",
    "dfsc_missing_mean",
    "wedge_fill",
    "seam_ratio",
    "seam_ratio_ground_truth",
    "runtime_s",
    "device",
    "voxel_size_angstrom",
    "tilt_min_deg",
    "tilt_max_deg",
    "volume_path",
    "ground_truth_path",
    "curves_path",
    "reference",
    *VALIDATION_COLUMNS,
    "heldout_path",
)
"""Columns of ``metrics.tsv`` in their order (DESIGN.md §4 describes the metrics). ``reference``: what the
reference-based columns were scored against (``ground_truth``, ``full_range`` or empty); the validation
scores (issue 12, :data:`cryo_pipeline.ops.validation.VALIDATION_COLUMNS`); ``heldout_path``: the side table."""
METRIC_OPTIONAL_TEXT_COLUMNS = ("reference", "heldout_path")
"""Text columns an older table may lack (issue 12)."""
METRIC_TEXT_COLUMNS = (
    "dataset", "method", "kind", "corruption", "device", "volume_path", "ground_truth_path", "curves_path",
)
"""Metric-table columns that hold text ('' when empty)."""
METRIC_OPTIONAL_COLUMNS = ("seam_ratio", "seam_ratio_ground_truth", "psnr_cn_paper_db", "ssim_cn_paper",
                           *VALIDATION_COLUMNS)
"""Numeric columns only some methods or runs fill (``seam_ratio``: CN; the validation scores) or newer
tables have (the CN paper's metric); an older table may lack them."""
METRIC_NUMERIC_COLUMNS = tuple(
    c for c in METRIC_COLUMNS
    if c not in METRIC_TEXT_COLUMNS and c not in METRIC_OPTIONAL_COLUMNS and c not in METRIC_OPTIONAL_TEXT_COLUMNS
)
"""Metric-table columns that hold numbers (NaN when empty)."""

HELDOUT_TABLE_COLUMNS = ("dataset", "method", *HELDOUT_TILT_COLUMNS)
"""Columns of ``heldout_tilts.tsv``: one row per held-out tilt of a (dataset, method) (issue 12)."""

LOSS_COLUMNS = ("step", "epoch", "loss_energy", "loss_adversarial", "loss_data", "loss_consistency",
                "lambda", "lr", "seconds")
"""Columns of ``losses.tsv``: one row per optimiser step of ``train_cryogen``."""

SUBTOMO_TABLE_COLUMNS = ("index", "z", "y", "x", "mask_fraction", "split")
"""Columns of ``subtomos.tsv``: cube index in the store, centre (z, y, x), mask fraction, train/val."""


def table_text(table: pd.DataFrame) -> str:
    """A table as the pipeline writes TSVs: tab-separated, no index, numbers as ``%.6g``."""
    return table.to_csv(sep="\t", index=False, float_format=FLOAT_FORMAT)


def write_metrics_row(path: str | os.PathLike[str], row: Mapping[str, object]) -> None:
    """Write one (dataset, method) row as a one-row ``metrics.tsv`` with :data:`METRIC_COLUMNS` (atomically).

    Raises
    ------
    ValueError
        ``row`` holds a key that is not a metrics column.
    """
    unknown = [k for k in row if k not in METRIC_COLUMNS]
    if unknown:
        raise ValueError(f"{path}: {', '.join(unknown)} are not metrics columns; add them to METRIC_COLUMNS")
    atomic_write_text(Path(path), table_text(pd.DataFrame([dict(row)], columns=list(METRIC_COLUMNS))))


def write_heldout_table(path: str | os.PathLike[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Write the held-out-tilt side table (:data:`HELDOUT_TABLE_COLUMNS`; header only for no rows), atomically."""
    atomic_write_text(Path(path), table_text(pd.DataFrame(list(rows), columns=list(HELDOUT_TABLE_COLUMNS))))


def write_loss_table(path: str | os.PathLike[str], rows: Iterable[Sequence[float]]) -> None:
    """Write the training history (one sequence of :data:`LOSS_COLUMNS` values per step), atomically."""
    atomic_write_text(Path(path), table_text(pd.DataFrame(list(rows), columns=list(LOSS_COLUMNS))))


def write_subtomo_table(
    path: str | os.PathLike[str], *, centres: np.ndarray, mask_fractions: np.ndarray, is_validation: np.ndarray
) -> None:
    """Write the TSV table that goes with a subtomogram store: one row per cube, in store order.

    Parameters
    ----------
    path : path-like
        Output ``.tsv`` (written atomically).
    centres : `(n, 3)` int
        Cube centres (z, y, x) in tomogram voxels (convention: :mod:`cryo_pipeline.ops.extraction`).
    mask_fractions : `(n,)` float
        Local mask fraction of each core cube.
    is_validation : `(n,)` bool
        True = ``val``, False = ``train``.
    """
    centres = np.asarray(centres)
    n = len(centres)
    if centres.shape != (n, 3) or len(mask_fractions) != n or len(is_validation) != n:
        raise ValueError(f"{path}: centres {centres.shape}, fractions {len(mask_fractions)} and split "
                         f"{len(is_validation)} must describe the same n cubes")
    lines = ["\t".join(SUBTOMO_TABLE_COLUMNS)]
    for i, ((z, y, x), frac, val) in enumerate(zip(centres.tolist(), mask_fractions, is_validation, strict=True)):
        lines.append(f"{i}\t{z}\t{y}\t{x}\t{float(frac):.6f}\t{'val' if val else 'train'}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_subtomo_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_subtomo_table` (columns checked, one row per cube)."""
    table = pd.read_csv(path, sep="\t")
    if tuple(table.columns) != SUBTOMO_TABLE_COLUMNS:
        raise ValueError(f"{path}: subtomogram table columns are {list(table.columns)}, "
                         f"expected {list(SUBTOMO_TABLE_COLUMNS)}")
    if not set(table["split"]) <= {"train", "val"}:
        raise ValueError(f"{path}: column 'split' may hold only 'train' and 'val', got {sorted(set(table['split']))}")
    return table
