"""Stage ``collect_metrics``: all per-(dataset, method) rows into ``results/<run>/metrics.tsv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.io.tables import METRIC_COLUMNS, table_text, write_heldout_table


def combine(inputs: list[Path]) -> pd.DataFrame:
    """Concatenate one-row metric tables, sorted by dataset, then method.

    The evaluate columns come first in their order; columns only some methods write
    (CN's ``seam_ratio``) follow, empty for the other rows.

    Raises
    ------
    ValueError
        No inputs, or a table lacks one of the evaluate columns.
    """
    if not inputs:
        raise ValueError("collect_metrics got no metric tables")
    tables = [pd.read_csv(p, sep="\t", keep_default_na=True) for p in inputs]
    for path, table in zip(inputs, tables, strict=True):
        missing = [c for c in METRIC_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"metric table {path} lacks column(s) {', '.join(missing)}; "
                             "was it written by an older cryo-pipeline? Rerun its evaluate job")
    table = pd.concat(tables, ignore_index=True)
    extra = [c for c in table.columns if c not in METRIC_COLUMNS]
    return table[[*METRIC_COLUMNS, *extra]].sort_values(["dataset", "method"], kind="stable")


def run(*, inputs: list[Path], out: Path, heldout_inputs: list[Path] = (), heldout_out: Path | None = None) -> None:
    """Write the combined table (:func:`combine`) to ``out`` atomically.

    With ``heldout_out``, also the held-out-tilt side tables of every (dataset, method) in one
    table (issue 12; header only when there are none).
    """
    table = combine(inputs)
    if heldout_out is not None:
        tables = [pd.read_csv(p, sep="\t") for p in heldout_inputs]
        rows = [r for t in tables for r in t.to_dict("records")]
        write_heldout_table(heldout_out, sorted(rows, key=lambda r: (r["dataset"], r["method"], r["angle_deg"])))
    atomic_write_text(Path(out), table_text(table))
