"""Estimate the shifts that align the real STEM needle tilt series (../shared/data/real).

The series (etspy's test data, MANIFEST.md §4) is not aligned: along the tilt axis the
images jitter by up to ±8 px, and across it the centre of mass departs from the
sinusoid of a rigid object by ~10 px rms. This script estimates one (dx, dy) shift per
image in the raw stack's pixels (x along the tilt axis, 90° in the acquisition log):

1. along the tilt axis: cross-correlation of each image's profile along the axis (its
   sum across the axis does not change with tilt for an object inside the field of view)
   with the 0° image's;
2. across it: the centre of mass moved onto the best-fitting sinusoid
   a·cos θ + b·sin θ + centre (a rigid object's centre of mass in projection);
3. six rounds of projection matching: WBP of the aligned series, reprojection at every
   tilt, 1D cross-correlation of the profiles across and along the axis.

Background (median of a 40-px corner, ≈ 883 counts after the +32768 offset) is
subtracted first. Writes ``needle_stem.xf`` beside this script: an IMOD ``.xf`` (one
line per raw image) holding each image's shifts and the 90° rotation that brings the
tilt axis (raw x) onto y, which ``config/datasets_real.tsv`` gives the pipeline in its
``alignment`` column (rule ``align_tilt_series`` applies it to the raw stack in
``../shared``, with ``align.bin_factor`` and ``align.subtract_background`` from
``config/config_real.yaml``). Run: ``.venv/bin/python config/real/align_needle.py``
(≈ 1 min, one core).
"""

from __future__ import annotations

import sys
from pathlib import Path

import mrcfile
import numpy as np
from scipy.ndimage import fourier_shift

from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data" / "real"
ROUNDS = 6


def _shift_1d(profile: np.ndarray, reference: np.ndarray) -> float:
    """Sub-pixel shift that moves ``reference`` onto ``profile`` (parabolic peak)."""
    n = profile.size
    corr = np.fft.irfft(np.fft.rfft(profile - profile.mean()) * np.conj(np.fft.rfft(reference - reference.mean())), n=n)
    k = int(np.argmax(corr))
    left, centre, right = corr[k - 1], corr[k], corr[(k + 1) % n]
    k = k + 0.5 * (left - right) / (left - 2 * centre + right)
    return k if k < n / 2 else k - n


def _apply(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Move each image's content by (dy, dx) pixels (Fourier shift, periodic)."""
    return np.stack([np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(im), (y, x))))
                     for im, y, x in zip(images, dy, dx, strict=True)]).astype(np.float32)


def write_needle_xf(path: Path, dy: np.ndarray, dx: np.ndarray) -> None:
    """The ``.xf`` that aligns the raw stack: rotate by 90° (axis onto y), shift by the estimates.

    ``dy``/``dx`` move the content of the *transposed* images (rows along the tilt axis)
    by (dy, dx). The pipeline turns the raw images by +90° (``numpy.rot90``: the
    transpose with its rows reversed, which keeps the tilt sense), so in the operator
    form of :mod:`cryo_pipeline.ops.image_alignment` (``aligned(a) = raw(M·a + s)``,
    ``a = (x, y)`` from the centre) ``M`` is the 90° rotation and ``s = (−dy, −dx)``.
    """
    from cryo_pipeline.io.imod_alignment import write_xf, xf_from_alignment
    from cryo_pipeline.ops.image_alignment import TiltAlignment, rotation_matrix_xy

    n = dy.size
    alignment = TiltAlignment(np.repeat(rotation_matrix_xy(90.0)[None], n, axis=0), np.stack([-dy, -dx], axis=1),
                              np.arange(n), source="config/real/align_needle.py")
    write_xf(path, *xf_from_alignment(alignment))
    print(f"wrote {path}", file=sys.stderr)


def main() -> int:
    with mrcfile.open(DATA / "tiltseries_haadf_needle_etspy.mrc", permissive=True) as handle:
        raw = handle.data.astype(np.float32) + 32768.0
    angles = np.loadtxt(DATA / "tiltseries_haadf_needle_etspy.rawtlt")
    raw = np.clip(raw - np.median(raw[:, :40, -40:]), 0.0, None)
    # transposed: rows (y') along the tilt axis (raw x), columns (x') across it (raw y)
    series = np.ascontiguousarray(np.transpose(raw, (0, 2, 1)))
    n, h, w = series.shape
    zero = int(np.argmin(np.abs(angles)))
    along = series.sum(axis=2)
    dy = -np.array([_shift_1d(along[i], along[zero]) for i in range(n)])
    x = np.arange(w, dtype=np.float64)
    centre_of_mass = np.array([(im.sum(axis=0) * x).sum() / im.sum() for im in series])
    theta = np.radians(angles)
    design = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    fit = np.linalg.lstsq(np.c_[design, np.ones(n)], centre_of_mass, rcond=None)[0]
    dx = (w - 1) / 2.0 + design @ fit[:2] - centre_of_mass
    for round_ in range(ROUNDS):
        aligned = _apply(series, dy, dx)
        volume = weighted_backprojection_3d(aligned, angles, volume_shape_zyx=(w // 2, h, w))
        projected = project_3d(volume, angles)
        ddx = np.array([_shift_1d(projected[i].sum(0), aligned[i].sum(0)) for i in range(n)])
        ddy = np.array([_shift_1d(projected[i].sum(1), aligned[i].sum(1)) for i in range(n)])
        dx, dy = dx + ddx, dy + ddy
        print(f"round {round_ + 1}: residual shift rms across {np.sqrt(np.mean(ddx**2)):.2f} px, "
              f"along {np.sqrt(np.mean(ddy**2)):.2f} px", file=sys.stderr)
    write_needle_xf(HERE / "needle_stem.xf", dy, dx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
