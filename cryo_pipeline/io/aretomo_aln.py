"""AreTomo / AreTomo3 alignment files (``.aln``).

Layout (as AreTomo writes it)::

    # AreTomo Alignment / Priims bprmMn
    # RawSize = 4096 4096 41          (x, y, images of the raw stack)
    # NumPatches = 0
    # DarkFrame =     0    1   -60.00  (0-based raw index, 1-based index, tilt): an excluded view
    # AlphaOffset =     0.00
    # BetaOffset =     0.00
    # SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
        1   -95.4040    1.00000      9.220    103.933     1.00     1.00     1.00     0.00    -63.20
    # Local Alignment                 (patch rows follow when NumPatches > 0; not used here)

Geometry (AreTomo's, as the CryoET Data Portal and ``cryoet-alignment`` use it): a
point ``a`` of the aligned image lies in the raw image at ``R(ROT)·a + (TX, TY)``
(pixels from the image centres), i.e. ``M = R(ROT)``, ``s = (TX, TY)`` in
:mod:`cryo_pipeline.ops.image_alignment`. ``ROT`` is the tilt-axis angle, counter-
clockwise from y; ``TILT`` the refined tilt angle of each kept view.

Views: ``SEC`` numbers the kept views. AreTomo3 keeps the 1-based raw index, so the
``SEC − 1`` of the rows and the dark frames partition the raw stack; older files
number the kept views 1..n after the dark frames were removed. Both are accepted.
Every error is one line naming the file, the line and the value.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.ops.image_alignment import TiltAlignment, rotation_matrix_xy

logger = logging.getLogger(__name__)

__all__ = ["AlnFile", "alignment_from_aln", "read_aln", "write_aln"]

GLOBAL_COLUMNS = ("SEC", "ROT", "GMAG", "TX", "TY", "SMEAN", "SFIT", "SCALE", "BASE", "TILT")
GMAG_TOL = 1e-3


@dataclass(frozen=True)
class AlnFile:
    """The global alignment of an ``.aln`` file.

    Attributes
    ----------
    path : Path
    raw_size_xyz : (x, y, n) of the raw stack (``# RawSize``)
    dark_frames : ((raw index 0-based, tilt deg, line number), ...) excluded views
    sections : `(n,)` int, ``SEC`` of each global row
    rot_deg, gmag, tx_px, ty_px, tilt_deg : `(n,)` float64 columns of the global rows
    lines : `(n,)` int, line number of each global row
    num_patches : int
    """

    path: Path
    raw_size_xyz: tuple[int, int, int]
    dark_frames: tuple[tuple[int, float, int], ...]
    sections: np.ndarray
    rot_deg: np.ndarray
    gmag: np.ndarray
    tx_px: np.ndarray
    ty_px: np.ndarray
    tilt_deg: np.ndarray
    lines: np.ndarray
    num_patches: int = 0

    def raw_indices(self) -> np.ndarray:
        """0-based raw-stack index of each global row (see the module docstring)."""
        n_raw = self.raw_size_xyz[2]
        dark = {index for index, _, _ in self.dark_frames}
        preserved = self.sections - 1
        if set(preserved.tolist()).isdisjoint(dark) and sorted([*preserved.tolist(), *dark]) == list(range(n_raw)):
            return preserved
        if len(self.sections) + len(dark) == n_raw and sorted(self.sections.tolist()) in (
                list(range(1, len(self.sections) + 1)), list(range(len(self.sections)))):
            kept = np.array(sorted(set(range(n_raw)) - dark))
            return kept[np.argsort(np.argsort(self.sections))]
        raise ValueError(
            f"{self.path}: {len(self.sections)} alignment rows and {len(dark)} dark frames do not account for the "
            f"{n_raw} images of RawSize; the rows' SEC values ({self.sections.min()}..{self.sections.max()}) match "
            "neither raw indices nor a renumbering")


def _header_value(path: Path, lineno: int, content: str, kind, count: int = 1):
    try:
        values = [kind(v) for v in content.split("=", 1)[1].split()]
    except (IndexError, ValueError):
        values = []
    if len(values) != count:
        raise ValueError(f"{path}: line {lineno}: cannot read {content[:60]!r} ({count} value(s) after '=')")
    return values if count > 1 else values[0]


def read_aln(path: str | os.PathLike[str]) -> AlnFile:
    """Read the header, dark frames and global rows of an AreTomo ``.aln`` file.

    Raises
    ------
    ValueError
        No ``# AreTomo Alignment`` header, no ``RawSize``, no global rows, or a global
        row that is not ten numbers — naming the file and the line.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    if raw is None:
        raise ValueError(f"{path}: cannot read the AreTomo .aln file (it does not exist or is not a regular file)")
    raw_size, num_patches, dark, rows, header, section = None, 0, [], [], False, None
    for lineno, line in enumerate(raw.splitlines(), start=1):
        content = line.strip()
        if not content:
            continue
        if content.startswith("#"):
            tag = content.lstrip("#").strip()
            if tag.startswith("AreTomo Alignment"):
                header = True
            elif tag.startswith("RawSize"):
                raw_size = tuple(_header_value(path, lineno, content, int, 3))
            elif tag.startswith("NumPatches"):
                num_patches = _header_value(path, lineno, content, int)
            elif tag.startswith("DarkFrame"):
                index, _, angle = _header_value(path, lineno, content, float, 3)
                dark.append((int(index), angle, lineno))
            elif tag.startswith("SEC"):
                section = "global"
            elif tag.startswith("Local Alignment"):
                section = "local"
            continue
        if section != "global":
            continue
        fields = content.split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if len(values) != len(GLOBAL_COLUMNS) or not all(np.isfinite(values)):
            raise ValueError(f"{path}: line {lineno}: {content[:70]!r} is not the ten numbers "
                             f"{' '.join(GLOBAL_COLUMNS)}")
        rows.append([*values, lineno])
    if not header:
        raise ValueError(f"{path}: not an AreTomo alignment file (no '# AreTomo Alignment' header line)")
    if raw_size is None:
        raise ValueError(f"{path}: no '# RawSize = x y n' line")
    if not rows:
        raise ValueError(f"{path}: no global alignment rows after the '# SEC ROT ...' line")
    table = np.array(rows)
    return AlnFile(path=path, raw_size_xyz=raw_size, dark_frames=tuple(dark), sections=table[:, 0].astype(int),
                   rot_deg=table[:, 1], gmag=table[:, 2], tx_px=table[:, 3], ty_px=table[:, 4],
                   tilt_deg=table[:, 9], lines=table[:, 10].astype(int), num_patches=int(num_patches))


def alignment_from_aln(
    path: str | os.PathLike[str],
    *,
    n_images: int,
    images_path: str | os.PathLike[str],
    angles_deg: np.ndarray | None = None,
    angles_path: str | os.PathLike[str] | None = None,
) -> TiltAlignment:
    """The alignment of an ``.aln`` for a raw stack of ``n_images`` images; tilt angles from its TILT column.

    ``angles_deg`` (from the sheet's angles file ``angles_path``), when given, must
    list exactly the kept views: an angles file that still lists a view the ``.aln``
    excludes as a dark frame is an error naming both files, the view and the lines.

    Raises
    ------
    ValueError
        RawSize's image count differs from the stack's; a GMAG other than 1 (not
        supported); the angles file lists excluded views or a different count.
    """
    aln = read_aln(path)
    if aln.raw_size_xyz[2] != n_images:
        raise ValueError(f"{path}: RawSize says {aln.raw_size_xyz[2]} images but {images_path} has {n_images}; "
                         "give the raw stack that AreTomo aligned")
    bad = np.flatnonzero(np.abs(aln.gmag - 1.0) > GMAG_TOL)
    if bad.size:
        row = bad[0]
        raise ValueError(f"{path}: line {aln.lines[row]}: GMAG {aln.gmag[row]} is not supported (only 1.0)")
    indices = aln.raw_indices()
    if angles_deg is not None:
        angles = np.asarray(angles_deg, dtype=np.float64)
        if aln.dark_frames and len(angles) == n_images:
            index, tilt, lineno = aln.dark_frames[0]
            raise ValueError(
                f"{angles_path}: line {index + 1} lists view {index + 1} ({angles[index]:g} deg), which {path} "
                f"excludes as a dark frame (line {lineno}, {tilt:g} deg); the angles file must list only the "
                f"{len(indices)} kept views, or leave the sheet's angles empty to use the .aln's TILT column")
        if len(angles) != len(indices):
            raise ValueError(f"{angles_path}: {len(angles)} angles but {path} keeps {len(indices)} views; give one "
                             "angle per kept view or leave the sheet's angles empty")
    if aln.num_patches:
        logger.info("%s: %d local patches are ignored; the global alignment is applied", path, aln.num_patches)
    matrices = np.array([rotation_matrix_xy(r) for r in aln.rot_deg])
    return TiltAlignment(matrices_xy=matrices, shifts_xy_px=np.stack([aln.tx_px, aln.ty_px], axis=1),
                         raw_indices=indices, tilt_angles_deg=aln.tilt_deg.copy(), source=f"{path} (AreTomo .aln)")


def write_aln(
    path: str | os.PathLike[str],
    *,
    raw_size_xyz: tuple[int, int, int],
    rot_deg,
    tx_px,
    ty_px,
    tilt_deg,
    sections=None,
    dark_frames: tuple[tuple[int, float], ...] = (),
) -> None:
    """Write a global-only ``.aln`` atomically in AreTomo's column layout (for tests and hand-offs)."""
    rot = np.asarray(rot_deg, dtype=np.float64)
    secs = np.arange(1, rot.size + 1) if sections is None else np.asarray(sections)
    out = ["# AreTomo Alignment / Priims bprmMn", "# RawSize = {} {} {}".format(*raw_size_xyz), "# NumPatches = 0"]
    out += [f"# DarkFrame ={index:>6}{index + 1:>5}{angle:>9.2f}" for index, angle in dark_frames]
    out += ["# AlphaOffset =     0.00", "# BetaOffset =     0.00",
            "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT"]
    for sec, r, tx, ty, tilt in zip(secs, rot, tx_px, ty_px, tilt_deg, strict=True):
        out.append(f"{sec:>5}{r:>11.4f}{1.0:>11.5f}{tx:>11.3f}{ty:>11.3f}{1.0:>9.2f}{1.0:>9.2f}{1.0:>9.2f}"
                   f"{0.0:>9.2f}{tilt:>10.2f}")
    atomic_write_text(path, "\n".join(out) + "\n")
