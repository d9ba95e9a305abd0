"""Environment wrappers for the papers' settings: action repeat and pixel observations of dm_control tasks."""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium as gym


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
