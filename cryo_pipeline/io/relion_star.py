"""RELION-5 ``tomograms.star``: hand the corrected tomograms to subtomogram averaging.

The file is RELION-5's tomogram set: a ``data_global`` loop with one row per
tomogram, in the column order RELION-5's own reconstruction job writes::

    # version 50001
    data_global
    loop_
    _rlnTomoName #1                      unique name (the dataset)
    _rlnVoltage #2                       kV          (when the sheet gives the CTF)
    _rlnSphericalAberration #3           mm
    _rlnAmplitudeContrast #4             fraction
    _rlnMicrographOriginalPixelSize #5   Å, of the tilt series
    _rlnTomoHand #6                      -1 or 1
    _rlnOpticsGroupName #7
    _rlnTomoTiltSeriesPixelSize #8       Å
    _rlnTomoTiltSeriesStarFile #9        only where the input had one
    _rlnTomoTomogramBinning #10          tomogram voxel / tilt-series pixel
    _rlnTomoSizeX … _rlnTomoSizeZ        in unbinned tilt-series pixels, as RELION expects
    _rlnTomoReconstructedTomogram        the corrected tomogram (MRC)

A column is written only when every row has a value for it (STAR has no empty
cell); missing CTF values are named in the log, never replaced by made-up numbers.
The text is written by this module (it is a plain table): the ``starfile`` package
would add pyarrow (~170 MB) to the install for it. :func:`read_star_loop` reads it
back for checks.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryo_pipeline.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["RelionTomogram", "read_star_loop", "write_tomograms_star"]

STAR_VERSION = "50001"


@dataclass(frozen=True)
class RelionTomogram:
    """One corrected tomogram for ``tomograms.star``.

    Attributes
    ----------
    name : unique tomogram name (``_rlnTomoName``)
    tomogram_path : the corrected tomogram (MRC), as RELION should open it
    shape_zyx : its size in voxels
    voxel_size_angstrom : its voxel size
    tilt_series_pixel_size_angstrom : pixel size of the tilt series it came from
    voltage_kv, cs_mm, amplitude_contrast : the CTF parameters, or None when unknown
    hand : ``_rlnTomoHand`` (−1 is what RELION-5 writes for the usual IMOD/AreTomo geometry)
    tilt_series_star : the input's RELION tilt-series STAR file, where there was one
    optics_group : ``_rlnOpticsGroupName``
    """

    name: str
    tomogram_path: str
    shape_zyx: tuple[int, int, int]
    voxel_size_angstrom: float
    tilt_series_pixel_size_angstrom: float
    voltage_kv: float | None = None
    cs_mm: float | None = None
    amplitude_contrast: float | None = None
    hand: int = -1
    tilt_series_star: str | None = None
    optics_group: str = "opticsGroup1"

    @property
    def binning(self) -> float:
        """Tomogram voxel size over tilt-series pixel size."""
        return self.voxel_size_angstrom / self.tilt_series_pixel_size_angstrom

    def columns(self) -> dict[str, object]:
        """Column name → value (None where unknown), in RELION-5's order."""
        d, h, w = self.shape_zyx
        return {
            "rlnTomoName": self.name,
            "rlnVoltage": self.voltage_kv,
            "rlnSphericalAberration": self.cs_mm,
            "rlnAmplitudeContrast": self.amplitude_contrast,
            "rlnMicrographOriginalPixelSize": self.tilt_series_pixel_size_angstrom,
            "rlnTomoHand": self.hand,
            "rlnOpticsGroupName": self.optics_group,
            "rlnTomoTiltSeriesPixelSize": self.tilt_series_pixel_size_angstrom,
            "rlnTomoTiltSeriesStarFile": self.tilt_series_star,
            "rlnTomoTomogramBinning": self.binning,
            "rlnTomoSizeX": round(w * self.binning),
            "rlnTomoSizeY": round(h * self.binning),
            "rlnTomoSizeZ": round(d * self.binning),
            "rlnTomoReconstructedTomogram": self.tomogram_path,
        }


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    text = str(value)
    if not text or any(c.isspace() for c in text) or text.startswith(("_", "#", "data_", "loop_")):
        raise ValueError(f"STAR cell {text!r} is empty, has white space or starts like a STAR keyword; rename it")
    return text


def write_tomograms_star(path: str | os.PathLike[str], tomograms: Sequence[RelionTomogram]) -> list[str]:
    """Write RELION-5's ``tomograms.star`` for ``tomograms`` atomically; return the columns written."""
    if not tomograms:
        raise ValueError(f"{path}: no tomograms to list")
    names = [t.name for t in tomograms]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: tomogram names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    rows = [t.columns() for t in tomograms]
    columns = [c for c in rows[0] if all(row[c] is not None for row in rows)]
    dropped = [c for c in rows[0] if c not in columns and c != "rlnTomoTiltSeriesStarFile"]
    if dropped:
        missing = sorted({t.name for t, row in zip(tomograms, rows, strict=True) if any(row[c] is None for c in dropped)})
        logger.warning("%s: columns %s are left out: no value for %s (give the CTF columns in the sheet)",
                       path, ", ".join(dropped), ", ".join(missing))
    lines = [f"# version {STAR_VERSION}", "", "data_global", "", "loop_"]
    lines += [f"_{column} #{i}" for i, column in enumerate(columns, start=1)]
    lines += ["  ".join(_cell(row[c]) for c in columns) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n\n")
    return columns


def read_star_loop(path: str | os.PathLike[str], block: str = "global") -> list[dict[str, str]]:
    """The rows of the loop in ``data_<block>`` as dicts of column → text (for checks and tests)."""
    path = Path(path)
    lines = [line.strip() for line in path.read_text().splitlines()]
    try:
        start = lines.index(f"data_{block}")
    except ValueError:
        raise ValueError(f"{path}: no data_{block} block") from None
    columns, rows = [], []
    for line in lines[start + 1:]:
        if line.startswith("data_"):
            break
        if not line or line.startswith("#") or line == "loop_":
            continue
        if line.startswith("_"):
            columns.append(line.split()[0][1:])
            continue
        cells = shlex.split(line)
        if len(cells) != len(columns):
            raise ValueError(f"{path}: a row of data_{block} has {len(cells)} cells for {len(columns)} columns")
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows
