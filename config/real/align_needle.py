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
subtracted first. Writes ``needle_stem_shifts.tsv`` beside this script (angle, dx_px,
dy_px: move image content by (dx, dy) to align it). Run:
``.venv/bin/python config/real/align_needle.py`` (≈ 1 min, one core).

``--write-stack DIR`` also writes what ``config/datasets_real.tsv`` reads, into ``DIR``
(``resources/needle_stem``; never into the repository): the aligned series with the tilt
axis on y, Fourier-binned 2× (67.2 Å/px) and cropped to the 64 rows (along the tilt axis)
around the needle's tip — rows along the tilt axis are independent, so the crop loses
nothing of the other rows' reconstruction — as ``needle_aligned_bin2.mrc`` with its
``.tlt``. This is the scale at which the real config runs on a laptop CPU. (Once the
pipeline aligns and rotates raw stacks itself, the shifts become an ``.xf`` instead.)
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


BIN = 2
ROWS = (64, 192)  # full-resolution rows (along the tilt axis) kept: the needle's tip and body


def write_stack(series: np.ndarray, angles: np.ndarray, dy: np.ndarray, dx: np.ndarray, out_dir: Path) -> None:
    """The aligned series (axis on y), rows ``ROWS``, Fourier-binned by ``BIN``: MRC (67.2 Å/px) + .tlt."""
    from cryo_pipeline.io.angles import write_tilt_angles
    from cryo_pipeline.io.mrc import write_mrc
    from cryo_pipeline.ops.binning import fourier_rescale_3d

    aligned = _apply(series, dy, dx)[:, ROWS[0]:ROWS[1]]
    n, h, w = aligned.shape
    binned = fourier_rescale_3d(aligned, shape_zyx_out=(n, h // BIN, w // BIN)).astype(np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_mrc(out_dir / "needle_aligned_bin2.mrc", binned, voxel_size_angstrom=33.6 * BIN)
    write_tilt_angles(out_dir / "needle_aligned_bin2.tlt", angles)
    print(f"wrote {out_dir / 'needle_aligned_bin2.mrc'} {binned.shape}", file=sys.stderr)


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
    # raw frame: x along the tilt axis (= transposed rows), y across it (= transposed columns)
    out = HERE / "needle_stem_shifts.tsv"
    lines = ["angle_deg\tdx_px\tdy_px"] + [f"{a:g}\t{sx:.3f}\t{sy:.3f}" for a, sx, sy in zip(angles, dy, dx, strict=True)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    if "--write-stack" in sys.argv:
        write_stack(series, angles, dy, dx, Path(sys.argv[sys.argv.index("--write-stack") + 1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
