"""Every stored transition teaches the critics and values, the terminal ones included (a countdown task)."""

from __future__ import annotations

import pytest
import torch as th
from conftest import TINY_DCMPC, TINY_DREAMER, Countdown

from sb3_worldmodels import DCMPC, Dreamer

GAMMA = 0.99


@pytest.mark.slow
def test_dcmpc_critic_learns_the_terminal_reward_with_the_default_horizon():
    # Episodes of 6 transitions and sequences of 5 (the default horizon): before sequences could stop at an episode's
    # end, the last transitions of every episode were never the first of a sequence and never a critic target.
    kwargs = {**TINY_DCMPC, "policy_kwargs": dict(TINY_DCMPC["policy_kwargs"])}
    kwargs.update(horizon=5, use_planner=False, learning_rate=1e-3, critic_learning_rate=1e-3)
    model = DCMPC("MlpPolicy", Countdown(6), seed=0, **kwargs)
    assert model.sequence_length == 5
    model.learn(800)
    policy = model.policy
    with th.no_grad():
        last = policy.encode(th.tensor([[1 / 6]]))  # one step left: its transition ends the episode with reward 1
        q = policy.q_values(last.expand(5, -1), th.linspace(-1, 1, 5).unsqueeze(1)).mean(0)
    assert th.all((q - 1.0).abs() < 0.1), q


@pytest.mark.slow
def test_dreamer_value_learns_the_terminal_reward_with_the_default_batch_length():
    # Episodes of 6 transitions and sequences of 50 observations (the paper's batch_length): padded and masked.
    kwargs = {**TINY_DREAMER, "policy_kwargs": {**TINY_DREAMER["policy_kwargs"], "use_continuation": True}}
    kwargs.update(
        batch_length=50, batch_size=8, train_freq=10, gradient_steps=5, free_nats=0.0, learning_rate=1e-3,
        value_learning_rate=1e-3,
    )  # fmt: skip
    model = Dreamer("MlpPolicy", Countdown(6), seed=2, **kwargs)
    assert model.batch_length == 50
    model.learn(800)
    data = model.replay_buffer.sample_sequences(64, 6)
    with th.no_grad():
        _, posterior, _ = model._observe(data)
        value = model.policy.value(posterior.feature).squeeze(-1)
    steps_left = (data.observations[:, :, 0] * 6).round()
    # The value of a state counts the rewards from the transition out of it on, discounted from the next state's on
    # (Dreamer eq. 6 with the reward head on the state a transition leads to): gamma * 1 one step before the end.
    last = value[steps_left == 1].mean()
    assert abs(last - GAMMA) < 0.1 * GAMMA, last
