"""The run's metrics table as the report reads it: one row per (dataset, method).

Text columns become ``str`` ('' when empty), metric columns ``float`` (NaN when empty
or absent), so a table from an older run or without the CN-only ``seam_ratio``
column reads the same way. Rows are ordered by dataset (first appearance) and by
method (:data:`~cryo_pipeline.report.methods.METHOD_ORDER`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cryo_pipeline.io.tables import METRIC_NUMERIC_COLUMNS as NUMERIC_COLUMNS
from cryo_pipeline.io.tables import METRIC_OPTIONAL_COLUMNS as OPTIONAL_NUMERIC_COLUMNS
from cryo_pipeline.io.tables import METRIC_OPTIONAL_TEXT_COLUMNS as OPTIONAL_TEXT_COLUMNS
from cryo_pipeline.io.tables import METRIC_TEXT_COLUMNS as TEXT_COLUMNS
from cryo_pipeline.report.methods import method_rank

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("dataset", "method", "volume_path")


def normalise_metrics(table: pd.DataFrame, *, source: str, allow_empty: bool = False) -> pd.DataFrame:
    """Type, check and order a metrics table read as strings (``dtype=str``).

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of ``metrics.tsv`` (or of the per-method tables), all cells strings.
    source : str
        Where the table came from, for messages.
    allow_empty : bool
        Accept a table without rows (a partial report after every dataset failed).

    Raises
    ------
    ValueError
        A required column is missing, the table is empty (unless allowed), or a
        (dataset, method) pair is listed twice.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: metrics table lacks required column(s) {missing}; "
            f"it has {list(table.columns)} (is it the output of the evaluate stage?)"
        )
    table = table.copy()
    absent = [c for c in (*TEXT_COLUMNS, *NUMERIC_COLUMNS) if c not in table.columns]
    if absent:
        logger.warning("%s: columns %s absent; shown as empty", source, absent)
    for col in (*TEXT_COLUMNS, *OPTIONAL_TEXT_COLUMNS):
        table[col] = table[col].fillna("").astype(str).str.strip() if col in table.columns else ""
    for col in (*NUMERIC_COLUMNS, *OPTIONAL_NUMERIC_COLUMNS):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float) if col in table.columns else np.nan
    if table.empty and not allow_empty:
        raise ValueError(f"{source}: metrics table has no rows; nothing to report")
    dup = table[table.duplicated(["dataset", "method"], keep=False)]
    if not dup.empty:
        pairs = sorted(set(zip(dup["dataset"], dup["method"], strict=True)))
        raise ValueError(f"{source}: (dataset, method) pairs listed more than once: {pairs}; "
                         "the table needs one row per pair")
    datasets = {name: i for i, name in enumerate(dict.fromkeys(table["dataset"]))}
    table["_d"] = table["dataset"].map(datasets)
    table["_m"] = table["method"].map(method_rank)
    table = table.sort_values(["_d", "_m"], kind="stable").drop(columns=["_d", "_m"])
    return table.reset_index(drop=True)


def read_metrics(path: Path) -> pd.DataFrame:
    """Read and normalise ``metrics.tsv`` (see :func:`normalise_metrics`)."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return normalise_metrics(table, source=str(path))


def read_metric_tables(paths: list[Path]) -> pd.DataFrame:
    """Concatenate and normalise per-(dataset, method) tables (a partial report's input).

    No paths give an empty table: the partial report then lists every dataset as failed.
    """
    tables = [pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in paths]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    return normalise_metrics(table, source=f"{len(paths)} metric tables", allow_empty=True)
