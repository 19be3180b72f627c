"""Stage ``collect_metrics``: all per-(dataset, method) rows into ``results/<run>/metrics.tsv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.stages.evaluate import METRIC_COLUMNS


def run(*, inputs: list[Path], out: Path) -> None:
    """Concatenate one-row metric tables (sorted by dataset, then method) into ``out``."""
    if not inputs:
        raise ValueError("collect_metrics got no metric tables")
    tables = [pd.read_csv(p, sep="\t", keep_default_na=True) for p in inputs]
    table = pd.concat(tables, ignore_index=True)
    missing = [c for c in METRIC_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"metric tables lack column(s) {', '.join(missing)}")
    table = table[list(METRIC_COLUMNS)].sort_values(["dataset", "method"], kind="stable")
    atomic_write_text(Path(out), table.to_csv(sep="\t", index=False, float_format="%.6g"))
