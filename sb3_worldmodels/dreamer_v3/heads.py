"""DreamerV3's prediction heads and actor (arXiv 2301.04104v1), in plain PyTorch.

Every head is an MLP of normalised layers (:func:`~sb3_worldmodels.dreamer_v3.rssm.mlp`) and an output layer:

- :class:`TwoHotHead`: rewards and values as a softmax over 255 bins in symlog space, its output layer initialised
  to zero (so the first predictions are 0 whatever their scale will be);
- :class:`BernoulliHead`: the episode continuation flag;
- :class:`Actor`: for a ``Box`` action space a normal distribution with mean ``tanh(m)`` and standard deviation
  ``0.9 sigmoid(s + 2) + 0.1`` (between 0.1 and 1), trained by backpropagation through the model; for ``Discrete``
  a categorical mixed with 1% uniform, trained by REINFORCE.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from sb3_worldmodels.dreamer_v3.distributions import two_hot_bins, two_hot_log_prob, two_hot_mean, unimix_logits
from sb3_worldmodels.dreamer_v3.rssm import init_weight_, mlp


def _output_layer(units: int, out_features: int, scale: float) -> nn.Linear:
    layer = nn.Linear(units, out_features)
    init_weight_(layer.weight, scale, uniform=True)
    nn.init.zeros_(layer.bias)
    return layer


class TwoHotHead(nn.Module):
    """A scalar predicted as a two-hot distribution over symlog bins (rewards, values).

    :param in_features: Size of the model features.
    :param units: Width of the hidden layers.
    :param layers: Number of hidden layers.
    :param bins: Number of bins (255).
    """

    def __init__(self, in_features: int, units: int, layers: int, bins: int = 255):
        super().__init__()
        self.net = mlp(in_features, units, layers)
        self.out = _output_layer(units, bins, scale=0.0)
        self.register_buffer("bins", two_hot_bins(bins), persistent=False)

    def forward(self, features: th.Tensor) -> th.Tensor:
        """The bin logits."""
        return self.out(self.net(features))

    def mean(self, features: th.Tensor) -> th.Tensor:
        """The prediction, ``symexp(softmax(logits) . bins)``."""
        return two_hot_mean(self(features), self.bins)

    def log_prob(self, features: th.Tensor, target: th.Tensor) -> th.Tensor:
        """Log-likelihood of ``target`` (the negative of the head's loss)."""
        return two_hot_log_prob(self(features), target, self.bins)


class BernoulliHead(nn.Module):
    """The probability that the episode continues after a state."""

    def __init__(self, in_features: int, units: int, layers: int):
        super().__init__()
        self.net = mlp(in_features, units, layers)
        self.out = _output_layer(units, 1, scale=1.0)

    def forward(self, features: th.Tensor) -> th.Tensor:
        """The logit of continuing."""
        return self.out(self.net(features)).squeeze(-1)

    def log_prob(self, features: th.Tensor, continues: th.Tensor) -> th.Tensor:
        return -F.binary_cross_entropy_with_logits(self(features), continues.to(features.dtype), reduction="none")


class Actor(nn.Module):
    """The policy ``pi(a | s)`` on the model features.

    :param in_features: Size of the model features.
    :param action_dim: Dimensions of a ``Box`` action, or the number of actions of a ``Discrete`` space.
    :param discrete: Whether the actions are discrete.
    :param units: Width of the hidden layers.
    :param layers: Number of hidden layers.
    :param min_std: Smallest standard deviation of a continuous action (0.1).
    :param max_std: Largest standard deviation of a continuous action (1.0).
    :param unimix: Uniform share mixed into a discrete policy (0.01).
    """

    def __init__(
        self,
        in_features: int,
        action_dim: int,
        discrete: bool,
        units: int,
        layers: int,
        min_std: float = 0.1,
        max_std: float = 1.0,
        unimix: float = 0.01,
    ):
        super().__init__()
        self.action_dim, self.discrete = action_dim, discrete
        self.min_std, self.max_std, self.unimix = min_std, max_std, unimix
        self.net = mlp(in_features, units, layers)
        self.out = _output_layer(units, action_dim, scale=1.0)
        self.std = None if discrete else _output_layer(units, action_dim, scale=1.0)

    def forward(self, features: th.Tensor) -> D.Distribution:
        """The action distribution: independent normals (``Box``) or a one-hot categorical (``Discrete``)."""
        x = self.net(features)
        if self.discrete:
            return D.OneHotCategoricalStraightThrough(logits=unimix_logits(self.out(x), self.unimix), validate_args=False)
        std = (self.max_std - self.min_std) * th.sigmoid(self.std(x) + 2.0) + self.min_std
        # No argument validation: it would synchronise with the device on every call, and refuse a NaN that the
        # algorithm's non-finite-gradient check is there to catch.
        return D.Independent(D.Normal(th.tanh(self.out(x)), std, validate_args=False), 1, validate_args=False)

    def mode(self, features: th.Tensor) -> th.Tensor:
        """The most likely action: the mean of the normals, or the one-hot of the most likely action."""
        distribution = self(features)
        if self.discrete:
            return F.one_hot(distribution.logits.argmax(-1), self.action_dim).to(features.dtype)
        return distribution.mean
