"""Dreamer's losses (``dreamer/losses.py``) against values computed by hand."""

import math

import pytest
import torch as th

from sb3_worldmodels.dreamer.losses import actor_loss, imagined_returns, value_loss, world_model_loss
from sb3_worldmodels.dreamer.rssm import RSSMState


def _states(means: list[float], requires_grad: bool = False) -> RSSMState:
    """One sequence of 1-D unit-variance Gaussian states with the given means."""
    mean = th.tensor(means).reshape(1, -1, 1).requires_grad_(requires_grad)
    std = th.ones_like(mean)
    return RSSMState(mean, std, mean, th.zeros_like(mean))


def _world_model_loss(posterior: RSSMState, free_nats: float, **extra):
    return world_model_loss(
        # the third observation belongs to the next episode: padding
        reconstruction_log_likelihood=th.tensor([[-1.0, -3.0, -100.0]]),
        reward_prediction=th.tensor([[1.0, 5.0]]),
        rewards=th.tensor([[0.0, 0.0]]),
        posterior=posterior,
        prior=_states([0.0, 0.0, 0.0]),
        observed=th.tensor([[1.0, 1.0, 0.0]]),
        transitions=th.tensor([[1.0, 0.0]]),
        free_nats=free_nats,
        kl_scale=2.0,
        **extra,
    )


def test_world_model_loss_is_the_masked_negative_elbo():
    # reconstruction: mean of 1 and 3; reward: 0.5 * 1^2 on the one true transition;
    # KL of N(1, 1) and N(0, 1) from N(0, 1): 0.5 and 0, mean 0.25 (the padded step's 40.5 is masked)
    loss, stats = _world_model_loss(_states([1.0, 0.0, 9.0]), free_nats=0.0)
    assert stats["world_model/reconstruction_loss"].item() == pytest.approx(2.0)
    assert stats["world_model/reward_loss"].item() == pytest.approx(0.5)
    assert stats["world_model/kl"].item() == pytest.approx(0.25)
    assert loss.item() == pytest.approx(2.0 + 0.5 + 2.0 * 0.25)


def test_free_nats_floor_the_kl_and_stop_its_gradient():
    posterior = _states([1.0, 0.0, 9.0], requires_grad=True)
    loss, _ = _world_model_loss(posterior, free_nats=1.0)
    assert loss.item() == pytest.approx(2.0 + 0.5 + 2.0 * 1.0)
    loss.backward()
    assert th.all(posterior.mean.grad == 0)

    posterior = _states([1.0, 0.0, 9.0], requires_grad=True)
    loss, _ = _world_model_loss(posterior, free_nats=0.1)
    loss.backward()
    # d/dmu of 2 * mean(0.5 mu^2 over the two observed steps) at mu = 1 (the path through ``stoch`` adds nothing here)
    assert posterior.mean.grad[0, 0, 0].item() == pytest.approx(1.0)


def test_continuation_loss_is_masked_and_weighted():
    loss, stats = _world_model_loss(
        _states([0.0, 0.0, 0.0]),
        free_nats=0.0,
        continuation_logits=th.tensor([[0.0, 0.0]]),
        terminations=th.tensor([[0.0, 1.0]]),
        continuation_coef=0.5,
    )
    # a logit of 0 costs log 2 whatever the target; only the first transition is true
    assert stats["world_model/continuation_loss"].item() == pytest.approx(math.log(2.0))
    assert loss.item() == pytest.approx(2.0 + 0.5 + 0.5 * math.log(2.0))


def test_imagined_returns_bootstrap_from_the_last_state_and_weight_by_reaching_it():
    rewards = th.tensor([[1.0], [2.0], [3.0]])
    values = th.tensor([[10.0], [20.0], [30.0]])
    discounts = th.full((3, 1), 0.5)
    returns, weights = imagined_returns(rewards, values, discounts, lambda_=0.5)
    # R_1 = 2 + 0.5 (0.5 * 30 + 0.5 * 30) = 17; R_0 = 1 + 0.5 (0.5 * 20 + 0.5 * 17) = 10.25
    assert returns[:, 0].tolist() == pytest.approx([10.25, 17.0])
    assert weights[:, 0].tolist() == pytest.approx([1.0, 0.5])


def test_actor_and_value_losses_skip_invalid_trajectories():
    returns = th.tensor([[10.25, -99.0], [17.0, -99.0]])
    weights = th.tensor([[1.0, 1.0], [0.5, 0.5]])
    valid = th.tensor([1.0, 0.0])
    assert actor_loss(returns, weights, valid).item() == pytest.approx(-(10.25 + 8.5) / 2)
    entropy = th.tensor([[1.0, 5.0], [2.0, 5.0]])
    with_entropy = actor_loss(returns, weights, valid, entropy, entropy_scale=0.1)
    assert with_entropy.item() == pytest.approx(-(10.25 + 8.5) / 2 - 0.1 * (1.0 + 1.0) / 2)

    prediction = th.tensor([[9.25, 0.0], [17.0, 0.0]])
    assert value_loss(prediction, returns, weights, valid).item() == pytest.approx(0.5 * 1.0 / 2)
