"""What the energy model reads: the log Fourier amplitude channel, and one CryoGEN step with
every critic option (matched/paper samples, amplitude features, R1, several critic steps,
the rising adversarial weight)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.training.critic_inputs import critic_channels, critic_view
from cryo_pipeline.training.cryogen import CryoGenStep, build_energy_model, build_generator

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


def _step(**keys):
    cfg = TrainConfig(crop_px=16, base_channels=4, depth=2, disc_channels=4, epochs=2, steps_per_epoch=2, device="cpu",
                      **keys)
    torch.manual_seed(0)
    g, e = build_generator(cfg), build_energy_model(cfg)
    step = CryoGenStep(cfg=cfg, method="cryogen", tilt_range_deg=(-60.0, 60.0), device=torch.device("cpu"),
                       generator_module=g, energy_module=e, opt_g=torch.optim.Adam(g.parameters(), lr=1e-3),
                       opt_e=torch.optim.Adam(e.parameters(), lr=1e-3))
    return step, e


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
    losses = step.run(torch.randn(2, 1, 16, 16, 16), lam=1.0, rng=torch.Generator().manual_seed(0))
    assert all(np.isfinite([losses.energy, losses.adversarial, losses.data, losses.consistency]))
    assert 0.0 <= losses.extra["critic_accuracy"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, e.parameters(), strict=True))
    assert all(not p.requires_grad for p in e.parameters())  # frozen again for θ's step


def test_rising_adversarial_weight_follows_lambda():
    step, _ = _step(adversarial_weight=0.3, adversarial_weight_start=0.0, consistency_weight=1.0,
                    consistency_weight_final=0.1)
    assert step.adversarial_weight(1.0) == 0.0 and step.adversarial_weight(0.1) == pytest.approx(0.3)
    losses = step.run(torch.randn(1, 1, 16, 16, 16), lam=0.55, rng=torch.Generator().manual_seed(1))
    assert losses.extra["adversarial_weight"] == pytest.approx(0.15)
    constant, _ = _step(adversarial_weight=0.3)
    assert constant.adversarial_weight(1.0) == constant.adversarial_weight(0.5) == 0.3
