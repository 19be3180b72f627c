"""SIRT: simultaneous iterative reconstruction, optionally non-negative.

x ← x + C·Aᵀ R (p − A x), with R = 1 / (row sums of A) and C = 1 / (column sums of A)
(Gregor & Benson's normalisation), starting from 0, using the project's projector
(:mod:`cryo_pipeline.ops.projector`). With ``nonnegative`` every iterate is clipped at 0,
the prior that suits data with a zero background (HAADF-STEM after background
subtraction, simulated phantoms); it then fills part of the missing wedge.

Measured against the ground truth (48×64×64 phantoms projected over ±76° in 2° steps,
SNR 2–5; ``/tmp`` script of issue 12, numbers in its report): non-negative SIRT with 50
iterations gives PSNR 25–28 dB where WBP gives 20–22 dB, and the mean FSC rises from
0.43–0.67 to 0.56–0.81. Without the non-negativity SIRT is no better than WBP on the
same data, so the reference defaults to WBP and SIRT is for non-negative data.
"""

from __future__ import annotations

import torch

from cryo_pipeline.ops.projector import ParallelBeamProjector
from cryo_pipeline.ops.wbp import checked_tilt_series


def sirt_3d(
    tilt_series,
    angles_deg,
    *,
    volume_shape_zyx: tuple[int, int, int],
    iterations: int,
    nonnegative: bool = True,
):
    """Reconstruct a ``(d, h, w)`` volume from a tilt series by SIRT.

    Parameters
    ----------
    tilt_series : numpy.ndarray or torch.Tensor
        ``(n_tilts, h, n_det)`` aligned tilt series; tilt axis = y.
    angles_deg : sequence of float
        One angle per tilt image.
    volume_shape_zyx : tuple of int
        ``(d, h, w)`` of the output.
    iterations : int
        Number of SIRT updates (≥ 1).
    nonnegative : bool
        Clip every iterate at 0.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(d, h, w)`` float32, the same kind as the input.
    """
    if iterations < 1:
        raise ValueError(f"SIRT needs at least 1 iteration, got {iterations}")
    series, angles, was_numpy = checked_tilt_series(tilt_series, angles_deg, volume_shape_zyx=volume_shape_zyx)
    projector = ParallelBeamProjector(volume_shape_zyx, angles, detector_width_px=series.shape[2],
                                      device=series.device)
    ones_volume = torch.ones(volume_shape_zyx, dtype=series.dtype, device=series.device)
    row_weight = 1.0 / projector.forward(ones_volume).clamp_min(1e-6)
    column_weight = 1.0 / projector.adjoint(torch.ones_like(series)).clamp_min(1e-6)
    volume = torch.zeros(volume_shape_zyx, dtype=series.dtype, device=series.device)
    for _ in range(iterations):
        volume = volume + column_weight * projector.adjoint(row_weight * (series - projector.forward(volume)))
        if nonnegative:
            volume = volume.clamp_min(0.0)
    return volume.numpy() if was_numpy else volume
