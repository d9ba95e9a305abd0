"""Network building blocks: ensembles, and the CPU paths (Mish, oneDNN linear, convolutions) against PyTorch."""

from __future__ import annotations

import pytest
import torch as th

from sb3_worldmodels.common.networks import EnsembleLinear, ensemble_mlp, mlp


# ------------------------------------------------------------------------------------ ensembles
def test_ensemble_mlp_equals_separate_mlps():
    th.manual_seed(0)
    n, batch = 5, 7
    ensemble = ensemble_mlp(n, 4, [8, 8], 1)
    x = th.randn(batch, 4)
    out = ensemble(x)
    assert out.shape == (n, batch, 1)
    for i in range(n):
        single = mlp(4, [8, 8], 1)
        linear_idx = [0, 3, 6]
        for layer_idx in linear_idx:
            single[layer_idx].weight.data = ensemble[layer_idx].weight.data[i].T
            single[layer_idx].bias.data = ensemble[layer_idx].bias.data[i, 0]
        for norm_idx in [1, 4]:
            single[norm_idx].weight.data = ensemble[norm_idx].weight.data[i, 0]
            single[norm_idx].bias.data = ensemble[norm_idx].bias.data[i, 0]
        assert th.allclose(single(x), out[i], rtol=1e-5, atol=1e-6)


def test_ensemble_linear_members_are_independent():
    layer = EnsembleLinear(3, 2, 2)
    x = th.randn(3, 4, 2, requires_grad=True)
    layer(x)[1].sum().backward()
    assert layer.weight.grad[0].abs().sum() == 0 and layer.weight.grad[2].abs().sum() == 0
    assert layer.weight.grad[1].abs().sum() > 0


