from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th

os.environ.setdefault("MUJOCO_GL", "egl")
# Tiny test networks gain nothing from intra-op threads, and extra threads only contend with other processes.
th.set_num_threads(1)

#: A DC-MPC small enough for unit tests: every size and schedule is passed explicitly.
TINY_DCMPC = dict(
    learning_starts=50,
    pretrain_gradient_steps=5,
    batch_size=16,
    buffer_size=2000,
    horizon=3,
    plan_horizon=2,
    num_samples=32,
    num_elites=4,
    num_policy_trajs=4,
    mppi_iterations=2,
    policy_kwargs=dict(latent_dim=8, net_arch=[32, 32], encoder_net_arch=[32]),
)


@pytest.fixture
def tiny_dcmpc_kwargs() -> dict:
    return {**TINY_DCMPC, "policy_kwargs": dict(TINY_DCMPC["policy_kwargs"])}


#: A Dreamer small enough for unit tests.
TINY_DREAMER = dict(
    learning_starts=100,
    batch_size=4,
    batch_length=8,
    train_freq=50,
    gradient_steps=2,
    imagination_horizon=4,
    buffer_size=2000,
    policy_kwargs=dict(
        stoch_dim=4,
        deter_dim=16,
        hidden_dim=16,
        cnn_depth=4,
        mlp_net_arch=[16],
        embed_dim=16,
        reward_net_arch=[16],
        value_net_arch=[16],
        actor_net_arch=[16],
        continuation_net_arch=[16],
    ),
)


@pytest.fixture
def tiny_dreamer_kwargs() -> dict:
    return {**TINY_DREAMER, "policy_kwargs": dict(TINY_DREAMER["policy_kwargs"])}


#: A DreamerV3 small enough for unit tests: one update every 2 env steps of 4 x 8 replayed steps.
TINY_DREAMER_V3 = dict(
    learning_starts=100,
    batch_size=4,
    batch_length=8,
    replay_ratio=16,
    imagination_horizon=4,
    buffer_size=2000,
    policy_kwargs=dict(size="XS", deter=16, units=16, layers=1, cnn_depth=4, stoch=4, classes=4),
)


@pytest.fixture
def tiny_dreamer_v3_kwargs() -> dict:
    return {**TINY_DREAMER_V3, "policy_kwargs": dict(TINY_DREAMER_V3["policy_kwargs"])}


def make_pixel_cartpole(size: int = 64, action_repeat: int = 1):
    """dm_control cartpole-swingup from pixels only: 64x64x3 uint8 frames rendered with EGL."""
    from sb3_worldmodels.common.wrappers import make_pixel_dm_control

    return make_pixel_dm_control("dm_control/cartpole-swingup-v0", size=size, action_repeat=action_repeat)


class ToyEnv(gym.Env):
    """An env with the given spaces and random observations, for construction checks."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


class Countdown(gym.Env):
    """Episodes of ``length`` steps whose last one terminates with reward 1 (0 before); actions change nothing.

    The observation is the number of steps left, scaled to [0, 1]. The true value of the state ``k`` steps before the
    end is ``gamma ** (k - 1)``: 1 in the last state, whatever the action.
    """

    def __init__(self, length: int = 6):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.left = length

    def _obs(self) -> np.ndarray:
        return np.array([self.left / self.length], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = self.length
        return self._obs(), {}

    def step(self, action):
        self.left -= 1
        terminated = self.left == 0
        return self._obs(), float(terminated), terminated, False, {}
