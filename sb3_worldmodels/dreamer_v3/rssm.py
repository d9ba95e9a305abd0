"""DreamerV3's recurrent state-space model with categorical latents, and its layers, in plain PyTorch.

As in the paper (arXiv 2301.04104v1) and its official code of that version: every hidden layer is a linear map
without bias, LayerNorm (epsilon 1e-3) and SiLU; weights are drawn from a truncated normal scaled by the average of
fan-in and fan-out. The deterministic state ``h`` is a GRU whose gates come from one normalised linear layer and whose
update gate is biased towards keeping the state (``sigmoid(u - 1)``); the stochastic state ``z`` is 32 categoricals of
32 classes, mixed with 1% uniform, sampled with straight-through gradients. The first state of every sequence is
learned: ``h_0 = tanh(w)`` and ``z_0`` the most likely code of the prior at ``h_0``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.dreamer_v3.distributions import straight_through_sample, unimix_logits


def init_weight_(weight: th.Tensor, scale: float = 1.0, uniform: bool = False) -> th.Tensor:
    """Truncated normal (at two standard deviations) with variance ``scale / fan_avg``, ``fan_avg`` the mean of the
    layer's fan-in and fan-out; zeros when ``scale`` is 0 (the reward and critic heads' output layers). ``uniform``:
    the uniform distribution of the same variance, as the official code initialises the layers that output a
    distribution's parameters (the RSSM's latent logits, the heads and the vector decoder)."""
    if scale == 0.0:
        return nn.init.zeros_(weight)
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    if weight.dim() > 2:  # convolutions: (out, in, kh, kw); receptive field counted in both fans
        fan_out *= weight[0, 0].numel()
    if uniform:
        limit = math.sqrt(3 * scale / ((fan_in + fan_out) / 2))
        return nn.init.uniform_(weight, -limit, limit)
    # 0.8796 is the standard deviation of a unit normal truncated at +/-2: divided out so that the variance is as asked.
    std = math.sqrt(scale / ((fan_in + fan_out) / 2)) / 0.87962566103423978
    with th.no_grad():
        return nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0).mul_(std)


class NormLinear(nn.Sequential):
    """``Linear`` without bias, ``LayerNorm`` (epsilon 1e-3) and, unless ``activation=False``, ``SiLU``."""

    def __init__(self, in_features: int, out_features: int, activation: bool = True):
        layers: list[nn.Module] = [nn.Linear(in_features, out_features, bias=False), nn.LayerNorm(out_features, eps=1e-3)]
        if activation:
            layers.append(nn.SiLU())
        super().__init__(*layers)
        init_weight_(self[0].weight)


def mlp(in_features: int, units: int, layers: int) -> nn.Sequential:
    """``layers`` :class:`NormLinear` layers of ``units`` units (the paper's MLPs before their output layer)."""
    return nn.Sequential(*(NormLinear(in_features if i == 0 else units, units) for i in range(layers)))


class RSSMState(NamedTuple):
    """One step of the model state: ``deter`` (batch, deter), ``logits`` and one-hot ``stoch`` (batch, stoch, classes)."""

    deter: th.Tensor
    logits: th.Tensor
    stoch: th.Tensor


class RSSM(nn.Module):
    """The recurrent state-space model: ``h_t = f(h_{t-1}, z_{t-1}, a_{t-1})``, the prior ``p(z_t | h_t)`` and the
    posterior ``q(z_t | h_t, x_t)`` from the observation's embedding ``x_t``.

    :param embed_dim: Size of the observation embedding the posterior reads.
    :param action_dim: Size of the action vector (one-hot for discrete actions).
    :param deter: Size of ``h`` (paper, size S: 512).
    :param stoch: Number of categoricals in ``z`` (32).
    :param classes: Classes per categorical (32).
    :param units: Width of the layers into and out of the GRU (paper, size S: 512).
    :param unimix: Uniform share mixed into every categorical (0.01).
    :param action_clip: Actions are scaled into [-action_clip, action_clip] before entering the model (1.0).
    """

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        deter: int = 512,
        stoch: int = 32,
        classes: int = 32,
        units: int = 512,
        unimix: float = 0.01,
        action_clip: float = 1.0,
    ):
        super().__init__()
        self.deter_dim, self.stoch_dim, self.classes = deter, stoch, classes
        self.unimix, self.action_clip = unimix, action_clip
        self.initial_deter = nn.Parameter(th.zeros(deter))
        self.img_in = NormLinear(stoch * classes + action_dim, units)
        self.gru = NormLinear(deter + units, 3 * deter, activation=False)
        self.img_out = NormLinear(deter, units)
        self.img_stats = nn.Linear(units, stoch * classes)
        self.obs_out = NormLinear(deter + embed_dim, units)
        self.obs_stats = nn.Linear(units, stoch * classes)
        for layer in (self.img_stats, self.obs_stats):
            init_weight_(layer.weight, uniform=True)
            nn.init.zeros_(layer.bias)

    @property
    def feature_dim(self) -> int:
        """Size of ``features(state)``, what the heads and the actor read: ``deter + stoch * classes``."""
        return self.deter_dim + self.stoch_dim * self.classes

    def features(self, state: RSSMState) -> th.Tensor:
        return th.cat([state.deter, state.stoch.flatten(-2)], dim=-1)

    def _logits(self, layer: nn.Linear, x: th.Tensor) -> th.Tensor:
        logits = layer(x).view(*x.shape[:-1], self.stoch_dim, self.classes)
        return unimix_logits(logits, self.unimix)

    def initial(self, batch_size: int) -> RSSMState:
        """The learned first state: ``h_0 = tanh(w)``, ``z_0`` the most likely code of the prior at ``h_0``."""
        deter = th.tanh(self.initial_deter).unsqueeze(0)  # computed once, then shared by the batch
        logits = self._logits(self.img_stats, self.img_out(deter))
        stoch = F.one_hot(logits.argmax(-1), self.classes).to(deter.dtype)
        return RSSMState(deter.expand(batch_size, -1), logits.expand(batch_size, -1, -1), stoch.expand(batch_size, -1, -1))

    def _clip(self, action: th.Tensor) -> th.Tensor:
        if self.action_clip <= 0.0:
            return action
        return action * (self.action_clip / action.abs().clamp(min=self.action_clip)).detach()

    def img_step(
        self, state: RSSMState, action: th.Tensor, generator: th.Generator | None = None, deterministic: bool = False
    ) -> RSSMState:
        """One step of the prior: the GRU from ``(z_{t-1}, a_{t-1})``, then ``z_t ~ p(z_t | h_t)`` (its most likely
        code with ``deterministic``)."""
        x = self.img_in(th.cat([state.stoch.flatten(-2), self._clip(action)], dim=-1))
        reset, candidate, update = self.gru(th.cat([state.deter, x], dim=-1)).chunk(3, dim=-1)
        candidate = th.tanh(th.sigmoid(reset) * candidate)
        update = th.sigmoid(update - 1)
        deter = update * candidate + (1 - update) * state.deter
        logits = self._logits(self.img_stats, self.img_out(deter))
        return RSSMState(deter, logits, self._code(logits, generator, deterministic))

    def _code(self, logits: th.Tensor, generator: th.Generator | None, deterministic: bool) -> th.Tensor:
        if deterministic:
            return F.one_hot(logits.argmax(-1), self.classes).to(logits.dtype)
        return straight_through_sample(logits, generator)

    def obs_step(
        self,
        state: RSSMState,
        action: th.Tensor,
        embed: th.Tensor,
        is_first: th.Tensor,
        generator: th.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[RSSMState, RSSMState]:
        """One observed step: where ``is_first`` the previous state and action are replaced by the learned initial
        state and zeros; then the prior step and the posterior ``z_t ~ q(z_t | h_t, x_t)`` (its most likely code with
        ``deterministic``, for repeatable acting). Returns (posterior, prior)."""
        keep = (~is_first.bool()).to(embed.dtype).unsqueeze(-1)
        initial = self.initial(embed.shape[0])
        state = RSSMState(
            keep * state.deter + (1 - keep) * initial.deter,
            keep.unsqueeze(-1) * state.logits + (1 - keep.unsqueeze(-1)) * initial.logits,
            keep.unsqueeze(-1) * state.stoch + (1 - keep.unsqueeze(-1)) * initial.stoch,
        )
        prior = self.img_step(state, keep * action, generator)
        logits = self._logits(self.obs_stats, self.obs_out(th.cat([prior.deter, embed], dim=-1)))
        return RSSMState(prior.deter, logits, self._code(logits, generator, deterministic)), prior

    def observe(
        self,
        embeds: th.Tensor,
        actions: th.Tensor,
        is_first: th.Tensor,
        state: RSSMState | None = None,
        generator: th.Generator | None = None,
    ) -> tuple[RSSMState, RSSMState]:
        """Posteriors and priors along sequences (batch, time, ...): ``actions[:, t]`` is the action that led to
        ``embeds[:, t]``. The states come back stacked along time."""
        state = self.initial(embeds.shape[0]) if state is None else state
        posteriors, priors = [], []
        for t in range(embeds.shape[1]):
            state, prior = self.obs_step(state, actions[:, t], embeds[:, t], is_first[:, t], generator)
            posteriors.append(state)
            priors.append(prior)
        stack = lambda states: RSSMState(*(th.stack(parts, dim=1) for parts in zip(*states, strict=True)))  # noqa: E731
        return stack(posteriors), stack(priors)