# ------------------------------------------------------------------------------------------ Mish
def test_fast_mish_matches_torch_mish_values_and_gradients():
    from sb3_worldmodels.common.networks import Mish

    x = th.linspace(-30, 30, 2001, dtype=th.float64).requires_grad_()
    fast = Mish()(x)
    reference = th.nn.functional.mish(x)
    assert th.allclose(fast, reference, rtol=1e-10, atol=1e-12)
    (grad_fast,) = th.autograd.grad(fast.sum(), x)
    (grad_ref,) = th.autograd.grad(reference.sum(), x)
    assert th.allclose(grad_fast, grad_ref, rtol=1e-8, atol=1e-10)
    with th.no_grad():
        y = th.randn(1000) * 10
        assert th.allclose(Mish()(y), th.nn.functional.mish(y), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ oneDNN linear
def _relative_error(a: th.Tensor, b: th.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("shape", [(37, 48), (3, 11, 48)])
def test_onednn_linear_matches_f_linear_values_and_gradients(shape, monkeypatch):
    from sb3_worldmodels.common import networks

    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 1)  # these small products through oneDNN too
    gen = th.Generator().manual_seed(sum(shape))
    x = th.randn(shape, generator=gen, requires_grad=True)
    weight = th.randn(70, 48, generator=gen, requires_grad=True)
    bias = th.randn(70, generator=gen, requires_grad=True)
    grad_out = th.randn(*shape[:-1], 70, generator=gen)
    out = networks.linear(x, weight, bias)
    reference = th.nn.functional.linear(x, weight, bias)
    assert out.shape == reference.shape
    assert _relative_error(out, reference) < 1e-5
    grads = th.autograd.grad(out, (x, weight, bias), grad_out)
    reference_grads = th.autograd.grad(reference, (x, weight, bias), grad_out)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        assert grad.shape == reference_grad.shape
        assert _relative_error(grad, reference_grad) < 1e-5
    with th.no_grad():  # the path without autograd, and without a bias
        assert _relative_error(networks.linear(x, weight), th.nn.functional.linear(x, weight)) < 1e-5


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_convolutions_on_their_own_cpu_path_match_pytorch(transposed, channels_last):
    from sb3_worldmodels.common import networks

    gen = th.Generator().manual_seed(2 * transposed + channels_last)
    if transposed:  # stride 2, output padding, as the decoder's layers (which have none)
        layer = networks.ConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
        reference = th.nn.ConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
    else:
        layer = networks.Conv2d(5, 7, 4, stride=2, padding=1, dilation=2)
        reference = th.nn.Conv2d(5, 7, 4, stride=2, padding=1, dilation=2)
    reference.load_state_dict(layer.state_dict())  # the same parameters and state dict as PyTorch's modules
    memory_format = th.channels_last if channels_last else th.contiguous_format
    layer.to(memory_format=memory_format)
    x = th.randn(3, 5, 13, 11, generator=gen).to(memory_format=memory_format).requires_grad_()
    out, expected = layer(x), reference(x)
    assert out.grad_fn.name() == "_ConvolutionFunctionBackward"  # float32 on a CPU with gradients: the new path
    assert out.shape == expected.shape and _relative_error(out, expected) < 1e-5
    grad_out = th.randn(out.shape, generator=gen)
    grads = th.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
    expected_grads = th.autograd.grad(expected, (x, reference.weight, reference.bias), grad_out)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert grad.shape == expected_grad.shape and _relative_error(grad, expected_grad) < 1e-5
    # Only the weight's gradient (the input needs none, as the encoder's images): the same values.
    (weight_grad,) = th.autograd.grad(layer(x.detach()), layer.weight, grad_out)
    assert _relative_error(weight_grad, expected_grads[1]) < 1e-5
    # Without gradients, under autocast and with output_size: PyTorch's own path.
    with th.no_grad():
        assert layer(x).grad_fn is None and _relative_error(layer(x), expected) < 1e-5
    with th.autocast("cpu", dtype=th.bfloat16):
        assert layer(x).dtype == th.bfloat16
    if transposed:
        sized = layer(x, output_size=list(expected.shape[-2:]))
        assert sized.grad_fn.name() != "_ConvolutionFunctionBackward" and _relative_error(sized, expected) < 1e-5


@pytest.mark.parametrize(
    "channels, kernel, stride, channels_last",
    [(3, 6, 2, True), (3, 6, 2, False), (2, 4, 2, True), (4, (6, 3), (2, 3), False), (1, 3, 1, True)],
)
def test_sub_pixel_transposed_convolutions_match_pytorch(channels, kernel, stride, channels_last):
    from sb3_worldmodels.common import networks

    gen = th.Generator().manual_seed(channels)
    layer = networks.ConvTranspose2d(6, channels, kernel, stride=stride)
    assert networks._sub_pixel_applies(layer.weight, (layer.stride, layer.padding, layer.dilation, True, (0, 0), 1))
    reference = th.nn.ConvTranspose2d(6, channels, kernel, stride=stride)
    reference.load_state_dict(layer.state_dict())
    memory_format = th.channels_last if channels_last else th.contiguous_format
    layer.to(memory_format=memory_format)
    x = th.randn(4, 6, 9, 7, generator=gen).to(memory_format=memory_format).requires_grad_()
    out, expected = layer(x), reference(x)
    assert out.shape == expected.shape and _relative_error(out, expected) < 1e-5
    grad_out = th.randn(out.shape, generator=gen)
    grads = th.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
    expected_grads = th.autograd.grad(expected, (x, reference.weight, reference.bias), grad_out)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        assert _relative_error(grad, expected_grad) < 1e-5
    with th.no_grad():
        assert _relative_error(layer(x), expected) < 1e-5
    # Not for more output channels, padding or output padding: the transposed convolution itself.
    for options in [(layer.stride, (0, 0), (1, 1), True, (0, 0), 1), (layer.stride, (1, 0), (1, 1), True, (0, 0), 1)]:
        wide = th.empty(6, networks.SUB_PIXEL_MAX_CHANNELS + 1, 4, 4)
        assert not networks._sub_pixel_applies(wide, options)
        assert networks._sub_pixel_applies(layer.weight, options) == (options[1] == (0, 0))


def test_onednn_linear_is_used_for_large_float32_products_on_x86_cpus_and_f_linear_otherwise(monkeypatch):
    import platform

    from sb3_worldmodels.common import networks

    calls = []
    original = networks._onednn_linear
    monkeypatch.setattr(networks, "_onednn_linear", lambda *a: calls.append(a[0].shape) or original(*a))
    layer = networks.Linear(256, 256)
    x = th.randn(256, 256)  # 2**24 multiply-adds: ONEDNN_MIN_MACS
    layer(x)
    x86 = platform.machine().lower() in ("x86_64", "amd64") and th.backends.mkldnn.is_available()
    assert calls == ([x.shape] if x86 else [])
    calls.clear()
    layer(x[:255])  # one row fewer: below the threshold
    with th.autocast("cpu", dtype=th.bfloat16):  # autocast's own products (bf16 through oneDNN already)
        assert layer(x).dtype == th.bfloat16
    assert networks.Linear(256, 256, dtype=th.float64)(x.double()).dtype == th.float64
    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 1)
    assert layer(th.randn(0, 256)).shape == (0, 256)
    assert calls == []
    monkeypatch.setattr(networks, "ONEDNN_LINEAR", False)
    layer(x)
    assert calls == []
