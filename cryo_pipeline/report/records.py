"""What the report reads from the stage records (``volume.json``) beside each volume.

Every stage writes ``X.json`` beside its output ``X.mrc`` (``cryo_pipeline.io.stage_records``):
device, host name, platform and library versions, and for CN the seam ratio and the
slab boundaries. A volume without a record (a user's tomogram) gives an empty record.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HARDWARE_KEYS = ("gpu_name", "cpu_model")
"""Optional record keys naming the processor, shown when a stage recorded them."""


def read_volume_record(volume_path: str | Path) -> dict[str, Any]:
    """The stage record ``<volume>.json`` of ``volume_path``; ``{}`` when absent or unreadable."""
    if not str(volume_path):
        return {}
    path = Path(volume_path).with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("stage record %s is unreadable (%s); no hardware shown for it", path, error)
        return {}
    return record if isinstance(record, dict) else {}


def hardware_text(record: Mapping[str, Any]) -> str:
    """``"<processor> on <host>"`` from a stage record ('' when it names neither)."""
    processor = next((str(record[k]) for k in HARDWARE_KEYS if record.get(k)), "")
    host = str(record.get("hostname") or "")
    if processor and host:
        return f"{processor} on {host}"
    return processor or host


def host_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """One ``(host, devices, processor, platform, versions)`` row per host seen in ``records``."""
    hosts: dict[str, dict[str, set[str]]] = {}
    for record in records:
        host = str(record.get("hostname") or "")
        if not host:
            continue
        entry = hosts.setdefault(host, {"devices": set(), "processor": set(), "platform": set(), "versions": set()})
        if record.get("device"):
            entry["devices"].add(str(record["device"]))
        entry["processor"].update(str(record[k]) for k in HARDWARE_KEYS if record.get(k))
        if record.get("platform"):
            entry["platform"].add(str(record["platform"]))
        versions = [f"{name} {record[key]}" for name, key in (("python", "python_version"), ("torch", "torch_version"))
                    if record.get(key)]
        if versions:
            entry["versions"].add(", ".join(versions))
    fields = ("devices", "processor", "platform", "versions")
    return [(host, *("; ".join(sorted(entry[k])) or "not recorded" for k in fields))
            for host, entry in sorted(hosts.items())]


def slab_boundaries(record: Mapping[str, Any]) -> list[float]:
    """The y positions where CN slabs meet (``slab_boundaries_y``), sorted, interior only.

    Accepts a flat list of positions or a list of ``[start, stop]`` slab ranges; the
    first start and the last stop (the volume's edges) are dropped.
    """
    raw = record.get("slab_boundaries_y")
    if not isinstance(raw, list) or not raw:
        return []
    ranged = all(isinstance(item, list | tuple) for item in raw)
    values: list[float] = []
    for item in raw:
        for value in (item if isinstance(item, list | tuple) else [item]):
            try:
                number = float(value)
            except (TypeError, ValueError):
                return []
            if math.isfinite(number):
                values.append(number)
    points = sorted(set(values))
    if ranged and len(points) >= 2:
        points = points[1:-1]
    return points
