"""What every stage writes beside its main output: a JSON record of how it was made.

``<output>.json`` holds the provenance (package version, command line, resolved
config), the dataset row, the wall time of the computation (``runtime_s``) and the
device. The evaluate stage reads ``runtime_s`` and ``device`` back for the metrics table.

A stage writes all its outputs inside :func:`stage_outputs`, so a failure part-way
(say the record after the volume) leaves none of them under its final name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.provenance import provenance_record, write_provenance_json


def meta_path_for(output: Path) -> Path:
    """``results/x/volume.mrc`` → ``results/x/volume.json``."""
    output = Path(output)
    return output.with_suffix(".json")


@contextmanager
def stage_outputs(*finals: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths for a stage's outputs, renamed onto ``finals`` together at the end.

    Write each output to its yielded temporary path (beside its final name). Only when
    the block succeeds are they renamed, last output first; if it raises, every
    temporary path is removed and no final name is created or replaced.

    Examples
    --------
    >>> with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):  # doctest: +SKIP
    ...     write_mrc(tmp_out, volume, voxel_size_angstrom=1.0)
    ...     write_stage_meta(tmp_meta, stage="x", config=None, dataset=None, runtime_s=0.0)
    """
    with ExitStack() as stack:
        yield tuple(stack.enter_context(atomic_write_path(Path(final))) for final in finals)


def _plain(values: Any) -> dict | None:
    """A config / sheet row (pydantic model or the stage's view of one) or a mapping, as JSON-able dict."""
    if values is None:
        return None
    if isinstance(values, Mapping):
        return dict(values)
    return values.model_dump(mode="json")


def write_stage_meta(
    meta_path: Path,
    *,
    stage: str,
    config: Any,
    dataset: Any,
    runtime_s: float,
    device: str = "cpu",
    extra: dict | None = None,
) -> None:
    """Write the provenance/timing record of one stage output (atomically).

    ``config`` and ``dataset`` are what the stage read: a stage config and a sheet row
    (or the stage's view of them, :mod:`cryo_pipeline.config.projection`), or mappings.
    """
    record = provenance_record(config=_plain(config))
    record.update(
        {
            "stage": stage,
            "dataset": _plain(dataset),
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
