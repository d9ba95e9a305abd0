"""The CPU kernels of sb3_worldmodels.accel against PyTorch's own modules: values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from sb3_worldmodels.accel import cpu_kernels
from sb3_worldmodels.accel.cpu_kernels import FastMish


# ------------------------------------------------------------------------------------------ Mish
def test_fast_mish_matches_torch_mish_values_and_gradients():
    x = th.linspace(-30, 30, 2001, dtype=th.float64).requires_grad_()
    fast = FastMish()(x)
    reference = th.nn.functional.mish(x)
    assert th.allclose(fast, reference, rtol=1e-10, atol=1e-12)
    (grad_fast,) = th.autograd.grad(fast.sum(), x)
    (grad_ref,) = th.autograd.grad(reference.sum(), x)
    assert th.allclose(grad_fast, grad_ref, rtol=1e-8, atol=1e-10)
    with th.no_grad():
        y = th.randn(1000) * 10
        assert th.allclose(FastMish()(y), th.nn.functional.mish(y), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ oneDNN linear
def _relative_error(a: th.Tensor, b: th.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("shape", [(37, 48), (3, 11, 48)])
def test_onednn_linear_matches_f_linear_values_and_gradients(shape):
    gen = th.Generator().manual_seed(sum(shape))
    x = th.randn(shape, generator=gen, requires_grad=True)
    weight = th.randn(70, 48, generator=gen, requires_grad=True)
    bias = th.randn(70, generator=gen, requires_grad=True)
    grad_out = th.randn(*shape[:-1], 70, generator=gen)
    out = cpu_kernels.linear(x, weight, bias, min_macs=1)  # these small products through oneDNN too
    reference = th.nn.functional.linear(x, weight, bias)
    assert out.shape == reference.shape
    assert _relative_error(out, reference) < 1e-5
    grads = th.autograd.grad(out, (x, weight, bias), grad_out)
    reference_grads = th.autograd.grad(reference, (x, weight, bias), grad_out)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        assert grad.shape == reference_grad.shape
        assert _relative_error(grad, reference_grad) < 1e-5
    with th.no_grad():  # the path without autograd, and without a bias
        assert _relative_error(cpu_kernels.linear(x, weight, min_macs=1), th.nn.functional.linear(x, weight)) < 1e-5


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_convolutions_on_their_own_cpu_path_match_pytorch(transposed, channels_last):
    gen = th.Generator().manual_seed(2 * transposed + channels_last)
    if transposed:  # stride 2, output padding, as the decoder's layers (which have none)
        layer = cpu_kernels.SplitBiasConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
        reference = th.nn.ConvTranspose2d(5, 7, 6, stride=2, padding=1, output_padding=1)
    else:
        layer = cpu_kernels.SplitBiasConv2d(5, 7, 4, stride=2, padding=1, dilation=2)
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
    gen = th.Generator().manual_seed(channels)
    layer = cpu_kernels.SplitBiasConvTranspose2d(6, channels, kernel, stride=stride)
    assert cpu_kernels._sub_pixel_applies(layer.weight, (layer.stride, layer.padding, layer.dilation, True, (0, 0), 1))
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
        wide = th.empty(6, cpu_kernels.SUB_PIXEL_MAX_CHANNELS + 1, 4, 4)
        assert not cpu_kernels._sub_pixel_applies(wide, options)
        assert cpu_kernels._sub_pixel_applies(layer.weight, options) == (options[1] == (0, 0))


def test_onednn_linear_is_used_for_large_float32_products_on_x86_cpus_and_f_linear_otherwise(monkeypatch):
    import platform

    calls = []
    original = cpu_kernels._onednn_linear
    monkeypatch.setattr(cpu_kernels, "_onednn_linear", lambda *a: calls.append(a[0].shape) or original(*a))
    layer = cpu_kernels.OneDNNLinear(256, 256)
    x = th.randn(256, 256)  # 2**24 multiply-adds: ONEDNN_MIN_MACS
    layer(x)
    x86 = platform.machine().lower() in ("x86_64", "amd64") and th.backends.mkldnn.is_available()
    assert calls == ([x.shape] if x86 else [])
    calls.clear()
    layer(x[:255])  # one row fewer: below the threshold
    with th.autocast("cpu", dtype=th.bfloat16):  # autocast's own products (bf16 through oneDNN already)
        assert layer(x).dtype == th.bfloat16
    assert cpu_kernels.OneDNNLinear(256, 256, dtype=th.float64)(x.double()).dtype == th.float64
    layer.min_macs = 1
    assert layer(th.randn(0, 256)).shape == (0, 256)
    assert calls == []
    monkeypatch.setattr(cpu_kernels, "ONEDNN_AVAILABLE", False)
    layer(x)
    assert calls == []


@pytest.mark.parametrize("grad", [True, False])
def test_a_transposed_convolution_of_a_one_pixel_input_is_one_matrix_product(grad):
    # Dreamer's first decoder layer: a 1x1 image of many channels to kh x kw pixels.
    gen = th.Generator().manual_seed(3)
    layer = cpu_kernels.SplitBiasConvTranspose2d(16, 8, 5, stride=2)
    reference = th.nn.ConvTranspose2d(16, 8, 5, stride=2)
    reference.load_state_dict(layer.state_dict())
    layer.to(memory_format=th.channels_last)
    x = th.randn(6, 16, 1, 1, generator=gen).requires_grad_(grad)
    with th.set_grad_enabled(grad):
        out, expected = layer(x), reference(x)
    assert out.shape == expected.shape == (6, 8, 5, 5) and _relative_error(out, expected) < 1e-5
    assert out.is_contiguous(memory_format=th.channels_last)
    if grad:
        grad_out = th.randn(out.shape, generator=gen)
        grads = th.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
        expected_grads = th.autograd.grad(expected, (x, reference.weight, reference.bias), grad_out)
        for got, want in zip(grads, expected_grads, strict=True):
            assert _relative_error(got, want) < 1e-5


# ------------------------------------------------------------------------------------ the switch
def test_apply_fast_paths_swaps_module_classes_and_keeps_parameters_and_state_dict():
    from sb3_worldmodels.accel import FAST_PATHS, apply_fast_paths, resolve

    class Mine(th.nn.Linear):  # a user's own subclass is left alone
        pass

    net = th.nn.Sequential(th.nn.Linear(3, 4), th.nn.Mish(), th.nn.Conv2d(1, 2, 3), th.nn.ConvTranspose2d(2, 1, 3), Mine(4, 4))
    params = [id(p) for p in net.parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert apply_fast_paths(net, ["mish", "onednn_linear"]) == ("onednn_linear", "mish")
    assert [type(m) for m in net] == [
        cpu_kernels.OneDNNLinear, cpu_kernels.FastMish, th.nn.Conv2d, th.nn.ConvTranspose2d, Mine
    ]  # fmt: skip
    assert apply_fast_paths(net, "auto") == FAST_PATHS
    assert type(net[2]) is cpu_kernels.SplitBiasConv2d and type(net[3]) is cpu_kernels.SplitBiasConvTranspose2d
    assert net[2].weight.is_contiguous(memory_format=th.channels_last)  # the layout oneDNN prefers
    assert [id(p) for p in net.parameters()] == params
    assert all(th.equal(v, state[k]) for k, v in net.state_dict().items())
    assert resolve("none") == () and resolve(["code_major"]) == ("code_major",)
    with pytest.raises(ValueError, match="accel must be"):
        resolve("fast")
    with pytest.raises(ValueError, match="Unknown fast paths"):
        resolve(["mish", "turbo"])


def test_dreamer_image_networks_are_the_same_with_and_without_the_fast_paths(tiny_dreamer_kwargs):
    import gymnasium as gym

    from sb3_worldmodels import Dreamer
    from tests.conftest import ToyEnv

    env = ToyEnv(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), gym.spaces.Box(-1, 1, (2,)))
    models = [Dreamer("CnnPolicy", env, accel=accel, device="cpu", **tiny_dreamer_kwargs) for accel in ("none", "auto")]
    models[1].policy.load_state_dict(models[0].policy.state_dict())
    assert type(next(iter(models[1].policy.decoders.values())).net[0]) is cpu_kernels.SplitBiasConvTranspose2d
    images = th.randint(0, 256, (5, 3, 64, 64), dtype=th.uint8)  # channels first, as SB3 transposes them
    results = []
    for model in models:
        policy = model.policy
        policy.zero_grad()
        embedding = policy.embed(policy.preprocess(images))
        feature = th.randn(5, policy.rssm.feature_dim, generator=th.Generator().manual_seed(0))
        decoded = policy.decode(feature)
        for key, image in policy.decode(feature[None]).items():  # leading dimensions are kept
            assert image.is_contiguous() and th.equal(image.view_as(decoded[key]), decoded[key])
        (embedding.square().sum() + sum(v.square().sum() for v in decoded.values())).backward()
        results.append((embedding, decoded, [p.grad.clone() for p in policy.parameters() if p.grad is not None]))
    assert _relative_error(results[1][0], results[0][0]) < 1e-5
    for key in results[0][1]:
        assert _relative_error(results[1][1][key], results[0][1][key]) < 1e-5
    assert len(results[0][2]) == len(results[1][2]) > 0
    for a, b in zip(results[0][2], results[1][2], strict=True):
        assert _relative_error(b, a) < 1e-4


def test_accel_is_saved_with_the_model_and_can_be_changed_at_load(tiny_dcmpc_kwargs, tmp_path):
    from sb3_worldmodels import DCMPC
    from sb3_worldmodels.accel.code_major import CodeMajorLatent
    from sb3_worldmodels.dcmpc.latent import PaperLatent

    def classes(model):
        return {type(m) for m in model.policy.modules()}, type(model.policy.latent)

    model = DCMPC("MlpPolicy", "Pendulum-v1", accel="none", seed=0, device="cpu", **tiny_dcmpc_kwargs)
    modules, latent = classes(model)
    assert th.nn.Mish in modules and not modules & {cpu_kernels.FastMish, cpu_kernels.OneDNNLinear}
    assert latent is PaperLatent
    model.save(tmp_path / "plain")
    loaded = DCMPC.load(tmp_path / "plain", device="cpu")
    assert loaded.accel == "none" and classes(loaded) == classes(model)
    fast = DCMPC.load(tmp_path / "plain", device="cpu", accel="auto")
    modules, latent = classes(fast)
    assert cpu_kernels.FastMish in modules and th.nn.Mish not in modules and latent is CodeMajorLatent
    obs = np.zeros((1, 3), np.float32)
    for a, b in zip(loaded.policy.state_dict().values(), fast.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    assert np.allclose(loaded.predict(obs, deterministic=True)[0], fast.predict(obs, deterministic=True)[0], atol=1e-5)
