"""Multi-step return targets shared by the algorithms."""

from __future__ import annotations

import torch as th


def n_step_targets(rewards: th.Tensor, terminations: th.Tensor, bootstrap: th.Tensor, gamma: float) -> th.Tensor:
    """n-step TD targets ``sum_k gamma^k r_k + gamma^n Q(s_n)``, cut at the first termination.

    Rewards after a termination are dropped and a terminated sequence does not bootstrap; a truncation is
    not a termination (the sampler only puts it on the last step, whose next observation is the true one).

    :param rewards: ``(batch, n)``.
    :param terminations: ``(batch, n)``, 1.0 where the transition terminated the episode.
    :param bootstrap: Value of the observation after the n-th transition, ``(batch,)``.
    :param gamma: Discount factor.
    :return: Targets ``(batch,)``.
    """
    n = rewards.shape[1]
    discounts = gamma ** th.arange(n, device=rewards.device, dtype=rewards.dtype)
    # alive[k] = 1 while no transition before k has terminated.
    not_terminated = th.cumprod(1.0 - terminations, dim=1)
    alive = th.cat([th.ones_like(not_terminated[:, :1]), not_terminated[:, :-1]], dim=1)
    returns = (discounts * alive * rewards).sum(dim=1)
    return returns + gamma**n * not_terminated[:, -1] * bootstrap
