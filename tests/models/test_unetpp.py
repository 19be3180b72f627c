"""U-Net++ generator: shapes, identity at init, nested dense skips, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cryo_pipeline.models import UNetPlusPlus3d, check_divisible, count_parameters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("depth", "shape"), [(2, (8, 12, 20)), (3, (16, 16, 16)), (3, (16, 32, 24))])
def test_output_shape_equals_input_shape(depth, shape):
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=depth, residual=False)
    x = torch.randn(2, 1, *shape)
    assert model(x).shape == x.shape


def test_untrained_generator_is_exactly_the_identity():
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=8, depth=3)
    x = torch.randn(2, 1, 16, 24, 32) * 5 + 3
    torch.testing.assert_close(model(x), x, atol=1e-6, rtol=0)
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_nested_dense_skips(depth):
    base = 4
    model = UNetPlusPlus3d(base_channels=base, depth=depth)
    assert len(model.nodes) == depth * (depth + 1) // 2
    assert model.divisor == 2**depth
    # X[i][j] reads j same-level nodes plus one upsampled node: (j + 1) * channels(i) inputs
    for key, node in model.nodes.items():
        i, j = (int(v) for v in key[1:].split("_"))
        assert node[0].in_channels == (j + 1) * base * 2**i
        assert model.up[key][1].in_channels == base * 2 ** (i + 1)
    # every decoder node runs in one forward pass
    seen = []
    for key, node in model.nodes.items():
        node.register_forward_hook(lambda *_, key=key: seen.append(key))
    model(torch.zeros(1, 1, *(2 * model.divisor,) * 3))
    assert sorted(seen) == sorted(model.nodes)


def test_gradients_reach_the_first_conv_after_one_step():
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = torch.randn(2, 1, 8, 8, 8), torch.randn(2, 1, 8, 8, 8)
    first = model.encoder[0][0]
    for step in range(2):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), target).backward()
        if step == 0:  # zero head: only the head learns on the first step
            assert model.head.weight.grad.abs().sum() > 0
        else:
            assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
        opt.step()


def test_divisibility_error_names_shape_and_fix():
    model = UNetPlusPlus3d(base_channels=4, depth=3)
    with pytest.raises(ValueError, match=r"\(50, 64, 64\).*cube size 50.*divisible by 8 \(= 2\*\*3.*use 48 or 56"):
        model(torch.zeros(1, 1, 50, 64, 64))
    with pytest.raises(ValueError, match="use 8"):
        check_divisible((4,), 8)
    check_divisible((16, 24, 8), 8)
    with pytest.raises(ValueError, match="batch, channels"):
        model(torch.zeros(1, 16, 16, 16))


@pytest.mark.parametrize("norm", ["group", "instance", "none"])
def test_norms_run(norm):
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=2, norm=norm, residual=False)
    y = model(torch.randn(2, 1, 8, 8, 16))
    assert y.shape == (2, 1, 8, 8, 16) and torch.isfinite(y).all()
    kinds = {type(m) for m in model.modules()}
    assert (nn.GroupNorm in kinds) == (norm == "group") and (nn.InstanceNorm3d in kinds) == (norm == "instance")


def test_group_norm_groups():
    model = UNetPlusPlus3d(base_channels=4, depth=2)
    groups = {m.num_channels: m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {4: 4, 8: 8, 16: 8}


def test_parameter_count_and_bad_arguments():
    n = count_parameters(UNetPlusPlus3d(base_channels=16, depth=3))
    assert 1.0e6 < n < 2.5e6  # 1.55 M
    assert count_parameters(UNetPlusPlus3d(base_channels=16, depth=2)) < n / 3
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        UNetPlusPlus3d(1, 2)
    with pytest.raises(ValueError, match="norm"):
        UNetPlusPlus3d(norm="batch")
    with pytest.raises(ValueError, match="depth"):
        UNetPlusPlus3d(depth=0)
