"""CryoGEN loss terms: the wedge operator T_M in torch, the wedge-weighted MSE, the
adversarial losses' signs (real = low energy) and the WGAN gradient penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryo_pipeline.ops.wedge import apply_missing_wedge_3d
from cryo_pipeline.training.losses import (
    ADVERSARIAL_LOSSES,
    apply_rfft_mask,
    energy_model_loss,
    generator_adversarial_loss,
    gradient_penalty,
    r1_penalty,
    rfft_wedge_mask,
    wedge_weighted_mse,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cube(c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((c, c, c)).astype(np.float32)


@pytest.mark.parametrize(("c", "lo", "hi"), [(16, -60.0, 60.0), (15, -60.0, 60.0), (16, -45.0, 62.0)])
def test_rfft_mask_matches_the_numpy_wedge(c, lo, hi):
    cube = _cube(c)
    mask = rfft_wedge_mask(c, tilt_min_deg=lo, tilt_max_deg=hi)
    assert mask.shape == (c, c, c // 2 + 1) and mask.dtype == torch.float32
    ours = apply_rfft_mask(torch.from_numpy(cube)[None, None], mask)[0, 0].numpy()
    np.testing.assert_allclose(ours, apply_missing_wedge_3d(cube, tilt_min_deg=lo, tilt_max_deg=hi), atol=1e-5)
    assert 0.3 < float(mask.mean()) < 0.9  # a wedge, neither nothing nor everything


def test_rfft_mask_is_a_projection_and_batches():
    mask = rfft_wedge_mask(16, tilt_min_deg=-60, tilt_max_deg=60)
    batch = torch.from_numpy(np.stack([_cube(16, s) for s in range(3)]))[:, None]
    once = apply_rfft_mask(batch, mask)
    torch.testing.assert_close(apply_rfft_mask(once, mask), once, atol=1e-5, rtol=0)
    for i in range(3):  # each batch member filtered on its own
        torch.testing.assert_close(once[i], apply_rfft_mask(batch[i], mask), atol=1e-5, rtol=0)
    assert once.shape == batch.shape and once.dtype == batch.dtype


def test_wedge_weighted_mse_without_weight_is_mse():
    mask = rfft_wedge_mask(16, tilt_min_deg=-60, tilt_max_deg=60)
    a, b = torch.from_numpy(_cube(16, 1)), torch.from_numpy(_cube(16, 2))
    expected = torch.mean((a - b) ** 2)
    torch.testing.assert_close(wedge_weighted_mse(a, b, mask, missing_weight=0.0), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("weight", [1.0, 20.0])
def test_wedge_weighted_mse_weights_a_missing_region_residual_by_one_plus_w(weight):
    mask = rfft_wedge_mask(16, tilt_min_deg=-60, tilt_max_deg=60)
    target = torch.from_numpy(_cube(16, 3))
    noise = torch.from_numpy(_cube(16, 4))
    missing_only = noise - apply_rfft_mask(noise, mask)  # (1 − M)·noise: lives only in the missing region
    loss = wedge_weighted_mse(target + missing_only, target, mask, missing_weight=weight)
    mse = torch.mean(missing_only**2)
    torch.testing.assert_close(loss, (1 + weight) * mse, rtol=1e-5, atol=0)
    measured_only = noise - missing_only  # and a measured-region residual gets no extra weight
    loss = wedge_weighted_mse(target + measured_only, target, mask, missing_weight=weight)
    torch.testing.assert_close(loss, torch.mean(measured_only**2), rtol=1e-5, atol=1e-7)


def _grads(fn, real: float, fake: float) -> tuple[float, float]:
    e_real = torch.tensor([real], requires_grad=True)
    e_fake = torch.tensor([fake], requires_grad=True)
    fn(e_real, e_fake).backward()
    return float(e_real.grad), float(e_fake.grad)


@pytest.mark.parametrize("kind", ADVERSARIAL_LOSSES)
def test_energy_model_loss_gives_real_low_and_fake_high_energy(kind):
    loss = lambda r, f: energy_model_loss(torch.tensor([r]), torch.tensor([f]), kind=kind)  # noqa: E731
    assert loss(-0.5, 0.5) < loss(0.5, -0.5)  # the right assignment costs less
    assert loss(-0.5, 0.0) < loss(0.5, 0.0)   # lower real energy lowers φ's loss
    assert loss(0.0, 0.5) < loss(0.0, -0.5)   # higher fake energy lowers φ's loss
    d_real, d_fake = _grads(lambda r, f: energy_model_loss(r, f, kind=kind), 0.0, 0.0)
    assert d_real > 0 and d_fake < 0  # gradient descent pushes E(real) down and E(fake) up


@pytest.mark.parametrize("kind", ADVERSARIAL_LOSSES)
def test_generator_loss_rewards_low_energy_of_its_samples(kind):
    assert generator_adversarial_loss(torch.tensor([-0.5]), kind=kind) < generator_adversarial_loss(
        torch.tensor([0.5]), kind=kind)
    e_fake = torch.tensor([0.0], requires_grad=True)
    generator_adversarial_loss(e_fake, kind=kind).backward()
    assert float(e_fake.grad) > 0  # θ lowers the energy of its output


@pytest.mark.parametrize("kind", ADVERSARIAL_LOSSES)
def test_energy_and_generator_losses_pull_the_fake_energy_in_opposite_directions(kind):
    _, d_fake_phi = _grads(lambda r, f: energy_model_loss(r, f, kind=kind), 0.0, 0.0)
    e_fake = torch.tensor([0.0], requires_grad=True)
    generator_adversarial_loss(e_fake, kind=kind).backward()
    assert d_fake_phi * float(e_fake.grad) < 0


class _Linear(torch.nn.Module):
    """E(x) = <w, x> per sample: ∇_x E = w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.w.flatten()).sum(1, keepdim=True)


@pytest.mark.parametrize(("norm", "penalty"), [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25), (3.0, 4.0)])
def test_gradient_penalty_is_the_squared_distance_of_the_gradient_norm_from_one(norm, penalty):
    torch.manual_seed(0)
    w = torch.randn(1, 8, 8, 8)
    model = _Linear(w / w.norm() * norm)
    real, fake = torch.randn(3, 1, 8, 8, 8), torch.randn(3, 1, 8, 8, 8)
    gp = gradient_penalty(model, real, fake)
    assert gp.item() == pytest.approx(penalty, abs=1e-5)
    gp.backward()  # differentiable in φ (create_graph): the penalty trains the energy model
    assert model.w.grad is not None and (float(model.w.grad.norm()) > 0) == (penalty > 0)


@pytest.mark.parametrize("fn", [lambda k: energy_model_loss(torch.zeros(1), torch.zeros(1), kind=k),
                                lambda k: generator_adversarial_loss(torch.zeros(1), kind=k)])
def test_unknown_adversarial_loss_lists_the_kinds(fn):
    with pytest.raises(ValueError, match=r"unknown adversarial loss 'lsgan'; choose one of bce, hinge, wgan-gp"):
        fn("lsgan")


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_r1_penalty_is_the_squared_gradient_norm_at_real_samples(norm):
    torch.manual_seed(1)
    w = torch.randn(1, 8, 8, 8)
    model = _Linear(w / w.norm() * norm)
    penalty = r1_penalty(model, torch.randn(3, 1, 8, 8, 8))
    assert penalty.item() == pytest.approx(norm**2, rel=1e-5)
    penalty.backward()  # trains φ: d‖w‖²/dw = 2w
    torch.testing.assert_close(model.w.grad, 2 * model.w.detach(), rtol=1e-5, atol=1e-6)
