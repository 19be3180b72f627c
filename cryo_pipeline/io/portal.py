"""CryoET Data Portal: resolve a run / tilt series / tomogram id to the files to download.

A sheet row of kind ``portal`` names its source as ``run:<id>``, ``tiltseries:<id>``
or ``tomogram:<id>`` (the portal's numeric ids, shown on its pages and returned by the
API). The official ``cryoet-data-portal`` client looks the entity up; the files are
then downloaded by :func:`cryo_pipeline.io.fetch.fetch_url` (resumable, size-checked)
like any other source:

* ``data_kind: tiltseries`` — the tilt series MRC (``source``), its angle list
  (``angles``) and, unless the portal marks the series as already aligned, the
  portal-standard alignment's ``alignment_metadata.json`` (``alignment``, read by
  :func:`alignment_from_portal_json`). The series' ``tilt_axis`` is recorded.
* ``data_kind: tomogram`` — the tomogram MRC (portal-standard first).

Alignment JSON geometry (``cryoet-alignment``'s reading of the portal, checked by its
author against portal alignments): per section ``z_index`` (0-based raw image),
``in_plane_rotation`` (2×2 ``M``), ``x_offset``/``y_offset`` (``s``, pixels of the tilt
series) and ``tilt_angle`` — the operator form of
:mod:`cryo_pipeline.ops.image_alignment`. A non-zero ``volume_x_rotation`` is an error
(not supported yet), as for IMOD's ``.xtilt``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryo_pipeline.ops.image_alignment import TiltAlignment

__all__ = ["PortalFile", "PortalResolution", "alignment_from_portal_json", "parse_portal_source",
           "resolve_portal_source"]

ENTITIES = ("run", "tiltseries", "tomogram")
_SOURCE = re.compile(r"^\s*(run|tiltseries|tomogram)\s*:\s*(\d+)\s*$", re.IGNORECASE)
X_ROTATION_TOL_DEG = 1e-3


@dataclass(frozen=True)
class PortalFile:
    """One file to download: its role in the sheet row, URL and size (bytes, when the portal gives it)."""

    role: str
    url: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class PortalResolution:
    """What a portal id resolved to."""

    source: str
    data_kind: str
    files: tuple[PortalFile, ...]
    voxel_size_angstrom: float
    run_id: int
    run_name: str
    dataset_id: int
    tilt_min_deg: float | None = None
    tilt_max_deg: float | None = None
    tilt_axis_deg: float | None = None
    voltage_kv: float | None = None
    cs_mm: float | None = None
    entity_ids: dict[str, int] = field(default_factory=dict)

    def file(self, role: str) -> PortalFile | None:
        """The file of ``role`` (``source``, ``angles``, ``alignment``), if any."""
        return next((f for f in self.files if f.role == role), None)


def parse_portal_source(text: str) -> tuple[str, int]:
    """``"run:333"`` → ``("run", 333)``; the entity is one of run, tiltseries, tomogram."""
    match = _SOURCE.match(str(text))
    if match is None:
        raise ValueError(f"portal source {text!r} must be run:<id>, tiltseries:<id> or tomogram:<id> "
                         "(the numeric id shown on the CryoET Data Portal)")
    return match.group(1).lower(), int(match.group(2))


def _size(value: Any) -> int | None:
    return int(value) if value else None


def _get(model, client, entity: str, entity_id: int, source: str):
    found = model.get_by_id(client, entity_id)
    if found is None:
        raise ValueError(f"CryoET Data Portal has no {entity} with id {entity_id} (source {source!r}); check the id "
                         "on the portal's page of the run or tomogram")
    return found


def _preferred(items: list, what: str, source: str):
    if not items:
        raise ValueError(f"CryoET Data Portal: source {source!r} has no {what}")
    standard = [item for item in items if getattr(item, "is_portal_standard", False)]
    return sorted(standard or items, key=lambda item: item.id)[0]


def _tiltseries(client, portal, ts, source: str) -> PortalResolution:
    run = ts.run
    files = [PortalFile("source", ts.https_mrc_file, _size(ts.file_size_mrc))]
    if ts.https_angle_list:
        files.append(PortalFile("angles", ts.https_angle_list))
    ids = {"run": run.id, "tiltseries": ts.id}
    if not ts.is_aligned:
        alignment = _preferred(list(ts.alignments), "alignment for its raw tilt series", source)
        files.append(PortalFile("alignment", alignment.https_alignment_metadata))
        ids["alignment"] = alignment.id
    return PortalResolution(
        source=source, data_kind="tiltseries", files=tuple(files), voxel_size_angstrom=float(ts.pixel_spacing),
        run_id=run.id, run_name=run.name, dataset_id=run.dataset_id, tilt_min_deg=ts.tilt_min,
        tilt_max_deg=ts.tilt_max, tilt_axis_deg=ts.tilt_axis,
        voltage_kv=ts.acceleration_voltage / 1000.0 if ts.acceleration_voltage else None,
        cs_mm=ts.spherical_aberration_constant, entity_ids=ids)


def resolve_portal_source(source: str, *, data_kind: str, client) -> PortalResolution:
    """Resolve ``source`` (``run:<id>`` …) with the portal ``client`` to the files of ``data_kind``.

    Parameters
    ----------
    source : the sheet's source of a ``portal`` row
    data_kind : ``tiltseries`` or ``tomogram``
    client : a ``cryoet_data_portal.Client`` (tests pass one that replays recorded responses)

    Raises
    ------
    ValueError
        A malformed source, an id the portal does not know, or an entity without the
        files ``data_kind`` needs — one line naming the source.
    """
    import cryoet_data_portal as portal

    entity, entity_id = parse_portal_source(source)
    if data_kind not in ("tiltseries", "tomogram"):
        raise ValueError(f"portal source {source!r}: data_kind must be tiltseries or tomogram, got {data_kind!r}")
    if data_kind == "tiltseries":
        if entity == "tomogram":
            raise ValueError(f"portal source {source!r} is a tomogram; use run:<id> or tiltseries:<id> for a tilt "
                             "series, or data_kind tomogram")
        if entity == "run":
            run = _get(portal.Run, client, entity, entity_id, source)
            ts = sorted(run.tiltseries, key=lambda t: t.id)
            if not ts:
                raise ValueError(f"CryoET Data Portal: run {entity_id} ({run.name}) has no tilt series (source "
                                 f"{source!r}); use data_kind tomogram")
            return _tiltseries(client, portal, ts[0], source)
        return _tiltseries(client, portal, _get(portal.TiltSeries, client, entity, entity_id, source), source)
    if entity == "tiltseries":
        raise ValueError(f"portal source {source!r} is a tilt series; use run:<id> or tomogram:<id> with "
                         "data_kind tomogram")
    if entity == "run":
        run = _get(portal.Run, client, entity, entity_id, source)
        tomogram = _preferred(list(run.tomograms), f"tomogram (run {entity_id}, {run.name})", source)
    else:
        tomogram = _get(portal.Tomogram, client, entity, entity_id, source)
        run = tomogram.run
    return PortalResolution(
        source=source, data_kind="tomogram",
        files=(PortalFile("source", tomogram.https_mrc_file, _size(tomogram.file_size_mrc)),),
        voxel_size_angstrom=float(tomogram.voxel_spacing), run_id=run.id, run_name=run.name,
        dataset_id=run.dataset_id, entity_ids={"run": run.id, "tomogram": tomogram.id})


def alignment_from_portal_json(path: str | os.PathLike[str], *, n_images: int,
                               images_path: str | os.PathLike[str]) -> TiltAlignment:
    """The alignment in a portal ``alignment_metadata.json`` for a raw stack of ``n_images`` images.

    Raises
    ------
    ValueError
        Not JSON or no ``per_section_alignment_parameters``; a ``z_index`` outside the
        stack; a malformed ``in_plane_rotation``; a non-zero ``volume_x_rotation``
        (section named) — one line naming the file.
    """
    path = Path(path)
    try:
        sections = json.loads(path.read_text())["per_section_alignment_parameters"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a CryoET Data Portal alignment_metadata.json ({err})") from None
    indices, matrices, shifts, tilts = [], [], [], []
    for k, sec in enumerate(sorted(sections, key=lambda s: s.get("z_index", -1))):
        z = sec.get("z_index")
        where = f"{path}: per_section_alignment_parameters[{k}] (z_index {z})"
        if not isinstance(z, int) or not 0 <= z < n_images:
            raise ValueError(f"{where}: z_index must be an image of {images_path} (0..{n_images - 1})")
        if abs(float(sec.get("volume_x_rotation", 0.0))) > X_ROTATION_TOL_DEG:
            raise ValueError(f"{where}: volume_x_rotation {sec['volume_x_rotation']} deg is not supported yet (only 0)")
        matrix = np.asarray(sec.get("in_plane_rotation"), dtype=np.float64)
        if matrix.shape != (2, 2) or not np.isfinite(matrix).all():
            raise ValueError(f"{where}: in_plane_rotation must be a 2x2 matrix")
        indices.append(z)
        matrices.append(matrix)
        shifts.append([float(sec["x_offset"]), float(sec["y_offset"])])
        tilts.append(float(sec["tilt_angle"]))
    if not indices:
        raise ValueError(f"{path}: per_section_alignment_parameters is empty")
    return TiltAlignment(np.array(matrices), np.array(shifts), np.array(indices), np.array(tilts),
                         source=f"{path} (CryoET Data Portal alignment)")
