"""SIREN coordinate network (Sitzmann et al. 2020), the CN paper's volume model.

An MLP from a 3D coordinate to one density value: ``n_hidden_layers`` layers of
``width`` units with sine activations ``sin(w0 · (W x + b))``, then a linear output.
SIREN initialisation: the first layer's weights are U(−1/n_in, 1/n_in), every later
sine layer's U(−√(6/n)/w0, √(6/n)/w0), so activations stay arcsine-distributed through
depth and the first layer's frequencies span up to ``w0`` radians per coordinate unit.

Optional Gaussian Fourier features (Tancik et al. 2020): the coordinate is first mapped
to ``[cos(2π B c), sin(2π B c)]`` with a fixed, seeded ``B ~ N(0, scale²)`` of
``(n_features, 3)``; the sine layers then start from those features.

Coordinates are in the global volume frame (:func:`cryo_pipeline.training.cn_fit.volume_coordinates`),
so networks of neighbouring slabs describe one function space and a slab's weights
are a good start for another.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierFeatures", "SOFTPLUS_BETA", "Siren", "SineLayer"]

SOFTPLUS_BETA = 5.0  # sharpness of the non-negative output


class SineLayer(nn.Module):
    """``sin(w0 · (W x + b))`` with SIREN initialisation.

    Parameters
    ----------
    in_features, out_features : int
    w0 : float
        Frequency factor (30 in the papers).
    first : bool
        First layer of the network: weights U(−1/n_in, 1/n_in); else U(±√(6/n_in)/w0).
    """

    def __init__(self, in_features: int, out_features: int, *, w0: float, first: bool) -> None:
        super().__init__()
        self.w0 = float(w0)
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / self.w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.sin(self.w0 * self.linear(x))


class FourierFeatures(nn.Module):
    """Fixed Gaussian random Fourier features: `(n, 3)` → `(n, 2·n_features)`.

    Parameters
    ----------
    n_features : int
        Number of random frequencies.
    scale : float
        Standard deviation of the frequencies (cycles per coordinate unit).
    seed : int
        Seed of the (non-trainable, saved with the weights) frequency matrix.
    """

    def __init__(self, n_features: int, *, scale: float, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("frequencies", torch.randn(int(n_features), 3, generator=generator) * float(scale))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:  # noqa: D102
        phase = 2.0 * math.pi * coords @ self.frequencies.T
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class Siren(nn.Module):
    """Coordinate → density MLP.

    Parameters
    ----------
    width : int
        Units per hidden layer (paper: 256).
    n_hidden_layers : int
        Sine layers (paper: 4).
    w0 : float
        SIREN frequency factor (paper: 30). Also used for the first layer after Fourier
        features.
    fourier_features : int
        0 = plain SIREN on the coordinates; > 0 = that many Gaussian Fourier features first.
    fourier_scale : float
        Standard deviation of the Fourier feature frequencies.
    nonnegative : bool
        Pass the output through ``softplus(β·x)/β`` with β = 5 (a smooth ReLU): the
        density can never be negative. Not in the CN paper; for densities ≥ 0 on a ~0
        background (phantoms, maps, dark-background tilt series) it removes the
        negative lobes that the missing wedge otherwise lets the fit trade against
        positive elongation (+8 dB on the CPU benchmark).
    seed : int
        Seed of the initial weights and the Fourier features (the same seed gives the
        same network).

    Notes
    -----
    Input `(n, 3)` coordinates (z, y, x) in the global frame; output `(n,)`.
    """

    def __init__(
        self,
        *,
        width: int = 256,
        n_hidden_layers: int = 4,
        w0: float = 30.0,
        fourier_features: int = 0,
        fourier_scale: float = 4.0,
        nonnegative: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.nonnegative = bool(nonnegative)
        if width < 1 or n_hidden_layers < 1:
            raise ValueError(f"Siren needs width >= 1 and n_hidden_layers >= 1, got {width}, {n_hidden_layers}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.encoding = (FourierFeatures(fourier_features, scale=fourier_scale, seed=seed)
                             if fourier_features > 0 else nn.Identity())
            n_in = 2 * fourier_features if fourier_features > 0 else 3
            layers = [SineLayer(n_in, width, w0=w0, first=True)]
            layers += [SineLayer(width, width, w0=w0, first=False) for _ in range(n_hidden_layers - 1)]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(width, 1)
            bound = math.sqrt(6.0 / width) / float(w0)
            with torch.no_grad():
                self.head.weight.uniform_(-bound, bound)
                self.head.bias.zero_()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.head(self.body(self.encoding(coords))).squeeze(-1)
        return nn.functional.softplus(out, beta=SOFTPLUS_BETA) if self.nonnegative else out
