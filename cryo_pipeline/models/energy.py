"""CryoGEN energy model E_φ (the GAN discriminator, paper Appendix A.6).

Four 3×3×3 conv layers (stride 1 for the first, 2 from the second on, each followed
by LeakyReLU(0.2)), adaptive average pooling to 1³, then three fully connected layers
with ReLU between them and one scalar per sample. The output is an unbounded real
number (a logit / energy): the adversarial losses (BCE-with-logits, hinge, WGAN-GP)
in :mod:`cryo_pipeline.training` decide how it is read, so no final activation is
applied here. Because of the global pooling any cube size works (≥ 16 is sensible:
the three stride-2 convs leave at least 2³ voxels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = ["EnergyModel3d"]


class EnergyModel3d(nn.Module):
    """3D conv energy model: `(b, c, d, h, w)` → `(b,)`.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for tomograms).
    channels : sequence of int
        Output channels of the conv layers (the paper's four by default).
    hidden : sequence of int
        Widths of the hidden fully connected layers; a final layer maps to 1, so the
        default gives three linear layers ``64 → 64 → 32 → 1``.
    spectral_norm : bool
        Wrap every conv and linear layer in
        :func:`torch.nn.utils.parametrizations.spectral_norm` (Lipschitz-bounded
        discriminator for hinge / BCE training).

    Notes
    -----
    The input gradient is available (and twice differentiable) for a WGAN-GP
    gradient penalty; no normalisation layer mixes samples of a batch.
    """

    def __init__(self, in_channels: int = 1, *, channels: Sequence[int] = (16, 32, 64, 64),
                 hidden: Sequence[int] = (64, 32), spectral_norm: bool = False) -> None:
        super().__init__()
        channels, hidden = tuple(int(c) for c in channels), tuple(int(h) for h in hidden)
        if not channels or min(channels) < 1 or (hidden and min(hidden) < 1) or in_channels < 1:
            raise ValueError(f"channels {channels} and hidden {hidden} must be positive (at least one conv layer)")
        wrap = _spectral_norm if spectral_norm else (lambda m: m)
        convs: list[nn.Module] = []
        for k, (c_in, c_out) in enumerate(zip((in_channels, *channels[:-1]), channels, strict=True)):
            convs += [wrap(nn.Conv3d(c_in, c_out, 3, stride=1 if k == 0 else 2, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*convs)
        self.pool = nn.AdaptiveAvgPool3d(1)
        widths = (channels[-1], *hidden, 1)
        fc: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            fc.append(wrap(nn.Linear(a, b)))
            if k < len(widths) - 2:
                fc.append(nn.ReLU())
        self.classifier = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(b, c, d, h, w)` → `(b,)` energies (logits)."""
        if x.ndim != 5:
            raise ValueError(f"expected a (batch, channels, d, h, w) tensor, got shape {tuple(x.shape)}")
        h = self.pool(self.features(x)).flatten(1)
        return self.classifier(h).squeeze(-1)
