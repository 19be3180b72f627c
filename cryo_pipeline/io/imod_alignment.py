"""IMOD alignment files: ``.xf`` (in-plane transforms) and ``.xtilt`` (x-axis tilts).

``.xf`` (IMOD's ``xfmodel``/``newstack`` format): one line per image of the raw stack,
six numbers ``A11 A12 A21 A22 DX DY``. A raw point ``q`` (pixels from the image
centre) goes to the aligned point ``a = A·q + D``. IMOD's final ``.xf`` (from
``tiltalign``) includes the rotation that brings the tilt axis onto y, so an aligned
stack made from it has its axis on y. In the operator form of
:mod:`cryo_pipeline.ops.image_alignment` that is ``M = A⁻¹`` and ``s = −A⁻¹·D``.

``.xtilt``: one angle per line (IMOD ``tiltalign``'s tilt about the x axis). Only
all-zero files are supported; a non-zero angle is an error naming its line.

Every error is one line naming the file, the line and the value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.ops.image_alignment import TiltAlignment

__all__ = ["alignment_from_xf", "read_xf", "read_xtilt", "write_xf", "xf_from_alignment"]

XTILT_TOL_DEG = 1e-3


def _text_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; ``#`` starts a comment."""
    try:
        if path.exists() and not path.is_file():
            raise ValueError(f"{path}: cannot read the {what} (it is not a regular file)")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ValueError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: the {what} is not a text file (byte {err.start} is not UTF-8)") from None
    lines = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(text.splitlines(), start=1)]
    return [(n, content) for n, content in lines if content]


def read_xf(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read an IMOD ``.xf``: ``A`` `(n, 2, 2)` and ``D`` `(n, 2)` (``a = A·q + D``), float64.

    Raises
    ------
    ValueError
        An empty file, a line without exactly six numbers, a non-finite value or a
        singular matrix — naming the file, the line and its text.
    """
    path = Path(path)
    matrices, shifts = [], []
    for lineno, content in _text_lines(path, "IMOD .xf file"):
        fields = content.split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: {content[:60]!r} is not six numbers "
                             "(A11 A12 A21 A22 DX DY)") from None
        if len(values) != 6 or not all(np.isfinite(values)):
            raise ValueError(f"{path}: line {lineno}: {content[:60]!r} must hold six finite numbers "
                             f"(A11 A12 A21 A22 DX DY), found {len(values)}")
        a = np.array(values[:4]).reshape(2, 2)
        if abs(np.linalg.det(a)) < 1e-6:
            raise ValueError(f"{path}: line {lineno}: the matrix {values[:4]} is singular (determinant 0)")
        matrices.append(a)
        shifts.append(values[4:])
    if not matrices:
        raise ValueError(f"{path}: no transforms (empty IMOD .xf file?)")
    return np.array(matrices), np.array(shifts)


def read_xtilt(path: str | os.PathLike[str], *, n_images: int | None = None) -> np.ndarray:
    """Read an IMOD ``.xtilt`` and require every angle to be 0 (x-axis tilts are not supported yet).

    Raises
    ------
    ValueError
        A line that is not a number, a count different from ``n_images``, or a
        non-zero angle (naming its line): reconstructing with an x-axis tilt is not
        supported; refine the alignment without it (IMOD ``tiltalign`` XTiltOption 0).
    """
    path = Path(path)
    angles = []
    for lineno, content in _text_lines(path, "IMOD .xtilt file"):
        try:
            value = float(content)
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: {content[:60]!r} is not a number") from None
        if not abs(value) <= XTILT_TOL_DEG:
            raise ValueError(
                f"{path}: line {lineno}: x-axis tilt {value} deg is not supported yet (only 0); align without "
                "an x-axis tilt (IMOD tiltalign XTiltOption 0) or leave the .xtilt out")
        angles.append(value)
    if n_images is not None and len(angles) != n_images:
        raise ValueError(f"{path}: {len(angles)} x-axis tilts for {n_images} images; give one line per image")
    return np.array(angles)


def alignment_from_xf(
    path: str | os.PathLike[str],
    *,
    n_images: int,
    images_path: str | os.PathLike[str],
    xtilt_path: str | os.PathLike[str] | None = None,
) -> TiltAlignment:
    """The alignment of an ``.xf`` for a raw stack of ``n_images`` images (``images_path``, for messages).

    Raises
    ------
    ValueError
        The ``.xf`` has a different number of lines than the stack has images (both
        files and both counts named), or any error of :func:`read_xf`/:func:`read_xtilt`.
    """
    matrices, shifts = read_xf(path)
    if len(matrices) != n_images:
        raise ValueError(
            f"{path}: {len(matrices)} transforms (lines) but {images_path} has {n_images} images; an IMOD .xf "
            "has one line per image of the raw stack, in stack order")
    if xtilt_path is not None:
        read_xtilt(xtilt_path, n_images=n_images)
    inverse = np.linalg.inv(matrices)
    return TiltAlignment(
        matrices_xy=inverse,
        shifts_xy_px=-np.einsum("nij,nj->ni", inverse, shifts),
        raw_indices=np.arange(n_images),
        tilt_angles_deg=None,
        source=f"{path} (IMOD .xf)",
    )


def xf_from_alignment(alignment: TiltAlignment) -> tuple[np.ndarray, np.ndarray]:
    """``(A, D)`` of the ``.xf`` that performs ``alignment`` (the inverse of :func:`alignment_from_xf`)."""
    a = np.linalg.inv(np.asarray(alignment.matrices_xy, dtype=np.float64))
    return a, -np.einsum("nij,nj->ni", a, np.asarray(alignment.shifts_xy_px, dtype=np.float64))


def write_xf(path: str | os.PathLike[str], matrices: Sequence, shifts: Sequence) -> None:
    """Write an IMOD ``.xf`` atomically (IMOD's layout: 4 matrix terms, then DX DY)."""
    a = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 2)
    d = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    if len(a) != len(d) or len(a) == 0:
        raise ValueError(f"write_xf({path}): {len(a)} matrices and {len(d)} shifts; need the same non-zero count")
    lines = [f"{m[0, 0]:12.7f}{m[0, 1]:12.7f}{m[1, 0]:12.7f}{m[1, 1]:12.7f}{t[0]:12.3f}{t[1]:12.3f}\n"
             for m, t in zip(a, d, strict=True)]
    atomic_write_text(path, "".join(lines))
