"""What every stage writes beside its main output: a JSON record of how it was made.

``<output>.json`` holds the provenance (package version, command line, resolved
config), the dataset row, the wall time of the computation (``runtime_s``) and the
device. The evaluate stage reads ``runtime_s`` and ``device`` back for the metrics table.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from cryo_pipeline.io.provenance import provenance_record, write_provenance_json


def meta_path_for(output: Path) -> Path:
    """``results/x/volume.mrc`` → ``results/x/volume.json``."""
    output = Path(output)
    return output.with_suffix(".json")


def write_stage_meta(
    meta_path: Path,
    *,
    stage: str,
    config: BaseModel | None,
    dataset: BaseModel | None,
    runtime_s: float,
    device: str = "cpu",
    extra: dict | None = None,
) -> None:
    """Write the provenance/timing record of one stage output (atomically)."""
    record = provenance_record(config=config.model_dump(mode="json") if config is not None else None)
    record.update(
        {
            "stage": stage,
            "dataset": dataset.model_dump(mode="json") if dataset is not None else None,
            "runtime_s": float(runtime_s),
            "device": device,
            **(extra or {}),
        }
    )
    write_provenance_json(Path(meta_path), record)


def read_stage_meta(meta_path: Path | None) -> dict:
    """Read a stage record; an absent path gives ``{}``."""
    if meta_path is None or not Path(meta_path).is_file():
        return {}
    with Path(meta_path).open() as handle:
        return json.load(handle)
