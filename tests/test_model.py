"""mnist_helpers.model: the MLP."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_helpers import MLP


def _num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_architecture_is_784_512_512_10():
    model = MLP()
    layers = [(layer.in_features, layer.out_features) for layer in model.hidden]
    assert layers == [(784, 512), (512, 512)]
    assert (model.output.in_features, model.output.out_features) == (512, 10)
    assert model.dropout.p == 0.2
    # (784*512 + 512) + (512*512 + 512) + (512*10 + 10)
    assert _num_parameters(model) == 669_706


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 28, 28), (5, 784), (1, 784)])
def test_output_shape(shape):
    model = MLP().eval()
    out = model(torch.rand(shape))
    assert out.shape == (shape[0], 10) and out.dtype == torch.float32


def test_hidden_sizes_dropout_and_sizes_are_respected():
    model = MLP(hidden_sizes=(64, 32, 16), dropout=0.5, in_features=20, num_classes=3)
    layers = [(layer.in_features, layer.out_features) for layer in model.hidden]
    assert layers == [(20, 64), (64, 32), (32, 16)]
    assert (model.output.in_features, model.output.out_features) == (16, 3)
    assert model.dropout.p == 0.5
    expected = (20 * 64 + 64) + (64 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3)
    assert _num_parameters(model) == expected
    assert model(torch.rand(4, 20)).shape == (4, 3)


def test_no_hidden_layer_is_a_linear_model():
    model = MLP(hidden_sizes=())
    assert len(model.hidden) == 0
    assert _num_parameters(model) == 784 * 10 + 10


def test_forward_is_relu_dropout_per_hidden_layer():
    torch.manual_seed(0)
    model = MLP(hidden_sizes=(8, 6), in_features=5, num_classes=3).eval()
    x = torch.randn(4, 5)
    h = torch.relu(model.hidden[0](x))
    h = torch.relu(model.hidden[1](h))
    torch.testing.assert_close(model(x), model.output(h))


@pytest.mark.parametrize("shape", [(28, 28), (1, 27, 27), (3, 28, 28, 2), (784,), (2, 783)])
def test_wrong_image_shape_raises_a_helpful_error(shape):
    with pytest.raises(ValueError) as info:
        MLP()(torch.rand(shape))
    message = str(info.value)
    assert str(tuple(shape)) in message  # what it got
    assert "784" in message and "(N, 1, 28, 28)" in message  # what it expects
    assert "unsqueeze(0)" in message  # how to fix the commonest mistake


def test_dropout_is_active_in_train_and_not_in_eval():
    torch.manual_seed(0)
    model = MLP(dropout=0.5)
    x = torch.rand(8, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))  # a new dropout mask each call
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)


def test_dropout_zero_is_deterministic_in_train():
    model = MLP(dropout=0.0).train()
    x = torch.rand(8, 784)
    assert torch.equal(model(x), model(x))


def test_config_builds_the_same_network_again():
    model = MLP(hidden_sizes=(64, 32, 16), dropout=0.5, in_features=20, num_classes=3)
    assert model.config == {
        "hidden_sizes": [64, 32, 16],
        "dropout": 0.5,
        "in_features": 20,
        "num_classes": 3,
    }
    again = MLP(**model.config)
    assert again.config == model.config
    assert {k: t.shape for k, t in again.state_dict().items()} == {
        k: t.shape for k, t in model.state_dict().items()
    }
    assert MLP().config["hidden_sizes"] == [512, 512]
