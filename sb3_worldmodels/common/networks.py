"""Network builders shared by the algorithms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch as th
import torch.nn.functional as F
from torch import nn


def mlp(
    input_dim: int,
    hidden_dims: Sequence[int],
    output_dim: int,
    activation_fn: type[nn.Module] = nn.Mish,
    layer_norm: bool = True,
) -> nn.Sequential:
    """MLP whose hidden layers are ``Linear -> [LayerNorm] -> activation`` and whose output layer is a plain ``Linear``.

    With ``layer_norm=True`` and ``nn.Mish`` this is the block of DC-MPC (and TD-MPC2); Dreamer uses
    ``layer_norm=False`` with ``nn.ELU``.
    """
    layers: list[nn.Module] = []
    last = input_dim
    for width in hidden_dims:
        layers.append(nn.Linear(last, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(activation_fn())
        last = width
    layers.append(nn.Linear(last, output_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated with one batched matrix product.

    Input ``(n, batch, in_features)`` (or ``(batch, in_features)``, shared by all members), output
    ``(n, batch, out_features)``. Each member is initialised as ``nn.Linear`` would be.
    """

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        self.n, self.in_features, self.out_features = n, in_features, out_features
        self.weight = nn.Parameter(th.empty(n, in_features, out_features))
        self.bias = nn.Parameter(th.empty(n, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: th.Tensor) -> th.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, -1, -1)
        return th.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"n={self.n}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with separate affine parameters per ensemble member, input ``(n, batch, features)``."""

    def __init__(self, n: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(th.ones(n, 1, features))
        self.bias = nn.Parameter(th.zeros(n, 1, features))

    def forward(self, x: th.Tensor) -> th.Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


def ensemble_mlp(
    n: int,
    input_dim: int,
    hidden_dims: Sequence[int],
    output_dim: int,
    activation_fn: type[nn.Module] = nn.Mish,
    layer_norm: bool = True,
) -> nn.Sequential:
    """``n`` MLPs of the shape built by :func:`mlp`, vectorised: ``(batch, in)`` or ``(n, batch, in)`` to ``(n, batch, out)``."""
    layers: list[nn.Module] = []
    last = input_dim
    for width in hidden_dims:
        layers.append(EnsembleLinear(n, last, width))
        if layer_norm:
            layers.append(EnsembleLayerNorm(n, width))
        layers.append(activation_fn())
        last = width
    layers.append(EnsembleLinear(n, last, output_dim))
    return nn.Sequential(*layers)
