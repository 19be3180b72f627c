"""Provenance records: which code, environment and settings made an output.

A record travels with every intermediate (Zarr attribute ``provenance``) and can be
written beside an output as JSON. It holds the package version, the Python, NumPy
and torch versions, the host, the UTC time, the command line and the resolved config.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import platform
import socket
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from cryo_pipeline.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["provenance_record", "to_jsonable", "write_provenance_json"]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):  # pydantic models (stage configs)
        return obj.model_dump(mode="json")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable: {obj!r}")


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON types (numpy scalars/arrays, paths, pydantic models converted).

    Raises
    ------
    ValueError
        If something in ``obj`` cannot be represented in JSON (the type is named),
        or holds NaN/Inf.
    """
    try:
        return json.loads(json.dumps(obj, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot store as JSON: {err}") from None


def _torch_version() -> str | None:
    torch = sys.modules.get("torch")  # avoid importing torch just to name its version
    if torch is not None:
        return str(torch.__version__)
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance_record(
    *,
    config: Mapping[str, Any] | Any | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Describe how an output is being made.

    Parameters
    ----------
    config : mapping or pydantic model, optional
        The resolved stage config; converted to plain JSON types.
    command : list of str, optional
        The command line; defaults to ``sys.argv``.

    Returns
    -------
    dict
        JSON-ready: ``package`` ("cryo_pipeline"), ``package_version``,
        ``python_version``, ``numpy_version``, ``torch_version`` (None if absent),
        ``platform``, ``hostname``, ``pid``, ``time_utc`` (ISO 8601, e.g.
        ``2024-05-01T12:00:00.123456+00:00``), ``command`` and ``config`` ({} if none).
    """
    from cryo_pipeline import __version__

    return {
        "package": "cryo_pipeline",
        "package_version": __version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "torch_version": _torch_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "time_utc": _dt.datetime.now(_dt.UTC).isoformat(),
        "command": [str(c) for c in (sys.argv if command is None else command)],
        "config": to_jsonable(config) if config is not None else {},
    }


def write_provenance_json(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write a provenance record atomically as JSON (indent 2, sorted keys, trailing newline).

    Parameters
    ----------
    path : path-like
        Output file; parent folders are created.
    record : mapping
        Usually :func:`provenance_record`'s result; must be JSON-representable.

    Raises
    ------
    ValueError
        If ``record`` holds something JSON cannot represent.
    """
    text = json.dumps(to_jsonable(dict(record)), indent=2, sort_keys=True) + "\n"
    atomic_write_text(path, text)
    logger.debug("wrote provenance %s", path)
