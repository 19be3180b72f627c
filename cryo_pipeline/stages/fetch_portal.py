"""Stage ``fetch_portal``: resolve a ``portal`` row's id with the CryoET Data Portal client and download its files.

The row's ``source`` (``run:<id>``, ``tiltseries:<id>`` or ``tomogram:<id>``) is resolved
by :func:`cryo_pipeline.io.portal.resolve_portal_source` to URLs, which
:func:`cryo_pipeline.io.fetch.fetch_url` downloads (resumable, retried, size-checked,
never a partial file under its final name) to fixed names in the row's resources
folder, so the workflow knows them before anything is resolved:

* ``tilt_series.mrc``, ``angles.tlt``, ``alignment.json`` (a raw tilt series and its
  portal-standard alignment), or ``tomogram.mrc``.

``portal.json`` beside them records the resolution (ids, URLs, voxel size, tilt range
and axis, CTF values the portal gives) and each download, with the provenance.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from cryo_pipeline.config.dataset import PORTAL_FILES, DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.io.fetch import fetch_url
from cryo_pipeline.io.portal import resolve_portal_source
from cryo_pipeline.io.stage_records import write_stage_meta

log = logging.getLogger(__name__)

FILE_NAMES = PORTAL_FILES  # one home: DatasetRow.portal_files gives the workflow the same names
RECORD_NAME = "portal.json"


def portal_files(folder: str | Path, data_kind: str) -> dict[str, Path]:
    """Role → local path of a portal row's files (the rule's outputs), by ``data_kind``."""
    if data_kind not in FILE_NAMES:
        raise ValueError(f"portal data_kind must be one of {', '.join(FILE_NAMES)}, got {data_kind!r}")
    return {role: Path(folder) / name for role, name in FILE_NAMES[data_kind].items()}


@reads("fetch_portal")
def run(
    *,
    dataset: DatasetRow,
    folder: Path,
    client=None,
    retries: int = 3,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> dict[str, Path]:
    """Resolve the row's ``source`` and download its ``data_kind`` files into ``folder``; return role → path.

    ``client`` defaults to ``cryoet_data_portal.Client()`` (the live portal); tests pass
    a :class:`cryo_pipeline.io.portal_recording.ReplayPortalClient`.
    """
    source, data_kind, dataset_name = dataset.source, dataset.data_kind, dataset.dataset
    if client is None:
        import cryoet_data_portal

        client = cryoet_data_portal.Client()
    start = time.perf_counter()
    try:
        found = resolve_portal_source(source, data_kind=data_kind, client=client)
    except ValueError as err:
        raise ValueError(f"dataset {dataset_name}: {err}" if dataset_name else str(err)) from None
    targets = portal_files(folder, data_kind)
    missing = sorted(set(targets) - {f.role for f in found.files})
    if missing:
        raise ValueError(f"dataset {dataset_name}: portal source {source!r} has no {', '.join(missing)} to download "
                         "(an already aligned tilt series has no alignment: use it as a tiltseries row)")
    downloads = []
    for item in found.files:
        result = fetch_url(item.url, targets[item.role], size_bytes=item.size_bytes, retries=retries,
                           timeout_s=timeout_s, progress=progress)
        downloads.append({"role": item.role, "url": item.url, "path": str(result.path), "size_bytes": result.size_bytes,
                          "sha256": result.sha256, "downloaded": result.downloaded,
                          "resumed_from_bytes": result.resumed_from_bytes})
    resolution = asdict(found)
    write_stage_meta(Path(folder) / RECORD_NAME, stage="fetch_portal", config=None, dataset=dataset,
                     runtime_s=time.perf_counter() - start, extra={"portal": resolution, "downloads": downloads})
    log.info("dataset %s: portal %s -> run %s (%s), %d file(s)", dataset_name, source, found.run_id, found.run_name,
             len(downloads))
    return targets
