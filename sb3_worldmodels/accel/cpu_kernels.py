"""CPU kernels for float32 layers: the same values as PyTorch's modules (to rounding), faster on an x86 CPU.

Each class here is a subclass of the PyTorch module it replaces, with the same parameters and state dict; only
``forward`` differs. :func:`sb3_worldmodels.accel.apply_fast_paths` swaps them in (``accel="none"`` keeps PyTorch's own).
Timings: docs/performance.md.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence

import torch as th
import torch.nn.functional as F
from torch import nn

#: ``log2(e)``: ``exp(x)`` is computed as ``exp2(x * log2(e))``, 2.5x faster on CPU
#: (BENCHMARKS.md, "Per-call times at the paper's sizes").
LOG2E = math.log2(math.e)


def _clamped_exp(x: th.Tensor) -> th.Tensor:
    """``exp(min(x, 20))`` as ``exp2``, into a new tensor: Mish's only transcendental."""
    return x.clamp(max=20.0).mul_(LOG2E).exp2_()


def _mish_from_exp(x: th.Tensor, e: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """``tanh(softplus(x))`` from ``e = exp(x)``: ``n / (n + 2)`` with ``n = e (e + 2)``; also returns ``n``."""
    n = (e + 2).mul_(e)
    return n / (n + 2), n


class _MishFunction(th.autograd.Function):
    @staticmethod
    def forward(ctx, x: th.Tensor) -> th.Tensor:
        e = _clamped_exp(x)
        t, _ = _mish_from_exp(x, e)
        ctx.save_for_backward(x, t, e)
        return t * x

    @staticmethod
    def backward(ctx, grad_output: th.Tensor) -> th.Tensor:
        x, t, e = ctx.saved_tensors
        # d/dx [x tanh(sp(x))] = tanh(sp(x)) + x (1 - tanh^2(sp(x))) sigmoid(x)
        sigmoid = e / (e + 1)
        return grad_output * (t + x * (1 - t * t) * sigmoid)


class FastMish(nn.Mish):
    """Mish ``x tanh(softplus(x))`` computed from one ``exp`` (as ``exp2``): about 3x faster than ``torch.nn.Mish`` on CPU.

    For ``x > 20`` the exponent is clamped, where ``tanh(softplus(x)) = 1`` in float32 anyway.
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        if th.is_grad_enabled() and x.requires_grad:
            return _MishFunction.apply(x)
        e = _clamped_exp(x)
        n = (e + 2).mul_(e)
        return n.div_(n + 2).mul_(x)


#: Whether this machine has oneDNN on an x86 CPU (:func:`linear` is plain ``F.linear`` elsewhere).
ONEDNN_AVAILABLE = platform.machine().lower() in ("x86_64", "amd64") and th.backends.mkldnn.is_available()
#: Smallest product (multiply-adds, ``batch * in * out``) sent to oneDNN. Each oneDNN call costs about 15 us more than
#: MKL's; the two break even near 8-16 million (BENCHMARKS.md, "Per-call times at the paper's sizes"), and the CPU presets'
#: layers are smaller.
ONEDNN_MIN_MACS = 2**24


def _autocast_on(device_type: str) -> bool:
    try:
        return th.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        return th.is_autocast_cpu_enabled() if device_type == "cpu" else th.is_autocast_enabled()


def _onednn_linear(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    return th.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinearFunction(th.autograd.Function):
    """``x @ weight.T + bias`` through oneDNN, and the gradient of the input too; the weight's gradient
    ``grad.T @ x`` stays with the default BLAS, which is as fast or faster for that shape."""

    @staticmethod
    def forward(ctx, x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: th.Tensor) -> tuple[th.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn_linear(grad, weight.t(), None)
        flat_grad = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_weight = flat_grad.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(dim=0)
        return grad_x, grad_weight, grad_bias


def _fake_onednn_linear(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None) -> th.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


#: The oneDNN product as an operator that ``torch.compile`` calls as it is (Inductor's own lowering of
#: ``mkldnn._linear_pointwise`` expects a prepacked weight); ``None`` before torch 2.4.
_onednn_linear_op = None
if hasattr(th.library, "custom_op"):
    _onednn_linear_op = th.library.custom_op("sb3_worldmodels::onednn_linear", mutates_args=())(_onednn_linear)
    _onednn_linear_op.register_fake(_fake_onednn_linear)


def linear(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None = None, min_macs: int = ONEDNN_MIN_MACS) -> th.Tensor:
    """``F.linear``, whose float32 products on an x86 CPU go through oneDNN instead of the default BLAS (MKL).

    PyTorch sends float32 matrix products on CPU to MKL, and reduced precision ones to oneDNN. On the Zen 4 host of
    BENCHMARKS.md, oneDNN computes the same float32 products 1.0-1.35x faster than MKL, most for the DC-MPC dynamics
    head's 7680 outputs (488 x 512 x 7680: 18-20 ms against 23-31 ms), and within 1.5e-6 relative error (another
    summation order). Forward passes and input gradients use oneDNN; weight gradients stay with MKL (as fast there,
    slower for long batches). Under ``torch.compile`` only products without gradients use it (the compiled planner).
    Everything else, and machines without oneDNN on x86, is plain ``F.linear``: CUDA, other dtypes, autocast (whose
    bf16 products go through oneDNN already) and products of fewer than ``min_macs`` multiply-adds (empty batches too).
    """
    if (
        ONEDNN_AVAILABLE
        and x.numel() * weight.shape[0] >= min_macs  # first: the small products leave at once
        and x.numel() > 0
        and x.device.type == "cpu"
        and x.dtype == th.float32
        and weight.dtype == th.float32
        and not _autocast_on("cpu")
    ):
        needs_grad = th.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        )
        if th.compiler.is_compiling():
            if not needs_grad and _onednn_linear_op is not None:
                return _onednn_linear_op(x, weight, bias)
        elif needs_grad:
            return _OneDNNLinearFunction.apply(x, weight, bias)
        else:
            return _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` computed by :func:`linear` (the same parameters and state dict); ``min_macs`` as there."""

    min_macs: int = ONEDNN_MIN_MACS

    def forward(self, x: th.Tensor) -> th.Tensor:
        return linear(x, self.weight, self.bias, self.min_macs)


