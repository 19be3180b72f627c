"""Tilt angles: IMOD ``.tlt`` / ``.rawtlt`` files and SerialEM ``.mdoc`` files.

Angles are float64 degrees, one per tilt image, in the order of the images in the
tilt series (for ``.mdoc``: sorted by ``ZValue``). Every error is one line naming
the file and, where it applies, the line number and text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryo_pipeline.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["check_angles_match", "read_tilt_angles", "write_tilt_angles"]

_ZVALUE = re.compile(r"^\[\s*ZValue\s*=\s*([+-]?\d+)\s*\]$", re.IGNORECASE)
_TILT = re.compile(r"^TiltAngle\s*=\s*(.*)$", re.IGNORECASE)


def _read_text(path: Path) -> str:
    try:
        if path.exists() and not path.is_file():  # a directory; a pipe would block, a device never end
            raise ValueError(f"{path}: cannot read tilt angle file (it is not a regular file)")
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read tilt angle file ({err.strerror or err})") from None
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of line 1
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (byte {err.start} is not UTF-8)") from None


def _number(text: str, *, path: Path, lineno: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: line {lineno}: {text[:60]!r} is not a number") from None
    if not (-90.0 <= value <= 90.0):
        raise ValueError(f"{path}: line {lineno}: tilt angle {value} is outside [-90, 90] degrees")
    return value


def _parse_list(text: str, path: Path) -> list[float]:
    angles = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            angles.append(_number(content, path=path, lineno=lineno))
    return angles


def _parse_mdoc(text: str, path: Path) -> list[float]:
    by_z: dict[int, float] = {}
    z: int | None = None
    z_line = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith("["):
            if z is not None and z not in by_z:
                raise ValueError(f"{path}: line {z_line}: section [ZValue = {z}] has no TiltAngle")
            match = _ZVALUE.match(line)
            z, z_line = (int(match.group(1)), lineno) if match else (None, lineno)
            if z is not None and z in by_z:
                raise ValueError(f"{path}: line {lineno}: ZValue {z} appears twice")
            continue
        match = _TILT.match(line)
        if z is not None and match:
            if z in by_z:
                raise ValueError(f"{path}: line {lineno}: section [ZValue = {z}] has two TiltAngle lines")
            by_z[z] = _number(match.group(1).strip(), path=path, lineno=lineno)
    if z is not None and z not in by_z:
        raise ValueError(f"{path}: line {z_line}: section [ZValue = {z}] has no TiltAngle")
    return [by_z[k] for k in sorted(by_z)]


def read_tilt_angles(path: str | os.PathLike[str]) -> np.ndarray:
    """Read tilt angles from a ``.tlt``/``.rawtlt`` list or a SerialEM ``.mdoc``.

    Parameters
    ----------
    path : path-like
        ``*.mdoc``: one ``TiltAngle = x`` per ``[ZValue = n]`` section (other
        sections are ignored), sorted by ``n``. Any other name: one angle per line;
        blank lines and ``#`` comments are ignored.

    Returns
    -------
    `(n_tilts,)` float64 array
        Tilt angles in degrees, each within [-90, 90].

    Raises
    ------
    ValueError
        Unreadable or empty file, a line that is not a number (its number and text
        are given), an angle outside [-90, 90], or a malformed ``.mdoc`` section.
    """
    path = Path(path)
    text = _read_text(path)
    is_mdoc = path.suffix.lower() == ".mdoc"
    angles = _parse_mdoc(text, path) if is_mdoc else _parse_list(text, path)
    if not angles:
        what = "no [ZValue = n] section with a TiltAngle" if is_mdoc else "no tilt angles"
        raise ValueError(f"{path}: {what} (empty file?)")
    result = np.asarray(angles, dtype=np.float64)
    logger.debug("%s: %d tilt angles from %.2f to %.2f deg", path, result.size, result.min(), result.max())
    return result


def check_angles_match(
    angles: Sequence[float] | np.ndarray,
    n_images: int,
    *,
    angles_path: str | os.PathLike[str],
    images_path: str | os.PathLike[str],
) -> None:
    """Raise if the number of tilt angles differs from the number of tilt images.

    Parameters
    ----------
    angles : `(n_tilts,)` tilt angles in degrees
    n_images : int
        Number of images in the tilt series (its first axis).
    angles_path, images_path : path-like
        The two files, named in the error message.

    Raises
    ------
    ValueError
        ``tilt angles (n) in <angles_path> do not match tilt images (m) in <images_path>``.
    """
    n = len(angles)
    if n != n_images:
        raise ValueError(
            f"tilt angles ({n}) in {angles_path} do not match tilt images ({n_images}) in {images_path}; "
            "give exactly one angle per image, in image order")


def write_tilt_angles(path: str | os.PathLike[str], angles: Sequence[float] | np.ndarray) -> None:
    """Write angles atomically, one per line with 2 decimals (IMOD ``.tlt`` style).

    Parameters
    ----------
    path : path-like
        Output file; parent folders are created.
    angles : `(n_tilts,)` tilt angles in degrees, each finite and within [-90, 90]

    Raises
    ------
    ValueError
        Empty input, not 1D, or an angle outside [-90, 90] (NaN included).
    """
    values = np.asarray(angles, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"write_tilt_angles({path}): need a non-empty 1D array, got shape {values.shape}")
    bad = [float(v) for v in values if not (-90.0 <= v <= 90.0)]
    if bad:
        raise ValueError(f"write_tilt_angles({path}): {len(bad)} angles outside [-90, 90] degrees, e.g. {bad[0]}")
    atomic_write_text(path, "".join(f"{v:.2f}\n" for v in values))
