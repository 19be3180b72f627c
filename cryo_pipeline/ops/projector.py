"""Parallel-beam projector about the y (tilt) axis, and its adjoint.

Every y-row of a ``(d, h, w)`` volume is the same 2D parallel-beam problem in the
(z, x) plane, so the projector is one sparse matrix ``A`` of shape
``(n_tilts * n_det, d * w)`` applied to all ``h`` rows at once (a sparse × dense
matmul). Geometry follows DESIGN.md §1: at tilt θ the detector coordinate of the
voxel centre (z, x) (both measured from the volume centre) is
u = x·cos θ − z·sin θ, with detector pixel ``j`` centred at ``j − (n_det − 1)/2``.

Discretisation: each voxel is a unit square whose projection onto the detector is
the exact trapezoid footprint (a box of width |cos θ| convolved with one of width
|sin θ|, unit area); ``A[(i, j), (z, x)]`` is the integral of that footprint over
detector pixel ``j``. So a projection is the line integral in voxel units, mass is
conserved (each column of ``A`` sums to 1 per tilt), and the adjoint is an exact
footprint-weighted back-projection. The adjoint is ``Aᵀ`` itself, so
⟨A x, y⟩ = ⟨x, Aᵀ y⟩ holds to rounding.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.sparse
import torch

_MIN_BOX_WIDTH = 1e-6  # below this the trapezoid is a box (0 and 90 deg)


def _ramp_integral(t: np.ndarray) -> np.ndarray:
    return 0.5 * np.maximum(t, 0.0) ** 2


def _trapezoid_cdf(t: np.ndarray, width_a: float, width_b: float) -> np.ndarray:
    """CDF of the unit-area convolution of boxes of widths a ≥ b centred at 0."""
    if width_b < _MIN_BOX_WIDTH:  # 0 or 90 deg: the footprint is a box of width a
        return np.clip(t / width_a + 0.5, 0.0, 1.0)
    half_sum = 0.5 * (width_a + width_b)
    half_diff = 0.5 * (width_a - width_b)
    return (
        _ramp_integral(t + half_sum)
        - _ramp_integral(t + half_diff)
        - _ramp_integral(t - half_diff)
        + _ramp_integral(t - half_sum)
    ) / (width_a * width_b)


def projection_matrix_2d(
    shape_zx: tuple[int, int], angles_deg: tuple[float, ...], *, detector_width_px: int
) -> scipy.sparse.csr_matrix:
    """Sparse footprint projection matrix of the (z, x) plane.

    Parameters
    ----------
    shape_zx : tuple of int
        ``(d, w)`` plane shape.
    angles_deg : tuple of float
        Tilt angles, one per projection.
    detector_width_px : int
        Number of detector pixels ``n_det``.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_tilts * n_det, d * w)`` float32; row ``i * n_det + j``, column ``z * w + x``.
    """
    d, w = shape_zx
    z_c = np.arange(d, dtype=np.float64) - (d - 1) / 2.0
    x_c = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    zz, xx = np.meshgrid(z_c, x_c, indexing="ij")
    zz, xx = zz.ravel(), xx.ravel()
    columns = np.arange(d * w, dtype=np.int64)
    det_centre = (detector_width_px - 1) / 2.0
    rows_all, cols_all, vals_all = [], [], []
    for i, angle in enumerate(angles_deg):
        theta = np.radians(float(angle))
        c, s = np.cos(theta), np.sin(theta)
        width_a = max(abs(c), abs(s))
        width_b = min(abs(c), abs(s))
        u = xx * c - zz * s + det_centre  # float detector index of each voxel centre
        nearest = np.rint(u).astype(np.int64)
        for offset in (-1, 0, 1):
            j = nearest + offset
            lo = j - 0.5 - u
            weight = _trapezoid_cdf(lo + 1.0, width_a, width_b) - _trapezoid_cdf(lo, width_a, width_b)
            keep = (j >= 0) & (j < detector_width_px) & (weight > 1e-9)
            rows_all.append(i * detector_width_px + j[keep])
            cols_all.append(columns[keep])
            vals_all.append(weight[keep])
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(vals_all).astype(np.float32), (np.concatenate(rows_all), np.concatenate(cols_all))),
        shape=(len(angles_deg) * detector_width_px, d * w),
    )
    matrix.sum_duplicates()
    return matrix


def _to_torch_csr(matrix: scipy.sparse.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            device=device,
        )


@functools.lru_cache(maxsize=8)
def _cached_operators(
    shape_zx: tuple[int, int], angles_deg: tuple[float, ...], detector_width_px: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    matrix = projection_matrix_2d(shape_zx, angles_deg, detector_width_px=detector_width_px)
    dev = torch.device(device)
    return _to_torch_csr(matrix, dev), _to_torch_csr(matrix.T.tocsr(), dev)


class _SparseMatmul(torch.autograd.Function):
    """y = A x with dA-free backward x̄ = Aᵀ ȳ (A fixed, not differentiated)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.a_t = a_t
        ctx.a = a
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return a @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return ctx.a_t @ grad.contiguous(), None, None


