"""The critic shortcut (issue 13, item 1): with the paper's pairing (real = y + ε,
fake = T_M(R(x̂))) a critic separates real from fake on SAME-CONTENT pairs, with no
generator at all; through the same operator with matched noise it cannot.

Content: a smooth isotropic random field (so R(x) is distributed like x), normalised to
std 1, wedged ±60° as a whole. "Real" samples are crops of the wedged field, "fake" ones
crops of the *unwedged* field under a random wedge rotation R — what a perfect generator
would return. A small energy model is trained on them (BCE, as in training) and scored
on crops of a second, independently drawn field.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from cryo_pipeline.models import EnergyModel3d
from cryo_pipeline.ops.rotations import WEDGE_ROTATIONS, rotate_volume
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d, missing_wedge_mask_3d
from cryo_pipeline.training.critic_inputs import critic_samples
from cryo_pipeline.training.losses import apply_rfft_mask, energy_model_loss, rfft_wedge_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIELD_PX, CROP_PX, BATCH, STEPS = 48, 16, 16, 600


def _field(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(truth, wedged) ``(n, n, n)`` float32, the field at std 1, wedged as a whole."""
    field = gaussian_filter(np.random.default_rng(seed).standard_normal((FIELD_PX,) * 3), sigma=1.5, mode="wrap")
    field = (field - field.mean()) / field.std()
    wedged = apply_missing_wedge_3d(field, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    return torch.from_numpy(field.astype(np.float32)), torch.from_numpy(wedged.astype(np.float32))


def _crops(volume: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(FIELD_PX - CROP_PX + 1, (n, 3), generator=gen).tolist()
    return torch.stack([volume[z:z + CROP_PX, y:y + CROP_PX, x:x + CROP_PX] for z, y, x in starts])[:, None]


def _pairs(field, construction: str, mask, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    truth, wedged = field
    measured = _crops(wedged, BATCH, gen)
    perfect = _crops(truth, BATCH, gen)  # what a perfect generator returns
    rotation = int(torch.randint(len(WEDGE_ROTATIONS), (), generator=gen))
    level = 0.1 * (1.0 - torch.rand((), generator=gen).item())  # U(0, 1] x 0.1, as noise_scale_real
    return critic_samples(measured, perfect, mask, rotation, level=level, generator=gen, construction=construction)


def _held_out_accuracy(construction: str) -> float:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    mask = rfft_wedge_mask(CROP_PX, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    train_field, test_field = _field(10), _field(11)
    critic = EnergyModel3d(1, channels=(8, 16, 32, 32), hidden=(32, 16))
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(STEPS):
        real, fake = _pairs(train_field, construction, mask, gen)
        opt.zero_grad()
        energy_model_loss(critic(real), critic(fake), kind="bce").backward()
        opt.step()
    right = total = 0
    with torch.no_grad():
        for _ in range(8):
            real, fake = _pairs(test_field, construction, mask, gen)
            right += int((critic(real) < 0).sum() + (critic(fake) > 0).sum())
            total += 2 * BATCH
    return right / total


@pytest.mark.slow
def test_paper_pairing_has_a_shortcut_the_generator_cannot_remove():
    accuracy = _held_out_accuracy("paper")
    assert accuracy > 0.80, f"paper pairing: held-out critic accuracy {accuracy:.3f} on same-content pairs"


@pytest.mark.slow
@pytest.mark.parametrize("construction", ["matched", "fill"])
def test_same_operator_pairings_leave_nothing_to_learn(construction):
    accuracy = _held_out_accuracy(construction)
    assert accuracy <= 0.60, f"{construction} pairing: held-out critic accuracy {accuracy:.3f} on same-content pairs"


def test_matched_and_fill_samples_are_central_wedged_crops_and_fake_keeps_its_gradient():
    gen = torch.Generator().manual_seed(3)
    mask = rfft_wedge_mask(CROP_PX, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    measured = torch.randn(2, 1, CROP_PX, CROP_PX, CROP_PX, generator=gen)
    generated = torch.randn(2, 1, CROP_PX, CROP_PX, CROP_PX, generator=gen, requires_grad=True)
    m = CROP_PX // 4  # without noise: the central half of T_M(y) and T_M(R(x̂)) ...
    real, fake = critic_samples(measured, generated, mask, 5, level=0.0, generator=gen, construction="matched")
    assert real.shape == fake.shape == (2, 1, CROP_PX // 2, CROP_PX // 2, CROP_PX // 2)
    torch.testing.assert_close(real, apply_rfft_mask(measured, mask)[..., m:-m, m:-m, m:-m])
    torch.testing.assert_close(fake, apply_rfft_mask(rotate_volume(generated, 5), mask)[..., m:-m, m:-m, m:-m])
    # ... and for "fill" the same of R(v − T_M v): v = x̂ (fake), v = R⁻¹(y) (real)
    real, fake = critic_samples(measured, generated, mask, 5, level=0.0, generator=gen, construction="fill")
    back = rotate_volume(measured, 5, inverse=True)
    torch.testing.assert_close(real, apply_rfft_mask(rotate_volume(back - apply_rfft_mask(back, mask), 5), mask)
                               [..., m:-m, m:-m, m:-m])
    missing = generated - apply_rfft_mask(generated, mask)
    torch.testing.assert_close(fake, apply_rfft_mask(rotate_volume(missing, 5), mask)[..., m:-m, m:-m, m:-m])
    grad = torch.autograd.grad(fake.pow(2).sum(), generated)[0]  # reaches only x̂'s missing region
    assert float(apply_rfft_mask(grad, mask).abs().max()) < 1e-4 * float(grad.abs().max())
    # the noise goes through the operator too: T_M(noise) has std 0.5·√(measured fraction of the spectrum)
    real, fake = critic_samples(measured, generated, mask, 5, level=0.0, generator=gen, construction="matched")
    noisy, _ = critic_samples(measured, generated, mask, 5, level=0.5, generator=gen, construction="matched")
    measured_fraction = missing_wedge_mask_3d((CROP_PX,) * 3, tilt_min_deg=-60.0, tilt_max_deg=60.0).mean()
    assert float((noisy - real).std()) == pytest.approx(0.5 * measured_fraction**0.5, rel=0.1)
    fake.sum().backward()
    assert generated.grad is not None and float(generated.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="unknown critic input 'x'; choose one of matched, fill, paper"):
        critic_samples(measured, generated, mask, 5, level=0.1, generator=gen, construction="x")
