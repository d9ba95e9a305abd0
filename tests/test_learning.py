"""Learning tests: small explicit configurations must beat what a random policy reaches, on CPU, in minutes."""

from __future__ import annotations

import gymnasium as gym
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import DCMPC
from sb3_worldmodels.presets import DCMPC_PENDULUM_CPU

# A uniformly random policy scores about -1200 on Pendulum-v1 (-1100 to -1450 over 5 episodes).
RANDOM_POLICY_RETURN = -1200.0


@pytest.mark.slow
def test_dcmpc_learns_pendulum():
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **DCMPC_PENDULUM_CPU)
    model.learn(2500)
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=123)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    assert mean > -600.0, f"mean evaluation return {mean:.0f} after 2500 steps (random policy: {RANDOM_POLICY_RETURN:.0f})"
