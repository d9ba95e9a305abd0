"""Multi-step return targets shared by the algorithms."""

from __future__ import annotations

import torch as th


def n_step_targets(
    rewards: th.Tensor,
    terminations: th.Tensor,
    bootstrap: th.Tensor,
    gamma: float,
    bootstrap_discount: float | None = None,
    mask: th.Tensor | None = None,
) -> th.Tensor:
    """n-step TD targets ``sum_k gamma^k r_k + gamma^n Q(s_n)``, cut at the first termination.

    Rewards after a termination are dropped and a terminated sequence does not bootstrap; a truncation is not a
    termination. With ``mask``, a sequence of ``m < n`` true transitions (its episode ended, or the buffer holds no
    more) bootstraps with ``gamma^m`` from ``bootstrap``, the value of the true next observation of its last one.

    :param rewards: ``(batch, n)``.
    :param terminations: ``(batch, n)``, 1.0 where the transition terminated the episode.
    :param bootstrap: Value of the observation after the last (true) transition, ``(batch,)``.
    :param gamma: Discount factor.
    :param bootstrap_discount: Factor of the bootstrap in place of ``gamma^n`` (the official DC-MPC code's one-step
        target uses 1).
    :param mask: ``(batch, n)``, 1.0 for the true transitions of each sequence (a prefix); all by default.
    :return: Targets ``(batch,)``.
    """
    n = rewards.shape[1]
    discounts = gamma ** th.arange(n, device=rewards.device, dtype=rewards.dtype)
    # alive[k] = 1 while no transition before k has terminated.
    not_terminated = th.cumprod(1.0 - terminations, dim=1)
    alive = th.cat([th.ones_like(not_terminated[:, :1]), not_terminated[:, :-1]], dim=1)
    if mask is not None:
        alive = alive * mask
    returns = (discounts * alive * rewards).sum(dim=1)
    if bootstrap_discount is not None:
        factor = bootstrap_discount
    elif mask is None:
        factor = gamma**n
    else:
        factor = gamma ** mask.sum(dim=1)
    return returns + factor * not_terminated[:, -1] * bootstrap


def lambda_return(
    rewards: th.Tensor, values: th.Tensor, discounts: th.Tensor, bootstrap: th.Tensor, lambda_: float
) -> th.Tensor:
    """TD(lambda) returns along the first (time) dimension (Dreamer eq. 6).

    ``R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1})`` with ``v_T = R_T = bootstrap``, where ``d_t`` is the
    discount (``gamma``, times the predicted continuation probability where there is one).

    :param rewards: ``(T, ...)`` rewards ``r_0 .. r_{T-1}``.
    :param values: ``(T, ...)`` values ``v_0 .. v_{T-1}`` of the same states.
    :param discounts: ``(T, ...)`` discounts ``d_0 .. d_{T-1}``.
    :param bootstrap: ``(...)`` value of the state after the last step.
    :param lambda_: Mixing coefficient; 1 gives Monte-Carlo returns, 0 one-step TD targets.
    :return: ``(T, ...)`` returns.
    """
    next_values = th.cat([values[1:], bootstrap.unsqueeze(0)], dim=0)
    inputs = rewards + discounts * (1 - lambda_) * next_values
    returns = []
    last = bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = inputs[t] + discounts[t] * lambda_ * last
        returns.append(last)
    return th.stack(returns[::-1], dim=0)
