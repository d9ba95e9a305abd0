"""DreamerV3's actor and critic losses on an imagined trajectory (arXiv 2301.04104v1, "actor critic learning").

A trajectory holds ``H + 1`` model states per start (the start and ``H`` imagined steps), the ``H`` actions that led
from one to the next (the actor's samples, with gradients for a ``Box`` space) with their log-probabilities and the
policy's entropies, and the continuation flags (the continuation head's mode, 1 or 0). From them:

- rewards ``r_t`` (the reward head at states ``1..H``), discounts ``d_t = gamma c_{t+1}`` and weights
  ``w_t = prod_{k<=t} gamma c_k / gamma``, the discount while the episode is predicted to run, 0 after it ends;
- lambda-returns ``R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1})`` bootstrapped from the critic
  (:func:`sb3_worldmodels.common.returns.lambda_return`, shared with Dreamer V1);
- the actor loss: ``-(R_t - v_t) / max(1, S)`` (backpropagated through the model for ``Box`` actions, REINFORCE
  ``-log pi(a_t) sg((R_t - v_t) / max(1, S))`` for ``Discrete``) minus ``eta H[pi]``, weighted by ``w_t``;
- the critic loss: the two-hot log-likelihood of ``sg(R_t)`` and of the slow critic's prediction (the regulariser
  towards an exponential moving average of the critic), weighted by ``w_t``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch as th
from torch import nn

from sb3_worldmodels.common.returns import lambda_return
from sb3_worldmodels.dreamer_v3.distributions import ReturnNormalizer, two_hot_log_prob, two_hot_mean
from sb3_worldmodels.dreamer_v3.heads import Actor, BernoulliHead, TwoHotHead
from sb3_worldmodels.dreamer_v3.rssm import RSSM, RSSMState


class Trajectory(NamedTuple):
    """An imagined trajectory: ``features`` (H + 1, N, F), ``actions`` (H, N, A), their ``log_probs`` and the policy's
    ``entropies`` in the states they were taken in (H, N), and ``continues`` (H + 1, N)."""

    features: th.Tensor
    actions: th.Tensor
    log_probs: th.Tensor
    entropies: th.Tensor
    continues: th.Tensor


def imagine(
    rssm: RSSM,
    actor: Actor,
    continuation: BernoulliHead,
    start: RSSMState,
    start_continues: th.Tensor,
    horizon: int = 15,
    generator: th.Generator | None = None,
) -> Trajectory:
    """Roll the actor out in the model for ``horizon`` steps from each start state (``(N, ...)``, detached).

    The actor sees each state without its gradient and acts by sampling (``rsample``: a ``Box`` action carries the
    gradient of the later states and rewards back to it). The log-probability of each action (of the action without
    its gradient, what REINFORCE needs) and the policy's entropy are kept from the same evaluation of the actor, which
    the actor loss then uses. The continuation of the start state is given (1 unless it ended an episode); that of
    each imagined state is the continuation head's mode, 1 or 0, as in the official code of the paper's first version
    (its probability would shorten the horizon wherever the head is slightly unsure, and on tasks that can end pull the
    values and the actor away from states merely unusual).
    """
    state = RSSMState(*(part.detach() for part in start))
    features, actions, log_probs, entropies = [rssm.features(state)], [], [], []
    for _ in range(horizon):
        policy = actor(features[-1].detach())
        action = policy.rsample()
        actions.append(action)
        log_probs.append(policy.log_prob(action.detach()))
        entropies.append(policy.entropy())
        state = rssm.img_step(state, action, generator)
        features.append(rssm.features(state))
    features = th.stack(features)
    with th.no_grad():
        imagined_continues = (continuation(features[1:]) > 0).to(features.dtype)  # the Bernoulli's mode
    continues = th.cat([start_continues.unsqueeze(0), imagined_continues], dim=0)
    return Trajectory(features, th.stack(actions), th.stack(log_probs), th.stack(entropies), continues)


def imagined_weights(continues: th.Tensor, gamma: float) -> th.Tensor:
    """``w_t = prod_{k<=t} (gamma c_k) / gamma``: 1 at the start (where ``c_0`` is 1), then discounted, and 0 from the
    first step predicted not to continue."""
    return (th.cumprod(gamma * continues, dim=0) / gamma).detach()


def returns_and_values(
    trajectory: Trajectory, reward_head: TwoHotHead, critic: TwoHotHead, gamma: float, lambda_: float
) -> tuple[th.Tensor, th.Tensor]:
    """The lambda-returns ``R_0..R_{H-1}`` and the critic's values ``v_0..v_{H-1}`` along ``trajectory``."""
    rewards = reward_head.mean(trajectory.features[1:])
    values = critic.mean(trajectory.features)
    discounts = gamma * trajectory.continues[1:]
    returns = lambda_return(rewards, values[:-1], discounts, values[-1], lambda_)
    return returns, values[:-1]


def actor_loss(
    trajectory: Trajectory,
    returns: th.Tensor,
    values: th.Tensor,
    return_normalizer: ReturnNormalizer,
    weights: th.Tensor,
    entropy_scale: float = 3e-4,
    discrete: bool = False,
    valid: th.Tensor | None = None,
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """The actor loss, by REINFORCE for ``discrete`` actions; updates ``return_normalizer`` with ``returns`` first, as
    the official code does, with the trajectories of the ``valid`` start states (``(N,)``; padding after an episode's
    end is not data, and its near-zero returns would widen the percentile range)."""
    return_normalizer.update(returns, None if valid is None else valid.unsqueeze(0))
    advantages = (returns - values) / return_normalizer.scale()
    entropy = trajectory.entropies
    if discrete:
        objective = trajectory.log_probs * advantages.detach()
    else:
        objective = advantages
    loss = (-(objective + entropy_scale * entropy) * weights[:-1]).mean()
    stats = {
        "train/actor_loss": loss.detach(),
        "train/actor_entropy": entropy.detach().mean(),
        "train/return_scale": return_normalizer.scale().detach(),
        "train/imagined_return": returns.detach().mean(),
    }
    return loss, stats


def critic_loss(
    critic: TwoHotHead, slow_critic: TwoHotHead, trajectory: Trajectory, returns: th.Tensor, weights: th.Tensor
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """The critic loss with the slow critic's regulariser (scale 1)."""
    features = trajectory.features[:-1].detach()
    with th.no_grad():
        slow_values = slow_critic.mean(features)
    logits = critic(features)  # one forward pass serves both targets and the logged value
    bins = critic.bins
    log_likelihood = two_hot_log_prob(logits, returns.detach(), bins) + two_hot_log_prob(logits, slow_values, bins)
    loss = (-log_likelihood * weights[:-1]).mean()
    value_mean = two_hot_mean(logits.detach(), bins).mean()
    return loss, {"train/critic_loss": loss.detach(), "train/value_mean": value_mean}


@th.no_grad()
def update_slow_critic(critic: nn.Module, slow_critic: nn.Module, fraction: float = 0.02) -> None:
    """``slow <- fraction critic + (1 - fraction) slow`` for every parameter (the official code mixes 2% per update)."""
    for source, target in zip(critic.parameters(), slow_critic.parameters(), strict=True):
        target.lerp_(source, fraction)
