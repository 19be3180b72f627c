"""Learning-rate and consistency-weight schedules (CryoGEN A.6)."""

from __future__ import annotations


def warmup_linear_decay(step: int, *, total_steps: int, warmup_fraction: float) -> float:
    """LR multiplier: linear warm-up over the first ``warmup_fraction`` of steps, then linear decay.

    Returns a factor in (0, 1]; it reaches 1 at the end of warm-up and 1/(remaining) near
    the end (never exactly 0, so the last step still learns).
    """
    warmup = max(1, int(round(warmup_fraction * total_steps)))
    if step < warmup:
        return (step + 1) / warmup
    remaining = max(1, total_steps - warmup)
    return max(1.0 - (step - warmup) / remaining, 1.0 / remaining)


def consistency_weight(
    step: int, *, steps_per_epoch: int, total_steps: int, start: float, final: float
) -> float:
    """λ: constant during the first epoch, then linear from ``start`` to ``final`` at the last step."""
    if step < steps_per_epoch or total_steps <= steps_per_epoch:
        return start
    progress = (step - steps_per_epoch) / max(1, total_steps - 1 - steps_per_epoch)
    return start + (final - start) * min(1.0, progress)


def adversarial_weight(lam: float, *, lam_start: float, lam_final: float, start: float, final: float) -> float:
    """w_adv that rises as λ decays: ``start`` while λ = ``lam_start``, ``final`` at ``lam_final``.

    Linear in λ between the two (so it follows λ's schedule: constant in the first epoch,
    then linear); with a constant λ (``lam_start == lam_final``) it is ``final``.
    """
    if lam_start == lam_final:
        return final
    progress = min(1.0, max(0.0, (lam_start - lam) / (lam_start - lam_final)))
    return start + (final - start) * progress
