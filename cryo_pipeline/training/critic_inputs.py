"""What the CryoGEN energy model E_φ sees: real and fake samples, and optional Fourier features.

The paper pairs real = y + ε with fake = T_M(R(x̂)). Even for a perfect generator the
two differ in ways the generator cannot change: ε puts noise into the crop's missing
region that T_M(·) never has, and a crop of a *globally* wedged tomogram is not wedged on
the crop's own FFT grid (the crop softens the wedge's edge) while T_M(·) on the crop is
sharp and wraps around the crop's borders. A critic trained on same-content pairs with
no generator separates them (held-out accuracy > 80 %,
``tests/training/test_critic_shortcut.py``). ``"matched"`` (the default) sends both
through the same operator with matched noise and shows the critic only the central
half of each edge, where the crop-border effects of T_M have died away::

    real = C(T_M(y + ε)),   fake = C(T_M(R(x̂) + ε′)),   ε, ε′ ~ N(0, s²) independent, one s per step

(C = central ``(c/2)³`` crop), so only content the generator controls separates them
(same test: ≤ 60 %). Through T_M alone, without C, the border effects still give the
critic most of the shortcut. ``"paper"`` keeps the printed pairing, for comparison.
"""

from __future__ import annotations

import torch

from cryo_pipeline.ops.rotations import rotate_volume
from cryo_pipeline.training.losses import apply_rfft_mask

CRITIC_INPUTS = ("matched", "fill", "paper")
CRITIC_FEATURES = ("volume", "volume+amplitude")
_DIMS = (-3, -2, -1)


def gaussian_noise(like: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """N(0, level²) noise shaped like ``like`` (drawn on the CPU from ``generator``)."""
    return torch.randn(like.shape, generator=generator).to(like.device, like.dtype) * level


def central_half(volumes: torch.Tensor) -> torch.Tensor:
    """The central ``(c/2)³`` of ``(..., c, c, c)`` volumes (a margin of ⌊c/4⌋ on every side)."""
    m = volumes.shape[-1] // 4
    return volumes[..., m : volumes.shape[-3] - m, m : volumes.shape[-2] - m, m : volumes.shape[-1] - m]


def critic_samples(
    measured: torch.Tensor,
    generated: torch.Tensor,
    mask: torch.Tensor,
    rotation: int,
    *,
    level: float,
    generator: torch.Generator,
    construction: str = "matched",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and fake samples of one critic step.

    Parameters
    ----------
    measured : torch.Tensor
        ``(b, 1, c, c, c)`` crops y of the wedged tomogram.
    generated : torch.Tensor
        ``(b, 1, c, c, c)`` x̂, the generator's output for them (keeps its graph).
    mask : torch.Tensor
        ``(c, c, c//2 + 1)`` measured-region mask on the crop's rfft grid (T_M).
    rotation : int
        Index R into :data:`~cryo_pipeline.ops.rotations.WEDGE_ROTATIONS`.
    level : float
        Noise standard deviation s, the same for real and fake ("matched").
    construction : str
        ``"matched"``: C(T_M(y + ε)) against C(T_M(R(x̂) + ε′)).
        ``"fill"``: only the generated part, through Q(v) = T_M(R(v − T_M(v))), which
        rotates what T_M removes from v into view: C(Q(R⁻¹(y) + ε)) against C(Q(x̂ + ε′)).
        The real sample is the measured data in the same Fourier band the fake shows of
        x̂'s missing region, so θ's adversarial gradient reaches only that region (the one
        ``keep_measured`` keeps at inference).
        ``"paper"``: y + ε against T_M(R(x̂)), whole crops (the shortcut, for comparison).

    Returns
    -------
    tuple of torch.Tensor
        ``(real, fake)``: ``(b, 1, c/2, c/2, c/2)``, or ``(b, 1, c, c, c)`` for
        ``"paper"``; ``fake`` is differentiable in ``generated``.
    """
    if construction == "matched":
        real = apply_rfft_mask(measured + gaussian_noise(measured, level, generator), mask)
        fake = apply_rfft_mask(rotate_volume(generated, rotation) + gaussian_noise(generated, level, generator), mask)
        return central_half(real), central_half(fake)
    if construction == "fill":
        def rotated_missing(v: torch.Tensor) -> torch.Tensor:  # Q
            return apply_rfft_mask(rotate_volume(v - apply_rfft_mask(v, mask), rotation), mask)

        real = rotated_missing(rotate_volume(measured, rotation, inverse=True)
                               + gaussian_noise(measured, level, generator))
        fake = rotated_missing(generated + gaussian_noise(generated, level, generator))
        return central_half(real), central_half(fake)
    if construction == "paper":
        return (measured + gaussian_noise(measured, level, generator),
                apply_rfft_mask(rotate_volume(generated, rotation), mask))
    raise ValueError(f"unknown critic input {construction!r}; choose one of {', '.join(CRITIC_INPUTS)}")


def critic_channels(features: str) -> int:
    """Input channels of E_φ for ``features``."""
    if features not in CRITIC_FEATURES:
        raise ValueError(f"unknown critic features {features!r}; choose one of {', '.join(CRITIC_FEATURES)}")
    return 1 if features == "volume" else 2


def critic_view(volumes: torch.Tensor, features: str) -> torch.Tensor:
    """The tensor E_φ reads: the volume, or the volume and its log Fourier amplitude.

    The amplitude channel is log(1 + |F(v)|/√N), centred (fftshift), on the same
    ``(c, c, c)`` grid, so the critic sees directly where power is missing; it is
    differentiable (|F| is taken as √(|F|² + 10⁻¹²)).

    Parameters
    ----------
    volumes : torch.Tensor
        ``(b, 1, c, c, c)``.

    Returns
    -------
    torch.Tensor
        ``(b, critic_channels(features), c, c, c)``.
    """
    if critic_channels(features) == 1:
        return volumes
    spectrum = torch.fft.fftn(volumes.float(), dim=_DIMS)
    amplitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-12) / volumes[0, 0].numel() ** 0.5
    amplitude = torch.fft.fftshift(torch.log1p(amplitude), dim=_DIMS)
    return torch.cat([volumes, amplitude.to(volumes.dtype)], dim=1)
