"""Recurrent State-Space Model (Hafner et al., "Learning Latent Dynamics for Planning from Pixels", 2019; Dreamer V1)."""

from __future__ import annotations

from typing import NamedTuple

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.common.networks import mlp


class RSSMState(NamedTuple):
    """Latent state: deterministic GRU state ``deter`` and a diagonal Gaussian stochastic state.

    Every field has shape ``(batch, dim)`` (or ``(..., dim)`` for stacked sequences).
    """

    mean: th.Tensor
    std: th.Tensor
    stoch: th.Tensor
    deter: th.Tensor

    @property
    def feature(self) -> th.Tensor:
        """``concat(s_t, h_t)``: the input of every head."""
        return th.cat([self.stoch, self.deter], dim=-1)

    def detach(self) -> RSSMState:
        return RSSMState(*(x.detach() for x in self))

    def flatten(self) -> RSSMState:
        """Merge the leading (batch, time) dimensions."""
        return RSSMState(*(x.reshape(-1, x.shape[-1]) for x in self))

    def mask(self, keep: th.Tensor) -> RSSMState:
        """Zero the states of rows where ``keep`` is 0 (episode starts)."""
        keep = keep.to(self.deter.dtype).unsqueeze(-1)
        return RSSMState(*(x * keep for x in self))


def stack_states(states: list[RSSMState], dim: int) -> RSSMState:
    return RSSMState(*(th.stack(field, dim=dim) for field in zip(*states, strict=True)))


def gaussian_kl(post: RSSMState, prior: RSSMState) -> th.Tensor:
    """``KL(post || prior)`` of diagonal Gaussians, summed over latent dimensions."""
    var_ratio = (post.std / prior.std) ** 2
    mean_term = ((post.mean - prior.mean) / prior.std) ** 2
    return 0.5 * (var_ratio + mean_term - 1 - th.log(var_ratio)).sum(dim=-1)


class RSSM(nn.Module):
    """Prior (``imagine``) and posterior (``observe``) steps of Dreamer's RSSM.

    :param action_dim: Size of the action vector (one-hot size for discrete actions).
    :param embed_dim: Size of the observation embedding.
    :param stoch_dim: Stochastic state size (paper: 30).
    :param deter_dim: GRU state size (paper: 200).
    :param hidden_dim: Hidden layer size (paper: 200).
    :param min_std: Added to ``softplus`` of the predicted std (paper: 0.1).
    :param activation_fn: Activation (paper: ELU).
    """

    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        stoch_dim: int = 30,
        deter_dim: int = 200,
        hidden_dim: int = 200,
        min_std: float = 0.1,
        activation_fn: type[nn.Module] = nn.ELU,
    ):
        super().__init__()
        self.stoch_dim, self.deter_dim, self.min_std = stoch_dim, deter_dim, min_std
        self.feature_dim = stoch_dim + deter_dim
        self.prior_input = nn.Sequential(nn.Linear(stoch_dim + action_dim, hidden_dim), activation_fn())
        self.gru = nn.GRUCell(hidden_dim, deter_dim)
        # Heads: one hidden layer each, float32 outputs (common.networks.mlp).
        self.prior_head = mlp(deter_dim, [hidden_dim], 2 * stoch_dim, activation_fn, layer_norm=False)
        self.posterior_head = mlp(deter_dim + embed_dim, [hidden_dim], 2 * stoch_dim, activation_fn, layer_norm=False)

    def initial(self, batch_size: int, device: th.device | str) -> RSSMState:
        """The all-zero state used at episode starts."""
        zeros = th.zeros(batch_size, self.stoch_dim, device=device)
        return RSSMState(zeros, zeros.clone(), zeros.clone(), th.zeros(batch_size, self.deter_dim, device=device))

    def _gaussian(self, stats: th.Tensor, deter: th.Tensor, sample: bool) -> RSSMState:
        mean, std = stats.chunk(2, dim=-1)
        std = F.softplus(std) + self.min_std
        stoch = mean + std * th.randn_like(std) if sample else mean  # reparameterised
        return RSSMState(mean, std, stoch, deter)

    def imagine(self, prev: RSSMState, prev_action: th.Tensor, sample: bool = True) -> RSSMState:
        """Prior step ``p(s_t | s_{t-1}, a_{t-1})``: the transition used for imagination."""
        hidden = self.prior_input(th.cat([prev.stoch, prev_action], dim=-1))
        deter = self.gru(hidden, prev.deter).float()
        return self._gaussian(self.prior_head(deter), deter, sample)

    def observe_step(
        self, prev: RSSMState, prev_action: th.Tensor, embed: th.Tensor, sample: bool = True
    ) -> tuple[RSSMState, RSSMState]:
        """Posterior step ``q(s_t | s_{t-1}, a_{t-1}, o_t)``; returns ``(posterior, prior)``."""
        prior = self.imagine(prev, prev_action, sample)
        posterior = self._gaussian(self.posterior_head(th.cat([prior.deter, embed], dim=-1)), prior.deter, sample)
        return posterior, prior

    def observe(
        self, embeds: th.Tensor, prev_actions: th.Tensor, state: RSSMState | None = None
    ) -> tuple[RSSMState, RSSMState]:
        """Filter a sequence: ``embeds (B, T, E)``, ``prev_actions (B, T, A)`` (``a_{t-1}`` for each ``o_t``).

        :return: Posterior and prior states stacked as ``(B, T, dim)``.
        """
        state = self.initial(embeds.shape[0], embeds.device) if state is None else state
        posteriors, priors = [], []
        for t in range(embeds.shape[1]):
            state, prior = self.observe_step(state, prev_actions[:, t], embeds[:, t])
            posteriors.append(state)
            priors.append(prior)
        return stack_states(posteriors, dim=1), stack_states(priors, dim=1)
