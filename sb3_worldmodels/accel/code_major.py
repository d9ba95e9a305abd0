"""DC-MPC's latent computations in a code-major layout: the values of :mod:`sb3_worldmodels.dcmpc.latent`, faster on a CPU.

The stored output layer of the dynamics is slot-major (row ``s * K + k`` for slot ``s`` and code ``k``), which gives
logits ``(batch, slots, K)``. The softmax, maximum and expectation over only ``K = 15`` codes along the innermost
dimension are slow on a CPU; with the rows reordered to ``k * slots + s`` the logits come out as ``(batch, K, slots)``
and the same reductions run over contiguous rows of ``slots`` values. Three more CPU-specific pieces go with it:

- planning's expected code from base-2 logits (``exp2`` is 2.5x faster than ``exp`` in PyTorch's CPU kernels; the
  reordered layer carries the factor ``log2(e)``), one product giving the weighted sums and the normaliser together;
- Gumbel noise from the mantissa bits of 64-bit random integers (PyTorch's CPU generator is serial; one draw gives
  two uniforms, and integer masks replace the conversion to float);
- the first maximum along an outer dimension by vectorised comparisons (PyTorch's CPU ``argmax`` over an outer
  dimension does not vectorise).

docs/performance.md has the measured gains; ``tests/accel`` checks values and gradients against the plain code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.common.precision import no_autocast
from sb3_worldmodels.dcmpc.latent import PaperLatent

#: ``log2(e)``: ``exp(x) = exp2(x * log2(e))``.
LOG2E = math.log2(math.e)


def gumbel_words(shape: tuple[int, ...]) -> int:
    """Number of int64 words :func:`gumbel_noise` draws on CPU for ``shape``: one per two values."""
    return (math.prod(shape) + 1) // 2


def gumbel_noise(shape: tuple[int, ...], device: th.device | str, buffer: th.Tensor | None = None) -> th.Tensor:
    """Standard Gumbel samples ``-log(-log(U))`` with ``U`` from random mantissa bits on CPU (``torch.rand`` elsewhere).

    Each 64-bit random integer gives two uniforms: 23 random bits of each 32-bit half become the mantissa of a float in
    [1, 2), and ``U`` is that float minus 1 (``U`` takes 2**23 equally spaced values in [0, 1), against 2**24 for
    float32 ``torch.rand``; the largest noise is 15.9 instead of 16.6).

    :param buffer: CPU only: an int64 tensor of at least ``ceil(numel / 2)`` elements whose memory holds the result
        (a float32 view of it), so that repeated calls write to memory the process already has.
    """
    if th.device(device).type != "cpu":
        return th.rand(shape, device=device).clamp_(min=1e-20).log_().neg_().log_().neg_()
    numel = math.prod(shape)
    n_words = gumbel_words(shape)
    words = buffer[:n_words] if buffer is not None and buffer.numel() >= n_words else th.empty(n_words, dtype=th.int64)
    words.random_()  # 63 random bits each (int64's non-negative range); bits 0-22 and 32-54 are used below
    bits = words.view(th.int32)[:numel].view(shape)
    uniform = bits.bitwise_and_(0x7FFFFF).bitwise_or_(0x3F800000).view(th.float32).sub_(1.0)  # 0x3F800000 is 1.0
    return uniform.clamp_(min=1e-20).log_().neg_().log_().neg_()


def first_argmax(x: th.Tensor, dim: int) -> th.Tensor:
    """``x.argmax(dim)`` (index of the first maximum) for a ``dim`` that is not the innermost one.

    The maxima are marked, weighted ``size - k`` so that the first one weighs most, and the largest weight is taken;
    each step is a vectorised elementwise operation or reduction.
    """
    size = x.shape[dim]
    dtype = th.uint8 if size < 256 else th.int32
    shape = [1] * x.dim()
    shape[dim] = size
    weight = th.arange(size, 0, -1, dtype=dtype, device=x.device).view(shape)
    is_max = (x == x.amax(dim=dim, keepdim=True)).to(dtype)
    # Where a slice has no maximum (NaN), the weight is 0: clamp to a valid index instead of one past the end.
    return (size - is_max.mul_(weight).amax(dim=dim).long()).clamp_(max=size - 1)


class CodeMajorLatent(PaperLatent):
    """:class:`~sb3_worldmodels.dcmpc.latent.PaperLatent` with logits ``(batch, K, slots)`` (see the module docstring).

    :param linear: The product of the output layer (``F.linear``, or the oneDNN one of ``accel.cpu_kernels``).
    """

    def __init__(self, quantizer: nn.Module, latent_dim: int, linear: Callable[..., th.Tensor] = F.linear):
        super().__init__(quantizer, latent_dim)
        self.linear = linear
        self._gumbel_buffer: th.Tensor | None = None  # memory of the update's noise on CPU, reused

    def output_layer(self, layer: nn.Linear, planning: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """The stored layer with its rows reordered code-major (a copy; gradients flow back to the layer), times
        ``log2(e)`` for planning (base-2 logits for :meth:`planning_expected_code`)."""
        slots, size = self.latent_dim, self.codebook.shape[0]
        weight = layer.weight.view(slots, size, -1).transpose(0, 1).reshape(slots * size, -1)
        bias = layer.bias.view(slots, size).t().reshape(-1)
        return (weight * LOG2E, bias * LOG2E) if planning else (weight, bias)

    def logits(self, hidden: th.Tensor, head: tuple[th.Tensor, th.Tensor]) -> th.Tensor:
        return self.linear(hidden, *head).float().view(hidden.shape[0], -1, self.latent_dim)

    def noise_shape(self, steps: int, batch_size: int) -> tuple[int, ...]:
        return (steps, batch_size, self.codebook.shape[0], self.latent_dim)

    def gumbel_noise(self, shape: tuple[int, ...], device: th.device) -> th.Tensor:
        if th.device(device).type == "cpu":
            n_words = gumbel_words(shape)
            if self._gumbel_buffer is None or self._gumbel_buffer.numel() < n_words:
                self._gumbel_buffer = th.empty(n_words, dtype=th.int64)
        return gumbel_noise(shape, device, self._gumbel_buffer)

    def log_probs(self, logits: th.Tensor) -> th.Tensor:
        return F.log_softmax(logits, dim=1)

    def consistency_loss(self, log_probs: th.Tensor, target_indices: th.Tensor) -> th.Tensor:
        return -log_probs.gather(1, target_indices.unsqueeze(1)).squeeze(1).mean(dim=1)

    def _codes_from_probs(self, probs: th.Tensor) -> th.Tensor:
        """Flattened expected codes of code-major distributions ``(batch, K, slots)``."""
        return (self.codebook.to(probs.dtype).t() @ probs).transpose(1, 2).flatten(1).float()

    def sample(self, log_probs: th.Tensor, gumbel: th.Tensor) -> th.Tensor:
        perturbed = log_probs + gumbel
        soft = self._codes_from_probs(th.softmax(perturbed, dim=1))
        hard = self.codebook[first_argmax(perturbed, dim=1)].flatten(1)
        return hard + soft - soft.detach()

    def expected_code(self, logits: th.Tensor) -> th.Tensor:
        return self._codes_from_probs(th.softmax(logits, dim=1))

    def planning_expected_code(self, logits: th.Tensor) -> th.Tensor:
        """The expected code from base-2 logits, which are overwritten: one ``exp2(logits - max)`` in place, then one
        small product with ``[codebook, 1]`` gives the weighted sums and the normaliser together."""
        codebook = self.codebook.to(logits.dtype)
        weights = th.cat([codebook, th.ones_like(codebook[:, :1])], dim=1)  # (K, channels + 1)
        with no_autocast(logits.device):  # a small product: under mixed precision, casting the logits costs more
            sums = weights.t() @ logits.sub_(logits.amax(dim=1, keepdim=True)).exp2_()  # (batch, channels + 1, slots)
        channels = codebook.shape[1]
        return (sums[:, :channels] / sums[:, channels:]).transpose(1, 2).flatten(1).float()

    def most_likely_code(self, logits: th.Tensor) -> th.Tensor:
        return first_argmax(logits, dim=1)
