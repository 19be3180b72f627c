"""Read and validate the dataset sheet (TSV)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from cryo_pipeline.config.dataset import DatasetRow, PHANTOM_NAMES
from cryo_pipeline.config.pipeline import format_validation_error

REQUIRED_COLUMNS = (
    "dataset",
    "kind",
    "source",
    "voxel_size_angstrom",
    "tilt_min_deg",
    "tilt_max_deg",
    "tilt_step_deg",
    "corruption",
    "snr",
    "methods",
)
CTF_COLUMNS = ("voltage_kv", "cs_mm", "defocus_angstrom", "amplitude_contrast", "phase_shift_deg", "phase_flipped")
OPTIONAL_COLUMNS = ("angles", "seed", "shape_px", "mask", *CTF_COLUMNS)
_PATH_COLUMNS = ("source", "angles", "mask")


def _resolve(value: str, base: Path) -> str:
    if "://" in value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def read_dataset_sheet(path: Path) -> list[DatasetRow]:
    """Read ``datasets.tsv`` into validated rows.

    Empty cells mean "not given". Relative paths in ``source`` and ``angles`` resolve
    against the sheet's folder (phantom names and URLs are left alone).

    Raises
    ------
    ValueError
        One message naming the sheet, the row's dataset and the column for every
        problem: unknown or missing columns, bad values, duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset sheet {path} does not exist (config key 'datasets')")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    table.columns = [c.strip() for c in table.columns]
    unknown = [c for c in table.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ValueError(
            f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise ValueError(f"{path}: the sheet has no datasets")
    rows, problems = [], []
    for index, record in enumerate(table.to_dict(orient="records"), start=2):
        values = {k: v.strip() for k, v in record.items() if v is not None and v.strip() != ""}
        for column in _PATH_COLUMNS:
            if column in values and not (column == "source" and values[column] in PHANTOM_NAMES):
                values[column] = _resolve(values[column], path.parent)
        label = f"{path} line {index} ({values.get('dataset', '?')})"
        try:
            rows.append(DatasetRow.model_validate(values))
        except ValidationError as error:
            problems.append(format_validation_error(error, source=label))
    if problems:
        raise ValueError("; ".join(problems))
    names = [r.dataset for r in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: dataset names repeat: {', '.join(duplicates)}")
    return rows
