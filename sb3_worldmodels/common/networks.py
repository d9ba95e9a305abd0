"""Network builders shared by the algorithms: plain PyTorch modules.

Faster CPU versions of some of these layers live in ``sb3_worldmodels.accel`` and are swapped in by the algorithms'
``accel`` argument; the modules here are what ``accel="none"`` runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch as th
import torch.nn.functional as F
from torch import nn

#: Kept importable under this name: checkpoints store the policy's ``activation_fn`` by its qualified name.
Mish = nn.Mish


class MLP(nn.Sequential):
    """``nn.Sequential`` whose output is float32 (a no-op in float32): under mixed precision, a network's output
    still reaches losses, distributions and the planner in float32."""

    def forward(self, x: th.Tensor) -> th.Tensor:
        return super().forward(x).float()


def mlp(
    input_dim: int,
    hidden_dims: Sequence[int],
    output_dim: int,
    activation_fn: type[nn.Module] = Mish,
    layer_norm: bool = True,
) -> MLP:
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
    return MLP(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated with one batched matrix product.

    Input ``(n, batch, in_features)`` (or ``(batch, in_features)``, shared by all members), output
    ``(n, batch, out_features)``. Each member is initialised as ``nn.Linear`` would be. ``members``
    evaluates only a subset (e.g. the two critics REDQ samples), in the order given.
    """

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        self.n, self.in_features, self.out_features = n, in_features, out_features
        self.weight = nn.Parameter(th.empty(n, in_features, out_features))
        self.bias = nn.Parameter(th.empty(n, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return th.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"n={self.n}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with separate affine parameters per ensemble member, input ``(n, batch, features)``."""

    def __init__(self, n: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(th.ones(n, 1, features))
        self.bias = nn.Parameter(th.zeros(n, 1, features))

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return th.addcmul(bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), weight)


class EnsembleMLP(nn.Sequential):
    """``n`` MLPs of the shape built by :func:`mlp`, vectorised: ``(batch, in)`` or ``(n, batch, in)`` to ``(n, batch, out)``.

    ``forward(x, members)`` evaluates only the ensemble members whose indices are given.
    """

    def __init__(
        self,
        n: int,
        input_dim: int,
        hidden_dims: Sequence[int],
        output_dim: int,
        activation_fn: type[nn.Module] = Mish,
        layer_norm: bool = True,
    ):
        layers: list[nn.Module] = []
        last = input_dim
        for width in hidden_dims:
            layers.append(EnsembleLinear(n, last, width))
            if layer_norm:
                layers.append(EnsembleLayerNorm(n, width))
            layers.append(activation_fn())
            last = width
        layers.append(EnsembleLinear(n, last, output_dim))
        super().__init__(*layers)
        self.n = n

    def forward(self, x: th.Tensor, members: th.Tensor | None = None) -> th.Tensor:
        for layer in self:
            x = layer(x, members) if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)) else layer(x)
        return x.float()  # float32 output, as MLP


ensemble_mlp = EnsembleMLP
