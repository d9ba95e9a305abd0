"""Finite Scalar Quantization (Mentzer et al., 2023) as used by DC-MPC (Scannell et al., 2025, Sec. 3.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from torch import nn


def round_ste(x: th.Tensor) -> th.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through estimator)."""
    return x + (x.round() - x).detach()


class FSQ(nn.Module):
    """Quantize each of ``len(levels)`` channels to ``levels[i]`` values in [-1, 1].

    A latent of shape ``(..., d, b)`` with ``b = len(levels)`` becomes ``d`` codes, each one of the
    ``prod(levels)`` vectors of the fixed (not learned) codebook.

    :param levels: Number of quantization levels per channel (DC-MPC default ``[5, 3]``, 15 codes).
    :param eps: Margin that keeps ``tanh`` away from the rounding boundary of the outermost level.
    """

    def __init__(self, levels: Sequence[int] = (5, 3), eps: float = 1e-3):
        super().__init__()
        if len(levels) == 0 or any(int(level) < 2 for level in levels):
            raise ValueError(f"fsq_levels must be one or more levels of at least 2 each (one per channel), got {levels}.")
        levels_t = th.tensor(list(levels), dtype=th.long)
        self.num_channels = len(levels)
        self.codebook_size = int(th.prod(levels_t).item())
        self.eps = eps
        self.register_buffer("levels", levels_t, persistent=False)
        # Mixed-radix basis: index = sum_i level_index_i * basis_i, e.g. [1, 5] for levels [5, 3].
        self.register_buffer("basis", th.cumprod(th.tensor([1, *levels[:-1]]), 0), persistent=False)
        self.register_buffer("half_width", (levels_t // 2).float(), persistent=False)
        self.register_buffer("codebook", self.indices_to_codes(th.arange(self.codebook_size)), persistent=False)

    def bound(self, z: th.Tensor) -> th.Tensor:
        """Squash ``z`` so that rounding gives exactly ``levels[i]`` values per channel."""
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 + self.eps) / 2
        offset = th.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = th.atanh(offset / half)
        return th.tanh(z + shift) * half - offset

    def forward(self, z: th.Tensor) -> th.Tensor:
        """Quantized codes in [-1, 1] with the shape of ``z`` (last dim = channels); gradients pass straight through."""
        return round_ste(self.bound(z)) / self.half_width.to(z.dtype)

    def codes_to_indices(self, codes: th.Tensor) -> th.Tensor:
        """Codebook index of each code, ``(..., b) -> (...)``."""
        level_index = (codes * self.half_width + self.half_width).round().long()
        return (level_index * self.basis).sum(dim=-1)

    def indices_to_codes(self, indices: th.Tensor) -> th.Tensor:
        """Code vector of each index, ``(...) -> (..., b)``."""
        level_index = (indices.unsqueeze(-1) // self.basis) % self.levels
        return (level_index - self.half_width) / self.half_width
