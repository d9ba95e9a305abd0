"""Dreamer's (V1, Hafner et al., ICLR 2020) three losses, to read beside the paper.

- the world model (eq. 10): reconstruction and reward log-likelihoods plus ``beta KL(posterior || prior)``, with free
  nats on the batch mean of the KL (and, optionally, the continuation log-likelihood of the official code's ``pcont``);
- the actor (eq. 7): the lambda-returns of imagined trajectories, maximised through the dynamics, each step weighted by
  the discounted probability of reaching it;
- the value (eq. 8): a regression of the value onto those lambda-returns.

Each function takes the tensors of one update; :class:`~sb3_worldmodels.dreamer.dreamer.Dreamer` computes them and
applies the optimizer steps. Everything after the end of a sequence's episode is padding, masked out of every mean.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F

from sb3_worldmodels.common.buffers import masked_mean
from sb3_worldmodels.common.returns import lambda_return
from sb3_worldmodels.dreamer.rssm import RSSMState, gaussian_kl


def world_model_loss(
    *,
    reconstruction_log_likelihood: th.Tensor,
    reward_prediction: th.Tensor,
    rewards: th.Tensor,
    posterior: RSSMState,
    prior: RSSMState,
    observed: th.Tensor,
    transitions: th.Tensor,
    free_nats: float,
    kl_scale: float,
    continuation_logits: th.Tensor | None = None,
    terminations: th.Tensor | None = None,
    continuation_coef: float = 1.0,
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """The negative ELBO of eq. 10 on a batch of sequences.

    :param reconstruction_log_likelihood: ``(B, T)`` log-likelihood of each observation under the decoder.
    :param reward_prediction: ``(B, T - 1)``: the reward predicted from the state of ``o_{t+1}`` for transition ``t``.
    :param rewards: ``(B, T - 1)`` stored rewards.
    :param posterior: Posterior states ``(B, T, ...)``; ``prior`` the prior states of the same steps.
    :param observed: ``(B, T)``, 1.0 for the observations of each sequence's own episode.
    :param transitions: ``(B, T - 1)``, 1.0 for its true transitions.
    :param free_nats: No KL gradient while the batch mean of the KL is below this.
    :param kl_scale: ``beta``.
    :param continuation_logits: ``(B, T - 1)`` logits of continuing after each transition, with ``terminations``
        their targets' complement, weighted by ``continuation_coef``; ``None`` without a continuation head.
    """
    reconstruction = -masked_mean(reconstruction_log_likelihood, observed)
    # A unit-variance Gaussian's negative log-likelihood without its constant.
    reward_loss = 0.5 * masked_mean((reward_prediction - rewards) ** 2, transitions)
    kl = masked_mean(gaussian_kl(posterior, prior), observed)
    loss = reconstruction + reward_loss + kl_scale * th.clamp(kl, min=free_nats)
    stats = {
        "world_model/reconstruction_loss": reconstruction.detach(),
        "world_model/reward_loss": reward_loss.detach(),
        "world_model/kl": kl.detach(),
    }
    if continuation_logits is not None:
        continuation = F.binary_cross_entropy_with_logits(continuation_logits, 1.0 - terminations, reduction="none")
        continuation_loss = masked_mean(continuation, transitions)
        loss = loss + continuation_coef * continuation_loss
        stats["world_model/continuation_loss"] = continuation_loss.detach()
    stats["world_model/loss"] = loss.detach()
    return loss, stats


def imagined_returns(
    rewards: th.Tensor, values: th.Tensor, discounts: th.Tensor, lambda_: float
) -> tuple[th.Tensor, th.Tensor]:
    """Lambda-returns along imagined trajectories and the weight of each of their steps.

    :param rewards: ``(H, N)`` rewards predicted at the imagined states; ``values`` and ``discounts`` the same shape.
    :return: ``(returns, weights)``, each ``(H - 1, N)``: ``V_lambda`` of states ``0..H-2``, bootstrapped from the
        last state's value, and the discounted probability of having reached each state (without gradient).
    """
    returns = lambda_return(rewards[:-1], values[:-1], discounts[:-1], values[-1], lambda_)
    weights = th.cumprod(th.cat([th.ones_like(discounts[:1]), discounts[:-2]], dim=0), dim=0).detach()
    return returns, weights


def actor_loss(
    returns: th.Tensor, weights: th.Tensor, valid: th.Tensor, entropy: th.Tensor | None = None, entropy_scale: float = 0.0
) -> th.Tensor:
    """Eq. 7: minus the weighted lambda-returns (their gradient reaches the actor through the imagined dynamics).

    :param valid: ``(N,)``, 1.0 for trajectories imagined from true observations.
    :param entropy: ``(H - 1, N)`` entropy of the action that led to each state of ``returns`` (the official code's
        optional bonus, 0 in the paper), weighted by ``entropy_scale``.
    """
    loss = -masked_mean(weights * returns, valid)
    if entropy_scale and entropy is not None:
        loss = loss - entropy_scale * masked_mean(weights * entropy, valid)
    return loss


def value_loss(value_prediction: th.Tensor, returns: th.Tensor, weights: th.Tensor, valid: th.Tensor) -> th.Tensor:
    """Eq. 8: the weighted squared error of the value against the (stopped) lambda-returns."""
    return masked_mean(weights * 0.5 * (value_prediction - returns.detach()) ** 2, valid)
