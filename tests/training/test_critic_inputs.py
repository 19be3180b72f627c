"""What the energy model reads and what a CryoGEN step does with it: the log Fourier
amplitude channel, one step with every critic option (matched/fill/paper samples,
amplitude features, R1, several critic steps, the rising adversarial weight), seeded steps
that repeat exactly, ``adversarial_weight: 0`` as a true ablation (the critic never
reaches θ), and R1 flattening the critic at real samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d
from cryo_pipeline.training.critic_inputs import critic_channels, critic_samples, critic_view
from cryo_pipeline.training.cryogen import CryoGenStep, build_energy_model, build_generator
from cryo_pipeline.training.losses import apply_rfft_mask, r1_penalty, rfft_wedge_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_amplitude_view_is_the_centred_log_amplitude_and_differentiable():
    v = torch.randn(2, 1, 8, 8, 8, requires_grad=True)
    view = critic_view(v, "volume+amplitude")
    assert view.shape == (2, 2, 8, 8, 8) and critic_channels("volume+amplitude") == 2
    torch.testing.assert_close(view[:, :1], v)
    expected = np.fft.fftshift(np.log1p(np.abs(np.fft.fftn(v.detach().numpy()[:, 0], axes=(1, 2, 3))) / 8**1.5),
                               axes=(1, 2, 3))
    np.testing.assert_allclose(view[:, 1].detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    view[:, 1].sum().backward()
    assert torch.isfinite(v.grad).all() and float(v.grad.abs().sum()) > 0
    assert critic_view(v, "volume") is v and critic_channels("volume") == 1
    with pytest.raises(ValueError, match="unknown critic features 'phase'; choose one of volume, volume"):
        critic_view(v, "phase")


def test_amplitude_channel_is_zero_exactly_where_the_wedge_removed_power():
    mask = rfft_wedge_mask(16, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    wedged = apply_rfft_mask(torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(2)), mask)
    amplitude = critic_view(wedged, "volume+amplitude")[0, 1].numpy()
    measured = np.fft.fftshift(missing_wedge_mask_3d((16,) * 3, tilt_min_deg=-60.0, tilt_max_deg=60.0)) > 0.5
    assert np.abs(amplitude[~measured]).max() < 1e-5  # log1p(0): the critic sees the hole
    assert amplitude[measured].mean() > 0.3  # white noise: |F|/√N ~ 1, log1p ~ 0.6


def _step(*, energy_seed: int = 0, lr_energy: float = 1e-3, **keys):
    cfg = TrainConfig(crop_px=16, base_channels=4, depth=2, disc_channels=4, epochs=2, steps_per_epoch=2,
                      **keys)
    torch.manual_seed(0)
    g = build_generator(cfg)
    torch.manual_seed(energy_seed)
    e = build_energy_model(cfg)
    step = CryoGenStep(cfg=cfg, method="cryogen", tilt_range_deg=(-60.0, 60.0), device=torch.device("cpu"),
                       generator_module=g, energy_module=e, opt_g=torch.optim.Adam(g.parameters(), lr=1e-3),
                       opt_e=torch.optim.Adam(e.parameters(), lr=lr_energy))
    return step, e


def _batch(seed: int = 5, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 16, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("keys", [
    {},
    {"critic_input": "paper"},
    {"critic_input": "fill", "critic_steps": 2},
    {"critic_features": "volume+amplitude", "r1_weight": 1.0},
    {"critic_steps": 3, "adversarial_loss": "hinge"},
    {"adversarial_loss": "wgan-gp", "critic_features": "volume+amplitude"},
])
def test_one_cryogen_step_with_each_critic_option_is_finite_and_trains_both_networks(keys):
    step, e = _step(**keys)
    before = [p.detach().clone() for p in e.parameters()]
    before_g = [p.detach().clone() for p in step.g.parameters()]
    losses = step.run(_batch(), lam=1.0, rng=torch.Generator().manual_seed(0))
    assert all(np.isfinite([losses.energy, losses.adversarial, losses.data, losses.consistency]))
    assert losses.consistency > 0 and losses.data > 0
    assert 0.0 <= losses.extra["critic_accuracy"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, e.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_g, step.g.parameters(), strict=True))
    assert all(not p.requires_grad for p in e.parameters())  # frozen again for θ's step


def test_rising_adversarial_weight_follows_lambda():
    step, _ = _step(adversarial_weight=0.3, adversarial_weight_start=0.0, consistency_weight=1.0,
                    consistency_weight_final=0.1)
    assert step.adversarial_weight(1.0) == 0.0 and step.adversarial_weight(0.1) == pytest.approx(0.3)
    losses = step.run(torch.randn(1, 1, 16, 16, 16), lam=0.55, rng=torch.Generator().manual_seed(1))
    assert losses.extra["adversarial_weight"] == pytest.approx(0.15)
    constant, _ = _step(adversarial_weight=0.3)
    assert constant.adversarial_weight(1.0) == constant.adversarial_weight(0.5) == 0.3


def _steps(step: CryoGenStep, *, lam: float, n: int = 2, seed: int = 0) -> list:
    rng = torch.Generator().manual_seed(seed)
    return [step.run(_batch(), lam=lam, rng=rng) for _ in range(n)]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_seeded_steps_repeat_exactly_and_another_seed_draws_differently():
    (one, e1), (two, e2), (other, _) = _step(), _step(), _step()
    losses = _steps(one, lam=1.0)
    assert [vars(s) for s in _steps(two, lam=1.0)] == [vars(s) for s in losses]
    assert _same(one.g, two.g) and _same(e1, e2)
    assert [s.consistency for s in _steps(other, lam=1.0, seed=1)] != [s.consistency for s in losses]


@pytest.mark.parametrize(("keys", "lam", "critic_reaches_generator"), [
    ({"adversarial_weight": 0.0}, 0.5, False),  # the ablation of config.yaml is one line
    ({"adversarial_weight": 0.3}, 1.0, True),
    # rising weight: 0 while λ is at its start (the ablation's step), 0.3 once λ has decayed
    ({"adversarial_weight": 0.3, "adversarial_weight_start": 0.0, "consistency_weight_final": 0.1}, 1.0, False),
    ({"adversarial_weight": 0.3, "adversarial_weight_start": 0.0, "consistency_weight_final": 0.1}, 0.1, True),
])
def test_generator_update_depends_on_the_critic_only_through_a_nonzero_adversarial_weight(
        keys, lam, critic_reaches_generator):
    # same generator, same draws, two differently initialised critics
    (step_a, e_a), (step_b, e_b) = _step(energy_seed=0, **keys), _step(energy_seed=1, **keys)
    _steps(step_a, lam=lam)
    _steps(step_b, lam=lam)
    assert not _same(e_a, e_b)
    assert _same(step_a.g, step_b.g) is not critic_reaches_generator


def test_r1_keeps_the_critic_flat_at_real_samples():
    """R1 = ‖∇ₓE(real)‖²: a critic trained with it has a far smaller slope there than one without."""
    slopes = {}
    for weight in (0.0, 10.0):
        step, e = _step(r1_weight=weight, lr_energy=1e-2)
        _steps(step, lam=1.0, n=15)
        real, _ = critic_samples(_batch(), _batch(), step.mask, 0, level=0.05,
                                 generator=torch.Generator().manual_seed(9), construction="matched")
        for p in e.parameters():
            p.requires_grad_(True)
        slopes[weight] = float(r1_penalty(e, real).detach())
    assert slopes[10.0] < 0.25 * slopes[0.0], slopes
