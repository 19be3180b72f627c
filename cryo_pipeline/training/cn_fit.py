"""Fit a coordinate network to the tilt-series rows of one y-slab (the CN paper's Eq. 1).

The network ``G`` maps global coordinates to density; its volume over the slab's
window of rows is ``v = s · G(C)`` with a fixed amplitude ``s = rms(p) / d`` (so the
network's output is O(1) whatever the data's units: a constant volume c projects to
≈ c·d). The loss is ``mean |A v − p| / rms(p)`` (``l1``, the paper's choice) or the
squared version (``l2``), plus ``λ · TV(v / s)`` (squared finite differences per
voxel, as the CN code; λ = 0 by default), where ``A`` is the shared parallel-beam
projector (:class:`cryo_pipeline.ops.projector.ParallelBeamProjector`) applied to the
slab's rows.

Optimiser: Adam; the learning rate decays log-linearly from ``lr_start`` to
``lr_end`` over the iterations (paper: seed 1e-3 → 1e-4 over 2000, every other slab
1e-4 → 1e-5 over 400). Optionally each iteration uses a random subset of the window's
rows (``rows_per_step``: the rows are independent 2D problems, so this is a plain
stochastic-gradient minibatch; it makes CPU fits affordable). bf16 autocast for the
network on CUDA (the sparse projection stays float32).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from cryo_pipeline.ops.projector import ParallelBeamProjector

log = logging.getLogger(__name__)

__all__ = ["FitSettings", "evaluate_window", "fit_window", "log_decay_lr", "value_scale", "volume_coordinates"]

_EVAL_BATCH = 2**18  # coordinates per forward pass when evaluating a window


@dataclass(frozen=True)
class FitSettings:
    """One fit's optimisation settings.

    Attributes
    ----------
    iterations : int
        Optimiser steps.
    lr_start, lr_end : float
        Log-linear learning-rate decay from ``lr_start`` (step 0) to ``lr_end`` (last step).
    loss : {"l1", "l2"}
    tv_weight : float
        λ of the total-variation term (0 = off).
    rows_per_step : int or None
        Random rows of the window per step; None = all rows (the paper).
    seed : int
        Seed of the row sampling.
    """

    iterations: int
    lr_start: float
    lr_end: float
    loss: str = "l1"
    tv_weight: float = 0.0
    rows_per_step: int | None = None
    seed: int = 0


def log_decay_lr(step: int, n_steps: int, *, lr_start: float, lr_end: float) -> float:
    """``lr_start · (lr_end / lr_start)^(step / (n_steps − 1))``: log-linear from start to end."""
    if n_steps <= 1:
        return float(lr_start)
    return float(lr_start * (lr_end / lr_start) ** (step / (n_steps - 1)))


def volume_coordinates(shape_zyx: tuple[int, int, int], rows: np.ndarray | torch.Tensor, *,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """Global-frame coordinates of the voxels ``(z, rows, x)`` of a `(d, H, w)` volume.

    Each axis is centred and divided by the same ``max(d, H, w) / 2`` (isotropic: the
    volume spans [−1, 1] along its longest axis), so a slab's coordinates do not depend
    on which slab it is.

    Returns
    -------
    torch.Tensor
        `(d · len(rows) · w, 3)` float32 (z, y, x), in ``(z, row, x)`` C order.
    """
    d, h, w = (int(n) for n in shape_zyx)
    scale = max(d, h, w) / 2.0
    z = (torch.arange(d, dtype=torch.float32, device=device) - (d - 1) / 2.0) / scale
    y = (torch.as_tensor(rows, dtype=torch.float32, device=device) - (h - 1) / 2.0) / scale
    x = (torch.arange(w, dtype=torch.float32, device=device) - (w - 1) / 2.0) / scale
    grid = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)


def value_scale(tilt_series: np.ndarray | torch.Tensor, *, depth_px: int) -> float:
    """The amplitude ``s = rms(p) / d`` that maps network outputs to volume values."""
    rms = float(torch.as_tensor(tilt_series, dtype=torch.float64).square().mean().sqrt())
    if not math.isfinite(rms) or rms <= 0:
        raise ValueError(f"the tilt series has rms {rms}: it is empty, all zero or not finite")
    return rms / int(depth_px)


def _network_volume(model: torch.nn.Module, shape_zyx, rows: torch.Tensor, *, scale: float,
                    amp: bool) -> torch.Tensor:
    d, _, w = shape_zyx
    coords = volume_coordinates(shape_zyx, rows, device=rows.device)
    with torch.autocast(device_type=rows.device.type, dtype=torch.bfloat16, enabled=amp):
        values = model(coords)
    return (values.float() * scale).reshape(d, rows.numel(), w)


def _total_variation(volume: torch.Tensor, *, along_y: bool) -> torch.Tensor:
    terms = [volume.diff(dim=0).square().sum(), volume.diff(dim=2).square().sum()]
    if along_y and volume.shape[1] > 1:
        terms.append(volume.diff(dim=1).square().sum())
    return sum(terms) / volume.numel()


def fit_window(
    model: torch.nn.Module,
    measured: torch.Tensor,
    projector: ParallelBeamProjector,
    *,
    volume_shape_zyx: tuple[int, int, int],
    window_y: tuple[int, int],
    settings: FitSettings,
    scale: float,
    desc: str = "fit",
    on_step: Callable[[int, float], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    loss_rms: float | None = None,
) -> list[float]:
    """Fit ``model`` so that ``A (s · G)`` matches ``measured`` over the window's rows.

    Parameters
    ----------
    model : torch.nn.Module
        Coordinate network (:class:`cryo_pipeline.models.siren.Siren`), on the projector's device.
    measured : `(n_tilts, T, n_det)` tensor
        The tilt-series rows ``window_y[0]:window_y[1]``, float32.
    projector : ParallelBeamProjector
        For the volume's ``(d, w)`` plane and the tilts of ``measured``.
    volume_shape_zyx : (d, H, w)
        The whole volume (sets the coordinate frame).
    window_y : (start, stop)
        Global rows of the window, ``stop − start = T``.
    settings : FitSettings
    scale : float
        Amplitude ``s`` (:func:`value_scale`).
    on_step : callable, optional
        ``on_step(step, loss)`` after every step (e.g. a fault injector or a monitor).
    optimizer : torch.optim.Optimizer, optional
        Adam over ``model``'s parameters whose moments carry on from an earlier fit (the
        seed's); its learning rate is overwritten by the schedule. None = a fresh Adam.
    loss_rms : float, optional
        The loss is divided by this rms (squared for ``l2``): pass the whole tilt series'
        so that every slab's loss, and so its gradients, are on the seed's scale (Adam
        moments carried over stay valid). None = the rms of ``measured``.

    Returns
    -------
    list of float
        The loss of every step.

    Raises
    ------
    FloatingPointError
        The loss became NaN/Inf (names the step).
    """
    start, stop = (int(v) for v in window_y)
    if measured.shape[1] != stop - start:
        raise ValueError(f"measured rows ({measured.shape[1]}) do not match the window {start}..{stop}")
    device = measured.device
    rows_all = torch.arange(start, stop, device=device)
    rms = float(measured.square().mean().sqrt()) if loss_rms is None else float(loss_rms)
    if not math.isfinite(rms) or rms <= 0:
        raise ValueError(f"tilt-series rows {start}..{stop} have rms {rms}: nothing to fit")
    amp = device.type == "cuda"
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr_start)
    generator = torch.Generator().manual_seed(int(settings.seed))
    n_rows = stop - start
    subset = settings.rows_per_step is not None and settings.rows_per_step < n_rows
    history: list[float] = []
    steps = tqdm(range(settings.iterations), desc=desc, unit="it", mininterval=10.0, leave=False)
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = log_decay_lr(step, settings.iterations, lr_start=settings.lr_start, lr_end=settings.lr_end)
        if subset:
            local = torch.randperm(n_rows, generator=generator)[: settings.rows_per_step].sort().values.to(device)
        else:
            local = torch.arange(n_rows, device=device)
        volume = _network_volume(model, volume_shape_zyx, rows_all[local], scale=scale, amp=amp)
        residual = projector.forward(volume) - measured[:, local, :]
        loss = residual.abs().mean() / rms if settings.loss == "l1" else residual.square().mean() / rms**2
        if settings.tv_weight > 0:
            loss = loss + settings.tv_weight * _total_variation(volume / scale, along_y=not subset)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"{desc}: the loss became {value} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(value)
        if on_step is not None:
            on_step(step, value)
        if step % max(1, settings.iterations // 10) == 0 or step == settings.iterations - 1:
            log.info("%s: step %d/%d loss %.5g lr %.3g", desc, step + 1, settings.iterations, value,
                     optimizer.param_groups[0]["lr"])
    return history


@torch.no_grad()
def evaluate_window(model: torch.nn.Module, *, volume_shape_zyx: tuple[int, int, int], window_y: tuple[int, int],
                    scale: float, device: str | torch.device = "cpu") -> np.ndarray:
    """The network's volume over the window's rows.

    Returns
    -------
    numpy.ndarray
        `(d, T, w)` float32 in the data's units.
    """
    d, _, w = (int(n) for n in volume_shape_zyx)
    start, stop = (int(v) for v in window_y)
    out = np.empty((d, stop - start, w), dtype=np.float32)
    rows_per_batch = max(1, _EVAL_BATCH // (d * w))
    for lo in range(start, stop, rows_per_batch):
        rows = torch.arange(lo, min(stop, lo + rows_per_batch), device=device)
        block = _network_volume(model, volume_shape_zyx, rows, scale=scale, amp=False)
        out[:, lo - start : lo - start + rows.numel(), :] = block.cpu().numpy()
    return out