#: Transposed convolutions with at most this many output channels compute their forward pass on a CPU as one ordinary
#: convolution and an interleave (:func:`_sub_pixel_convolution`); 0 turns that off.
SUB_PIXEL_MAX_CHANNELS = 4


def _sub_pixel_applies(weight: th.Tensor, options: tuple) -> bool:
    stride, padding, dilation, transposed, output_padding, groups = options
    return (
        transposed
        and weight.dim() == 4
        and weight.shape[1] <= SUB_PIXEL_MAX_CHANNELS
        and groups == 1
        and not any(padding)
        and not any(output_padding)
        and all(d == 1 for d in dilation)
        and weight.shape[2] % stride[0] == 0
        and weight.shape[3] % stride[1] == 0
    )


def _sub_pixel_convolution(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None, stride: Sequence[int]) -> th.Tensor:
    """A transposed convolution (no padding, kernel ``(kh, kw)`` a multiple of the stride ``(sh, sw)``) computed as an
    ordinary convolution with ``sh * sw`` times the output channels, followed by interleaving them.

    Output pixel ``(sh m + a, sw n + b)`` only sees the kernel taps ``(a + sh t, b + sw u)`` and the input pixels
    ``(m - t, n - u)``, ``t < kh / sh`` and ``u < kw / sw``: for each phase ``(a, b)`` a correlation of the input,
    zero-padded by ``kh / sh - 1`` and ``kw / sw - 1``, with those taps flipped. All phases together are one
    convolution whose output channel ``(o, a, b)`` is output channel ``o`` at phase ``(a, b)``; the interleave is one
    copy, into the standard layout. oneDNN's transposed convolution with Dreamer's 3 image channels (32 to 3, kernel 6,
    30x30 to 64x64) ran at about 34 GFLOP/s; this way the forward pass took 246 against 507 ms for 2500 images (2
    threads; BENCHMARKS.md, "Per-call times at the paper's sizes"). With more output channels the transposed convolution is the
    faster one, hence ``SUB_PIXEL_MAX_CHANNELS``.
    """
    (sh, sw), (cin, cout, kh, kw) = stride, weight.shape
    taps_h, taps_w = kh // sh, kw // sw
    phases = (
        weight.reshape(cin, cout, taps_h, sh, taps_w, sw)
        .flip(2, 4)
        .permute(1, 3, 5, 0, 2, 4)
        .reshape(cout * sh * sw, cin, taps_h, taps_w)
    )
    phase_bias = None if bias is None else bias.repeat_interleave(sh * sw)
    y = F.conv2d(x, phases, phase_bias, padding=(taps_h - 1, taps_w - 1))
    n, _, height, width = y.shape
    return y.view(n, cout, sh, sw, height, width).permute(0, 1, 4, 2, 5, 3).reshape(n, cout, height * sh, width * sw)


def _convolution(x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None, *options) -> th.Tensor:
    if _sub_pixel_applies(weight, options):
        return _sub_pixel_convolution(x, weight, bias, options[0])
    return th.convolution(x, weight, bias, *options)


