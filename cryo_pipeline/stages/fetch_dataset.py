"""Stage ``fetch_dataset``: download one file of an ``empiar`` row into ``resources/<dataset>/``.

The row's ``source`` (checked against the sheet's ``sha256`` when it gives one) or its
``angles`` is downloaded by :func:`cryo_pipeline.io.fetch.fetch_url`: resumable, retried,
never a partial file under the final name. A JSON record beside it says what was
fetched: URL, size and the sha256 computed from the bytes, whether they were downloaded
or an existing copy kept, the attempts, the wall time and the provenance (with the UTC time).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.io.fetch import FetchResult, fetch_url
from cryo_pipeline.io.stage_records import write_stage_meta

log = logging.getLogger(__name__)

ROLES = ("source", "angles")


def record_path_for(out: Path) -> Path:
    """``resources/d/ts.mrcs`` → ``resources/d/ts.mrcs.fetch.json`` (a tilt series and its ``.tlt`` share a stem)."""
    out = Path(out)
    return out.with_name(out.name + ".fetch.json")


def fetch_location(dataset: DatasetRow, role: str) -> tuple[str, str | None]:
    """The URL (or path) of one file of an ``empiar`` row and its expected sha256 (source only).

    Raises
    ------
    ValueError
        If the row is not of kind ``empiar``, ``role`` is not ``source``/``angles``, or the
        row has no ``angles`` to fetch.
    """
    name = dataset.dataset
    if dataset.kind != "empiar":
        raise ValueError(f"dataset {name}: fetch_dataset needs kind 'empiar', got {dataset.kind!r}")
    if role == "source":
        return dataset.source, dataset.sha256
    if role == "angles":
        if dataset.angles is None:
            raise ValueError(f"dataset {name}: the row has no angles column to fetch")
        return dataset.angles, None
    raise ValueError(f"dataset {name}: role {role!r} must be one of {', '.join(ROLES)}")


@reads("fetch_dataset")
def run(
    *,
    dataset: DatasetRow,
    role: str,
    out: Path,
    record: Path | None = None,
    retries: int = 3,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> FetchResult:
    """Fetch the row's ``role`` file to ``out`` and write its record (default ``<out>.fetch.json``).

    A file already at ``out`` is kept when it matches the sheet's sha256 (or when the sheet
    gives none); see :func:`cryo_pipeline.io.fetch.fetch_url` for resume, retries and checks.
    """
    url, sha256 = fetch_location(dataset, role)
    out = Path(out)
    start = time.perf_counter()
    result = fetch_url(url, out, sha256=sha256, retries=retries, timeout_s=timeout_s, progress=progress)
    runtime_s = time.perf_counter() - start
    fetched = {
        "role": role,
        "url": url,
        "path": str(out),
        "size_bytes": result.size_bytes,
        "sha256": result.sha256,
        "sha256_expected": sha256,
        "downloaded": result.downloaded,
        "resumed_from_bytes": result.resumed_from_bytes,
        "attempts": result.attempts,
    }
    write_stage_meta(record_path_for(out) if record is None else Path(record), stage="fetch_dataset", config=None,
                     dataset=dataset, runtime_s=runtime_s, extra={"fetch": fetched})
    log.info("dataset %s: %s %s (%d bytes) in %.1f s", dataset.dataset, role,
             "downloaded" if result.downloaded else "kept", result.size_bytes, runtime_s)
    return result
