"""Aligning a raw tilt image and Fourier-binning it in one step, centred as block averaging.

Fourier cropping (:func:`cryo_pipeline.ops.binning.fourier_rescale_3d`) keeps the
sample at index 0: binning an ``f·m``-pixel axis by ``f`` gives samples at full-size
indices ``0, f, 2f, …``, whose centre lies ``(f − 1)/2`` full-size pixels before the
image's geometric centre. Averaging blocks of ``f`` pixels has no such offset (block
``j`` is centred at ``f·j + (f − 1)/2``). A tilt series binned with the offset has its
tilt axis ``(f − 1)/2`` full-size pixels off the image centre, which blurs every
reconstruction. :func:`align_and_bin_image` moves the full-size sampling grid by
``(f − 1)/2`` pixels inside the one interpolation that aligns the image, so the binned
image is centred exactly where block averaging centres it, with Fourier binning's
anti-aliasing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryo_pipeline.ops.binning import fourier_rescale_3d
from cryo_pipeline.ops.image_alignment import align_image

__all__ = ["align_and_bin_image", "binned_shape_yx"]


def binned_shape_yx(shape_yx: Sequence[int], bin_factor: int) -> tuple[int, int]:
    """``(h // f, w // f)``: the binned size (the last ``h mod f`` rows / columns are not kept whole)."""
    if bin_factor < 1:
        raise ValueError(f"bin_factor must be >= 1, got {bin_factor}")
    h, w = (int(n) // bin_factor for n in shape_yx)
    if min(h, w) < 1:
        raise ValueError(f"an image of {tuple(shape_yx)} pixels binned by {bin_factor} keeps no pixel")
    return h, w


def align_and_bin_image(
    image: np.ndarray,
    matrix_xy: np.ndarray,
    shift_xy_px: Sequence[float],
    *,
    out_shape_yx: Sequence[int],
    bin_factor: int,
    fill: float | None = None,
) -> np.ndarray:
    """The aligned image (``out(a) = image(M·a + s)``) Fourier-binned by ``bin_factor``.

    Parameters
    ----------
    image : `(h, w)` raw image
    matrix_xy, shift_xy_px : the alignment of :func:`cryo_pipeline.ops.image_alignment.align_image`
    out_shape_yx : ``(h', w')`` of the *binned* image; the full-size aligned image is
        ``bin_factor`` times larger, centred on the same point
    bin_factor : integer binning (1: :func:`align_image` alone)
    fill : value outside the raw image (default: its border mean)

    Returns
    -------
    `(h', w')` float32; its pixel ``(i, j)`` is centred where block averaging of the
    full-size aligned image would centre it (module docstring).
    """
    if bin_factor < 1:
        raise ValueError(f"bin_factor must be >= 1, got {bin_factor}")
    h, w = (int(n) for n in out_shape_yx)
    if bin_factor == 1:
        return align_image(image, matrix_xy, shift_xy_px, out_shape_yx=(h, w), fill=fill)
    matrix = np.asarray(matrix_xy, dtype=np.float64)
    # sample the full-size aligned image at a + c, c = ((f-1)/2, (f-1)/2): image(M(a + c) + s) = image(M a + (M c + s))
    centring = matrix @ np.full(2, (bin_factor - 1) / 2.0)
    full = align_image(image, matrix, np.asarray(shift_xy_px, dtype=np.float64) + centring,
                       out_shape_yx=(h * bin_factor, w * bin_factor), fill=fill)
    return fourier_rescale_3d(full[None], shape_zyx_out=(1, h, w))[0]
