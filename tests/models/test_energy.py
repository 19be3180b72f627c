"""CryoGEN energy model: one scalar per sample for any cube size, spectral norm, input gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from cryo_pipeline.models import EnergyModel3d, count_parameters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 32, 32), (48, 48, 48), (16, 40, 24)])
def test_one_scalar_per_sample(shape):
    torch.manual_seed(0)
    model = EnergyModel3d()
    y = model(torch.randn(3, 1, *shape))
    assert y.shape == (3,) and torch.isfinite(y).all()


def test_architecture_matches_the_paper():
    model = EnergyModel3d()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 4
    assert [c.stride for c in convs] == [(1, 1, 1)] + [(2, 2, 2)] * 3
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(64, 64), (64, 32), (32, 1)]
    assert sum(isinstance(m, nn.ReLU) for m in model.classifier) == 2
    assert 1e5 < count_parameters(model) < 3e5


def test_spectral_norm_parametrizes_every_layer():
    torch.manual_seed(0)
    model = EnergyModel3d(spectral_norm=True)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv3d, nn.Linear))]
    assert len(layers) == 7
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in EnergyModel3d().modules())
    assert model(torch.randn(2, 1, 16, 16, 16)).shape == (2,)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_input_gradient_for_gradient_penalty(spectral_norm):
    torch.manual_seed(0)
    model = EnergyModel3d(spectral_norm=spectral_norm)
    x = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()  # second-order gradient reaches the parameters
    weights = [p for name, p in model.named_parameters() if "bias" not in name]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_bad_input_rank():
    with pytest.raises(ValueError, match="batch, channels"):
        EnergyModel3d()(torch.zeros(1, 16, 16, 16))
