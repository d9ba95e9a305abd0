"""Environment wrappers for the papers' settings: action repeat and pixel observations of dm_control tasks."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class ActionRepeat(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Repeat each action ``repeat`` times and return the sum of the rewards (DC-MPC and Dreamer use 2 on DMC).

    The repetition stops early when the episode ends; the observation and ``info`` are those of the last step.

    :param env: The environment.
    :param repeat: Number of env steps per agent step (>= 1).
    """

    def __init__(self, env: gym.Env, repeat: int = 2):
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        gym.utils.RecordConstructorArgs.__init__(self, repeat=repeat)
        gym.Wrapper.__init__(self, env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class DMCStateObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """shimmy's Dict observation of a dm_control task as float32 vectors, keys in sorted order.

    The official DC-MPC code (through torchrl) concatenates a task's observations in sorted key order, as float32,
    without normalisation; ``MultiInputPolicy`` concatenates this Dict in its key order, which gives the same state
    vector. A 0-d entry (walker's ``height``) becomes a vector of one value.

    :param env: A dm_control env with a Dict observation space (shimmy's).
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        sizes = {key: max(int(np.prod(space.shape)), 1) for key, space in sorted(env.observation_space.spaces.items())}
        self.observation_space = gym.spaces.Dict(
            OrderedDict((key, gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)) for key, size in sizes.items())
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return OrderedDict(
            (key, np.asarray(observation[key], dtype=np.float32).reshape(-1)) for key in self.observation_space.spaces
        )


def make_state_dm_control(env_id: str = "dm_control/cartpole-swingup-v0", action_repeat: int = 2) -> gym.Env:
    """A dm_control task (through shimmy) with state observations, as DC-MPC's and TD-MPC2's DMC results use it.

    Observations are a Dict of float32 vectors in sorted key order (:class:`DMCStateObservation`);
    ``MultiInputPolicy`` concatenates them in that order into the official code's state vector. Each agent step repeats the
    action ``action_repeat`` times and sums the rewards (:class:`ActionRepeat`); the task's own 1000-frame limit ends
    each episode, 500 agent steps at action repeat 2.
    """
    import shimmy

    gym.register_envs(shimmy)
    env = gym.make(env_id)
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    return DMCStateObservation(env)


def action_repeat_of(env: Any) -> int:
    """The action repeat of ``env`` (a Gymnasium env or an SB3 ``VecEnv``): the ``repeat`` of its :class:`ActionRepeat`
    wrapper, 1 without one."""
    if env is None:
        return 1
    if hasattr(env, "env_is_wrapped"):  # a VecEnv
        if not all(env.env_is_wrapped(ActionRepeat)):
            return 1
        repeats = set(env.get_attr("repeat"))
        if len(repeats) != 1:
            raise ValueError(f"The envs repeat their actions a different number of times: {sorted(repeats)}.")
        return int(repeats.pop())
    while isinstance(env, gym.Wrapper):
        if isinstance(env, ActionRepeat):
            return env.repeat
        env = env.env
    return 1


def make_pixel_dm_control(
    env_id: str = "dm_control/cartpole-swingup-v0",
    size: int = 64,
    action_repeat: int = 2,
    camera_id: int = 0,
    render_mode: str | None = "rgb_array",
) -> gym.Env:
    """A dm_control task (through shimmy) observed as ``size x size x 3`` uint8 frames, as in the Dreamer paper.

    Frames come from the env's renderer (``render_mode="rgb_array"`` plus ``AddRenderObservation``); with
    ``action_repeat > 1`` only the frame after the last repeated step is rendered. Headless machines need
    ``MUJOCO_GL=egl`` (set here when unset, which only works before dm_control is first imported).
    ``render_mode`` can only be ``"rgb_array"`` (``render()`` then returns the latest frame); ``None`` means the same.
    """
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"Pixel dm_control envs render rgb_array frames only, got render_mode={render_mode!r}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import shimmy

    gym.register_envs(shimmy)
    env = gym.make(env_id, render_mode="rgb_array", render_kwargs={"width": size, "height": size, "camera_id": camera_id})
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    return gym.wrappers.AddRenderObservation(env, render_only=True)
