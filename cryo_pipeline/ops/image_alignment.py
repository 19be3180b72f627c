"""In-plane alignment of tilt images: shifts and rotation in one interpolation.

Geometry (the operator form of AreTomo and the CryoET Data Portal): a point
``a = (x, y)`` of the *aligned* image, in pixels from that image's centre, lies in
the *raw* image at::

    q = M · a + s        (pixels from the raw image's centre)

``M`` is a 2×2 matrix — a rotation by the tilt-axis angle for AreTomo and the
portal, and possibly with stretch for an IMOD ``.xf`` — and ``s`` the shift. Each
aligned image is ``aligned(a) = raw(M·a + s)``: one interpolation per image,
however many corrections are combined in ``M`` and ``s``.

Conventions: ``x`` is the column (array axis −1), ``y`` the row (axis −2); angles
are counter-clockwise from +y towards −x in the ``(x, y)`` frame drawn with y up
(IMOD's display), i.e. ``M = [[cos θ, −sin θ], [sin θ, cos θ]]``. An aligned image
has its tilt axis on y when ``M`` rotates by the raw image's tilt-axis angle
(:func:`rotation_matrix_xy`). Image centres are the geometric centres
``((w − 1)/2, (h − 1)/2)`` in 0-based index coordinates, so a quarter turn maps the
pixel grid onto itself and :func:`rotate_to_tilt_axis_y` does it exactly with
``numpy.rot90``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "TiltAlignment",
    "align_image",
    "align_stack",
    "border_mean",
    "border_median",
    "quarter_turns",
    "rotate_to_tilt_axis_y",
    "rotated_shape_yx",
    "rotation_matrix_xy",
]

_QUARTER_TOL_DEG = 1e-9


def rotation_matrix_xy(angle_deg: float) -> np.ndarray:
    """``(2, 2)`` counter-clockwise rotation of ``(x, y)`` column vectors by ``angle_deg``."""
    theta = math.radians(angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def quarter_turns(angle_deg: float) -> int | None:
    """``k`` in 0..3 when ``angle_deg`` is ``k · 90°`` (modulo 360°), else None."""
    turns = angle_deg / 90.0
    k = round(turns)
    if abs(turns - k) * 90.0 > _QUARTER_TOL_DEG:
        return None
    return int(k) % 4


def _parity_reference(shape_yx: tuple[int, int], angle_deg: float) -> tuple[int, int]:
    """The shape a quarter turn nearest to ``angle_deg`` gives: (h, w) or (w, h)."""
    return shape_yx if round(angle_deg / 90.0) % 2 == 0 else (shape_yx[1], shape_yx[0])


def rotated_shape_yx(shape_yx: Sequence[int], angles_deg: Sequence[float]) -> tuple[int, int]:
    """Smallest ``(h', w')`` that holds the image rotated by each of ``angles_deg``.

    The bounding box of the rotated ``h × w`` rectangle, the largest over the angles,
    rounded up; each side then has the parity of the quarter turn nearest to the
    first angle (``(h, w)`` near 0°/180°, ``(w, h)`` near ±90°) so the centres stay
    on the same half-pixel grid and a quarter turn gives exactly ``(w, h)``.
    """
    h, w = (int(n) for n in shape_yx)
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.size == 0:
        raise ValueError("rotated_shape_yx needs at least one angle")
    theta = np.radians(angles)
    c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    height = float(np.max(s * w + c * h))
    width = float(np.max(c * w + s * h))
    box = [math.ceil(height - 1e-6), math.ceil(width - 1e-6)]
    reference = _parity_reference((h, w), float(angles[0]))
    return tuple(n + (n - r) % 2 for n, r in zip(box, reference, strict=True))  # type: ignore[return-value]


def border_mean(image: np.ndarray) -> float:
    """Mean of the outermost ring of pixels of a ``(h, w)`` image (its background level)."""
    if image.ndim != 2 or min(image.shape) < 1:
        raise ValueError(f"border_mean needs a non-empty 2D image, got shape {image.shape}")
    ring = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(ring.mean(dtype=np.float64))


def border_median(image: np.ndarray) -> float:
    """Median of the outermost ring of pixels of a ``(h, w)`` image: its background level.

    Robust to an object that reaches the border over less than half of the ring (a rod
    crossing the field, a grid bar), where :func:`border_mean` is pulled towards it.
    """
    if image.ndim != 2 or min(image.shape) < 1:
        raise ValueError(f"border_median needs a non-empty 2D image, got shape {image.shape}")
    ring = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(np.median(ring))


def align_image(
    image: np.ndarray,
    matrix_xy: np.ndarray,
    shift_xy_px: Sequence[float],
    *,
    out_shape_yx: Sequence[int],
    order: int = 3,
    fill: float | None = None,
) -> np.ndarray:
    """Resample one raw image into the aligned frame: ``out(a) = image(M·a + s)``.

    Parameters
    ----------
    image : `(h, w)` raw image
    matrix_xy : `(2, 2)` matrix ``M`` acting on ``(x, y)`` (see the module docstring)
    shift_xy_px : ``s = (sx, sy)`` in raw pixels
    out_shape_yx : ``(h', w')`` of the aligned image
    order : spline order of the interpolation (3 = cubic B-spline; 1 = linear)
    fill : value outside the raw image; default :func:`border_mean` of ``image``

    Returns
    -------
    `(h', w')` float32 array
    """
    matrix = np.asarray(matrix_xy, dtype=np.float64)
    if matrix.shape != (2, 2):
        raise ValueError(f"matrix_xy must be 2x2, got shape {matrix.shape}")
    shift = np.asarray(shift_xy_px, dtype=np.float64)
    h_out, w_out = (int(n) for n in out_shape_yx)
    centre_in = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0  # (row, col)
    centre_out = (np.array([h_out, w_out], dtype=np.float64) - 1.0) / 2.0
    matrix_rc = matrix[::-1, ::-1]  # the same map on (row, col) = (y, x)
    offset_rc = centre_in + shift[::-1] - matrix_rc @ centre_out
    value = border_mean(image) if fill is None else float(fill)
    out = ndimage.affine_transform(
        np.asarray(image, dtype=np.float64), matrix_rc, offset=offset_rc, output_shape=(h_out, w_out),
        order=order, mode="grid-constant", cval=value, prefilter=order > 1,
    )
    return out.astype(np.float32)


@dataclass(frozen=True)
class TiltAlignment:
    """An in-plane alignment of a raw tilt series (the operator form of the module docstring).

    Attributes
    ----------
    matrices_xy : `(n, 2, 2)` float64, ``M`` for each kept image
    shifts_xy_px : `(n, 2)` float64, ``s`` for each kept image (raw pixels)
    raw_indices : `(n,)` int, the image of the raw stack each row aligns (excluded views are absent)
    tilt_angles_deg : `(n,)` float64, or None when the angles come from the angles file
    source : str
        What the alignment was read from (file and format), for records and messages.
    """

    matrices_xy: np.ndarray
    shifts_xy_px: np.ndarray
    raw_indices: np.ndarray
    tilt_angles_deg: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.raw_indices)
        if np.shape(self.matrices_xy) != (n, 2, 2) or np.shape(self.shifts_xy_px) != (n, 2):
            raise ValueError(
                f"alignment {self.source}: {n} views need (n, 2, 2) matrices and (n, 2) shifts, got "
                f"{np.shape(self.matrices_xy)} and {np.shape(self.shifts_xy_px)}")
        if self.tilt_angles_deg is not None and np.shape(self.tilt_angles_deg) != (n,):
            raise ValueError(f"alignment {self.source}: {n} views but {np.size(self.tilt_angles_deg)} tilt angles")
        if len(set(np.asarray(self.raw_indices).tolist())) != n:
            raise ValueError(f"alignment {self.source}: a raw image is aligned twice")

    @classmethod
    def tilt_axis_only(cls, tilt_axis_deg: float, n_images: int) -> TiltAlignment:
        """Rotate every image so that a tilt axis at ``tilt_axis_deg`` comes onto y; no shifts."""
        matrices = np.repeat(rotation_matrix_xy(tilt_axis_deg)[None], n_images, axis=0)
        return cls(matrices, np.zeros((n_images, 2)), np.arange(n_images), None, f"tilt_axis_deg {tilt_axis_deg:g}")

    @property
    def rotations_deg(self) -> np.ndarray:
        """`(n,)` rotation angle of each ``M`` (its stretch ignored), degrees in (−180, 180]."""
        m = np.asarray(self.matrices_xy)
        return np.degrees(np.arctan2(m[:, 1, 0] - m[:, 0, 1], m[:, 0, 0] + m[:, 1, 1]))

    def aligned_shape_yx(self, raw_shape_yx: Sequence[int]) -> tuple[int, int]:
        """The aligned image size that loses no raw pixel to the rotation (:func:`rotated_shape_yx`)."""
        return rotated_shape_yx(raw_shape_yx, self.rotations_deg)


def align_stack(
    stack: np.ndarray,
    alignment: TiltAlignment,
    *,
    out_shape_yx: Sequence[int] | None = None,
    order: int = 3,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Align the kept images of a raw ``(n_raw, h, w)`` stack, one interpolation each.

    ``out`` (e.g. a memory-mapped output file) of shape ``(n, h', w')`` receives the
    images one by one, so only one raw and one aligned image are in memory at a time
    beyond the arrays passed in. ``out_shape_yx`` defaults to
    :meth:`TiltAlignment.aligned_shape_yx`. Outside the raw image each aligned
    image is filled with its raw image's :func:`border_mean`.
    """
    if stack.ndim != 3:
        raise ValueError(f"align_stack needs a (n, h, w) stack, got shape {stack.shape}")
    indices = np.asarray(alignment.raw_indices)
    if indices.size and (indices.min() < 0 or indices.max() >= stack.shape[0]):
        raise ValueError(f"alignment {alignment.source} refers to image {int(indices.max()) + 1} of a stack of "
                         f"{stack.shape[0]} images")
    shape = tuple(out_shape_yx) if out_shape_yx is not None else alignment.aligned_shape_yx(stack.shape[1:])
    if out is None:
        out = np.empty((indices.size, *shape), dtype=np.float32)
    elif out.shape != (indices.size, *shape):
        raise ValueError(f"out has shape {out.shape}, expected {(indices.size, *shape)}")
    for row, raw in enumerate(indices):
        out[row] = align_image(np.asarray(stack[raw]), alignment.matrices_xy[row], alignment.shifts_xy_px[row],
                               out_shape_yx=shape, order=order)
    return out


def rotate_to_tilt_axis_y(stack: np.ndarray, tilt_axis_deg: float, *, order: int = 3) -> np.ndarray:
    """Rotate each image of a ``(n, h, w)`` stack so its tilt axis (at ``tilt_axis_deg``) lies on y.

    0°, ±90° and ±180° are exact (``numpy.rot90``: a transpose and/or flips, no
    interpolation, any dtype kept); any other angle is a cubic B-spline rotation into
    the size of :func:`rotated_shape_yx`, so no pixel of the raw image is lost.
    """
    if not -180.0 <= tilt_axis_deg <= 180.0:
        raise ValueError(f"tilt_axis_deg {tilt_axis_deg} must lie within [-180, 180]")
    k = quarter_turns(tilt_axis_deg)
    if k is not None:
        return np.ascontiguousarray(np.rot90(stack, k, axes=(1, 2)))
    return align_stack(stack, TiltAlignment.tilt_axis_only(tilt_axis_deg, stack.shape[0]), order=order)
