"""Report figure: training-loss curves of the learned methods (CryoGEN, IsoNet-style)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cryo_pipeline.report.figures import closing_subplots, figure_png

TERMS = (
    ("loss_consistency", "consistency"),
    ("loss_data", "data (measured region)"),
    ("loss_adversarial", "adversarial (generator)"),
    ("loss_energy", "energy model"),
)


def read_loss_table(path: Path) -> tuple[str, str, pd.DataFrame]:
    """``results/<run>/<dataset>/<method>/losses.tsv`` → (dataset, method, table)."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t")
    if "step" not in table.columns:
        raise ValueError(f"{path} is not a loss table written by train-cryogen (no 'step' column)")
    return path.parent.parent.name, path.parent.name, table


def loss_curves_figure(tables: Mapping[str, pd.DataFrame]) -> bytes:
    """One panel per loss term present, one line per method; plus λ and the learning rate."""
    terms = [(col, label) for col, label in TERMS if any(col in t and t[col].abs().sum() > 0 for t in tables.values())]
    with closing_subplots(1, len(terms) + 1, figsize=(3.6 * (len(terms) + 1), 3.2)) as (fig, axes):
        for ax, (column, label) in zip(axes[0], terms, strict=False):
            for method, table in tables.items():
                if column in table and table[column].abs().sum() > 0:
                    smooth = table[column].rolling(10, min_periods=1).mean()
                    ax.plot(table["step"], smooth, label=method)
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        schedule = axes[0][-1]
        for method, table in tables.items():
            schedule.plot(table["step"], table["lambda"], label=f"{method} λ")
            schedule.plot(table["step"], table["lr"] / table["lr"].max(), "--", label=f"{method} lr (rel.)")
        schedule.set_title("schedules", fontsize=10)
        schedule.set_xlabel("step")
        schedule.grid(alpha=0.3)
        for ax in axes[0]:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        return figure_png(fig)