class _ConvolutionFunction(th.autograd.Function):
    """``torch.convolution`` whose backward leaves the bias gradient out of oneDNN's backward pass and sums it apart;
    the forward pass of a transposed convolution with few output channels as :func:`_sub_pixel_convolution`."""

    @staticmethod
    def forward(ctx, x: th.Tensor, weight: th.Tensor, bias: th.Tensor | None, *options) -> th.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.options, ctx.has_bias = options, bias is not None
        return _convolution(x, weight, bias, *options)

    @staticmethod
    def backward(ctx, grad: th.Tensor) -> tuple[th.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        if needs[0] or needs[1]:
            grad_x, grad_weight, _ = th.ops.aten.convolution_backward(
                grad, x, weight, None, *ctx.options, [needs[0], needs[1], False]
            )
        if ctx.has_bias and needs[2]:
            grad_bias = grad.sum(dim=(0, *range(2, grad.dim())))
        return grad_x, grad_weight, grad_bias, *(None,) * len(ctx.options)


def _uses_split_bias_gradient(x: th.Tensor, module: nn.modules.conv._ConvNd) -> bool:
    """Whether :class:`SplitBiasConv2d` / :class:`SplitBiasConvTranspose2d` take their own path (:func:`_convolution`, and
    :class:`_ConvolutionFunction` with gradients): float32 on a CPU, no autocast, zero padding, outside ``torch.compile``."""
    return (
        x.device.type == "cpu"
        and x.dtype == th.float32
        and module.weight.dtype == th.float32
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)  # not "same" / "valid"
        and not _autocast_on("cpu")
        and not th.compiler.is_compiling()
    )


def _module_convolution(module: nn.modules.conv._ConvNd, x: th.Tensor) -> th.Tensor:
    # Every convolution module carries these (output_padding is zeros for an ordinary one).
    options = (module.stride, module.padding, module.dilation, module.transposed, module.output_padding, module.groups)
    if th.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in module.parameters(recurse=False))):
        return _ConvolutionFunction.apply(x, module.weight, module.bias, *options)
    return _convolution(x, module.weight, module.bias, *options)


class SplitBiasConv2d(nn.Conv2d):
    """``nn.Conv2d`` (the same parameters and state dict) whose bias gradient on a CPU is a separate sum.

    PyTorch's CPU convolutions (oneDNN) compute the bias gradient inside their backward pass, which made it slow: for
    Dreamer's transposed convolutions, 64 to 32 channels at 13x13 to 30x30 on 500 images, the backward pass took 191
    ms with the bias gradient and 62 + 71 ms for the input and weight gradients without it, where the bias gradient
    alone, a sum over the batch and pixels, takes 2 ms (BENCHMARKS.md, "Per-call times at the paper's sizes"). Here the bias
    gradient is that sum; the values and the other gradients are PyTorch's own (:class:`_ConvolutionFunction`).
    """

    def forward(self, x: th.Tensor) -> th.Tensor:
        return _module_convolution(self, x) if _uses_split_bias_gradient(x, self) else super().forward(x)


def _one_pixel_transposed_convolution(module: nn.ConvTranspose2d, x: th.Tensor) -> th.Tensor:
    """A transposed convolution of a 1x1 input as one matrix product: output pixel ``(i, j)`` of channel ``o`` is
    ``sum_c x_c W[c, o, i, j] + b_o``. A channels-last weight, ``(in, kh, kw, out)`` in memory, is the product's
    ``(in, kh * kw * out)`` matrix as it is, and the product viewed as ``(batch, kh, kw, out)`` is the channels-last
    output. oneDNN ran Dreamer's first decoder layer (1024 to 128 channels, kernel 5) 4-5x slower than this product."""
    kh, kw = module.kernel_size
    weight = module.weight.permute(0, 2, 3, 1).reshape(module.in_channels, kh * kw * module.out_channels)
    bias = None if module.bias is None else module.bias.repeat(kh * kw)
    y = linear(x.reshape(x.shape[0], module.in_channels), weight.t(), bias)
    return y.view(x.shape[0], kh, kw, module.out_channels).permute(0, 3, 1, 2)


def _one_pixel_applies(module: nn.ConvTranspose2d, x: th.Tensor) -> bool:
    return (
        x.dim() == 4
        and x.shape[2:] == (1, 1)
        and module.groups == 1
        and not any(module.padding)
        and not any(module.output_padding)
        and all(d == 1 for d in module.dilation)
    )


class SplitBiasConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (the same parameters and state dict) whose bias gradient on a CPU is a separate sum, as
    :class:`SplitBiasConv2d`; with few output channels its forward pass is :func:`_sub_pixel_convolution`, and on a 1x1
    input it is one matrix product (:func:`_one_pixel_transposed_convolution`)."""

    def forward(self, x: th.Tensor, output_size: list[int] | None = None) -> th.Tensor:
        if output_size is not None or not _uses_split_bias_gradient(x, self):
            return super().forward(x, output_size)
        if _one_pixel_applies(self, x):
            return _one_pixel_transposed_convolution(self, x)
        return _module_convolution(self, x)
