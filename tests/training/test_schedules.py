"""Learning-rate and consistency-weight schedules (CryoGEN A.6, DESIGN.md §4)."""

from __future__ import annotations

import numpy as np
import pytest

from cryo_pipeline.training.schedules import adversarial_weight, consistency_weight, warmup_linear_decay


@pytest.mark.parametrize(("total", "fraction"), [(100, 0.1), (18, 0.1), (200, 0.25), (7, 0.5)])
def test_warmup_rises_linearly_to_one_then_decays_linearly_and_stays_positive(total, fraction):
    factors = np.array([warmup_linear_decay(s, total_steps=total, warmup_fraction=fraction) for s in range(total)])
    warmup = max(1, round(fraction * total))
    rise, decay = factors[:warmup], factors[warmup:]
    # warm-up: equal increments of 1/warmup, ending at exactly 1 on its last step
    np.testing.assert_allclose(np.diff(rise), 1.0 / warmup, atol=1e-12)
    assert rise[-1] == pytest.approx(1.0, abs=1e-12)
    assert factors.max() == pytest.approx(1.0, abs=1e-12)
    # after warm-up: from 1 (the decay's first step is still the peak), strictly decreasing by equal
    # steps, never reaching 0
    assert decay[0] == pytest.approx(1.0, abs=1e-12)
    steps = np.diff(decay)
    assert (steps < 0).all()
    np.testing.assert_allclose(steps, steps[0], atol=1e-12)
    assert factors.min() > 0
    assert factors[-1] == pytest.approx(1.0 / (total - warmup), rel=1e-12)


def test_no_warmup_starts_at_full_rate():
    factors = [warmup_linear_decay(s, total_steps=10, warmup_fraction=0.0) for s in range(10)]
    assert factors[0] == factors[1] == 1.0
    assert all(a > b > 0 for a, b in zip(factors[1:], factors[2:], strict=False))


@pytest.mark.parametrize(("start", "final"), [(1.0, 0.5), (2.0, 0.0), (0.5, 3.0)])
def test_consistency_weight_constant_in_first_epoch_then_linear_to_final(start, final):
    per_epoch, total = 6, 30
    lam = np.array([consistency_weight(s, steps_per_epoch=per_epoch, total_steps=total, start=start, final=final)
                    for s in range(total)])
    np.testing.assert_array_equal(lam[:per_epoch], start)
    assert lam[-1] == pytest.approx(final, abs=1e-12)
    diffs = np.diff(lam)
    assert (diffs * np.sign(final - start) >= -1e-12).all()  # monotone towards `final`
    # linear from the end of the first epoch (step `per_epoch` is still `start`) to the last step
    assert lam[per_epoch] == start
    np.testing.assert_allclose(np.diff(lam[per_epoch:]), (final - start) / (total - 1 - per_epoch), atol=1e-12)


def test_consistency_weight_single_epoch_is_constant():
    lam = [consistency_weight(s, steps_per_epoch=5, total_steps=5, start=1.0, final=0.5) for s in range(5)]
    assert lam == [1.0] * 5


def test_adversarial_weight_rises_linearly_as_lambda_decays():
    weight = lambda lam: adversarial_weight(lam, lam_start=1.0, lam_final=0.2, start=0.0, final=0.4)  # noqa: E731
    assert weight(1.0) == 0.0 and weight(0.2) == pytest.approx(0.4)
    assert weight(0.6) == pytest.approx(0.2)  # half-way in λ, half-way in w_adv
    lams = [consistency_weight(s, steps_per_epoch=10, total_steps=50, start=1.0, final=0.2) for s in range(50)]
    weights = np.array([weight(lam) for lam in lams])
    assert (weights[:10] == 0).all() and (np.diff(weights) >= 0).all() and weights[-1] == pytest.approx(0.4)
    # a constant λ (the IsoNet-style schedule, or start == final) leaves the final weight
    assert adversarial_weight(0.5, lam_start=0.5, lam_final=0.5, start=0.0, final=0.4) == 0.4
