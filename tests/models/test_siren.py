"""SIREN: initialisation bounds, determinism, non-negative output, Fourier features."""

import math

import pytest
import torch

from cryo_pipeline.models import count_parameters
from cryo_pipeline.models.siren import Siren


def test_siren_initialisation_follows_sitzmann():
    net = Siren(width=64, n_hidden_layers=3, w0=30.0, seed=0)
    first, *rest = [layer.linear for layer in net.body]
    assert first.weight.abs().max() <= 1 / 3 + 1e-7  # U(-1/n_in, 1/n_in), n_in = 3
    bound = math.sqrt(6 / 64) / 30
    for layer in rest:
        assert layer.weight.abs().max() <= bound + 1e-7
        assert layer.weight.abs().max() > 0.9 * bound  # really uniform over the full range
    # 3 -> 64 -> 64 -> 64 -> 1
    assert count_parameters(net) == (3 * 64 + 64) + 2 * (64 * 64 + 64) + (64 + 1)


def test_the_paper_network_has_about_quarter_million_parameters():
    assert count_parameters(Siren()) == 3 * 256 + 256 + 3 * (256 * 256 + 256) + 257  # 198_657 + 1_024


def test_same_seed_same_network_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = Siren(width=32, seed=7), Siren(width=32, seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # building a network does not consume the global RNG
    coords = torch.rand(50, 3) * 2 - 1
    assert torch.equal(a(coords), b(coords))
    assert not torch.equal(a(coords), Siren(width=32, seed=8)(coords))


def test_nonnegative_output_and_shapes():
    coords = torch.rand(1000, 3) * 2 - 1
    net = Siren(width=32, n_hidden_layers=2, nonnegative=True, seed=1)
    out = net(coords)
    assert out.shape == (1000,) and torch.all(out > 0)
    linear = Siren(width=32, n_hidden_layers=2, seed=1)(coords)
    assert torch.allclose(out, torch.nn.functional.softplus(linear, beta=5.0))


def test_fourier_features_are_fixed_buffers_saved_with_the_weights():
    net = Siren(width=16, n_hidden_layers=2, fourier_features=8, fourier_scale=2.0, seed=3)
    state = net.state_dict()
    assert state["encoding.frequencies"].shape == (8, 3)
    assert "encoding.frequencies" not in dict(net.named_parameters())
    clone = Siren(width=16, n_hidden_layers=2, fourier_features=8, fourier_scale=2.0, seed=99)
    clone.load_state_dict(state)
    coords = torch.rand(10, 3)
    assert torch.equal(clone(coords), net(coords))


def test_bad_sizes():
    with pytest.raises(ValueError, match="width >= 1"):
        Siren(width=0)
