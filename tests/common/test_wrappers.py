"""Env wrappers: action repeat and pixel dm_control envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest


# -------------------------------------------------------------------------------------- wrappers
def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from sb3_worldmodels.common.wrappers import ActionRepeat

    class Counter(gym.Env):
        observation_space = gym.spaces.Box(0, 100, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.array([0.0], np.float32), {}

        def step(self, action):
            self.t += 1
            return np.array([self.t], np.float32), float(self.t), self.t == 5, False, {"t": self.t}

    env = ActionRepeat(Counter(), repeat=2)
    env.reset()
    obs, reward, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert obs[0] == 2 and reward == 1 + 2 and not terminated and info["t"] == 2
    env.step(np.zeros(1, np.float32))
    obs, reward, terminated, _, _ = env.step(np.zeros(1, np.float32))
    assert obs[0] == 5 and reward == 5 and terminated  # stopped after one of its two steps
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        ActionRepeat(Counter(), repeat=0)
    check_env(ActionRepeat(Counter(), repeat=3), skip_render_check=True)


def test_pixel_dm_control_env_renders_uint8_frames_once_per_agent_step():
    from gymnasium.utils.env_checker import check_env

    from sb3_worldmodels.common.wrappers import ActionRepeat, make_pixel_dm_control

    env = make_pixel_dm_control("dm_control/cartpole-swingup-v0", size=32, action_repeat=2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert isinstance(env.env, ActionRepeat)  # the renderer sits outside the repetition
    _, reward, _, _, _ = env.step(env.action_space.sample())
    assert 0.0 <= reward <= 2.0  # two DMC rewards in [0, 1]
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize(
    "env_id", ["sb3_worldmodels/dmc-cartpole-swingup-pixels-v0", "sb3_worldmodels/dmc-walker-walk-pixels-v0"]
)
def test_registered_pixel_ids_pass_the_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    import sb3_worldmodels  # noqa: F401 - registers the ids
    from sb3_worldmodels.common.wrappers import ActionRepeat

    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.render().shape == (64, 64, 3)
    wrapper = env
    while not isinstance(wrapper, ActionRepeat):
        wrapper = wrapper.env
    assert wrapper.repeat == 2
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    with pytest.raises(ValueError, match="rgb_array frames only"):
        gym.make(env_id, render_mode="human")