class ParallelBeamProjector:
    """Forward projector and adjoint for a fixed volume shape and tilt list.

    Parameters
    ----------
    volume_shape_zyx : tuple of int
        ``(d, h, w)``; ``h`` may differ between calls (any number of y-rows).
    angles_deg : sequence of float
        Tilt angles, one per projection image.
    detector_width_px : int, optional
        Detector width ``n_det``; defaults to ``w``.
    device : str or torch.device, optional
        Where the sparse operator lives (default CPU).
    """

    def __init__(
        self,
        volume_shape_zyx: tuple[int, int, int],
        angles_deg,
        *,
        detector_width_px: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        d, _, w = (int(n) for n in volume_shape_zyx)
        if d < 1 or w < 1:
            raise ValueError(f"volume shape {tuple(volume_shape_zyx)} must be positive")
        angles = tuple(float(a) for a in np.asarray(angles_deg, dtype=np.float64).ravel())
        if not angles:
            raise ValueError("angles_deg is empty: need at least one tilt angle")
        self.shape_zx = (d, w)
        self.angles_deg = angles
        self.detector_width_px = int(detector_width_px or w)
        self.device = torch.device(device)
        self._a, self._a_t = _cached_operators(self.shape_zx, angles, self.detector_width_px, str(self.device))

    @property
    def n_tilts(self) -> int:
        """Number of projection images."""
        return len(self.angles_deg)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """Project a volume.

        Parameters
        ----------
        volume : torch.Tensor
            ``(d, h, w)`` volume (float32 or float64).

        Returns
        -------
        torch.Tensor
            ``(n_tilts, h, n_det)`` tilt series; differentiable w.r.t. ``volume``.
        """
        d, h, w = volume.shape
        if (d, w) != self.shape_zx:
            raise ValueError(f"volume (d, w) = {(d, w)} does not match the projector's {self.shape_zx}")
        a, a_t = self._operators_for(volume.dtype)
        columns = volume.permute(0, 2, 1).reshape(d * w, h).contiguous()
        out = _SparseMatmul.apply(columns, a, a_t)
        return out.reshape(self.n_tilts, self.detector_width_px, h).permute(0, 2, 1).contiguous()

    def adjoint(self, tilt_series: torch.Tensor) -> torch.Tensor:
        """Back-project (apply Aᵀ, no filtering).

        Parameters
        ----------
        tilt_series : torch.Tensor
            ``(n_tilts, h, n_det)``.

        Returns
        -------
        torch.Tensor
            ``(d, h, w)`` volume; differentiable w.r.t. ``tilt_series``.
        """
        n, h, n_det = tilt_series.shape
        if (n, n_det) != (self.n_tilts, self.detector_width_px):
            raise ValueError(
                f"tilt series (n_tilts, n_det) = {(n, n_det)} does not match the projector's "
                f"{(self.n_tilts, self.detector_width_px)}"
            )
        a, a_t = self._operators_for(tilt_series.dtype)
        rows = tilt_series.permute(0, 2, 1).reshape(n * n_det, h).contiguous()
        out = _SparseMatmul.apply(rows, a_t, a)
        d, w = self.shape_zx
        return out.reshape(d, w, h).permute(0, 2, 1).contiguous()

    def _operators_for(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if dtype == torch.float32:
            return self._a, self._a_t
        return self._a.to(dtype), self._a_t.to(dtype)


def _as_tensor(array) -> tuple[torch.Tensor, bool]:
    if isinstance(array, torch.Tensor):
        return array, False
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), True


def project_3d(volume, angles_deg, *, detector_width_px: int | None = None):
    """Project a ``(d, h, w)`` volume (numpy or torch) to ``(n_tilts, h, n_det)``."""
    tensor, was_numpy = _as_tensor(volume)
    projector = ParallelBeamProjector(
        tuple(tensor.shape), angles_deg, detector_width_px=detector_width_px, device=tensor.device
    )
    out = projector.forward(tensor)
    return out.numpy() if was_numpy else out


def backproject_3d(tilt_series, angles_deg, *, volume_shape_zyx: tuple[int, int, int]):
    """Apply the adjoint to a ``(n_tilts, h, n_det)`` tilt series (numpy or torch)."""
    tensor, was_numpy = _as_tensor(tilt_series)
    d, h, w = volume_shape_zyx
    if tensor.shape[1] != h:
        raise ValueError(f"tilt series height {tensor.shape[1]} does not match volume height {h}")
    projector = ParallelBeamProjector(
        (d, h, w), angles_deg, detector_width_px=tensor.shape[2], device=tensor.device
    )
    out = projector.adjoint(tensor)
    return out.numpy() if was_numpy else out
