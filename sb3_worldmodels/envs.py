"""Gymnasium ids of the papers' pixel settings, so that the RL Zoo and ``gym.make`` can name them.

Registered when ``sb3_worldmodels`` is imported (creating one imports dm_control; registering does not):

- ``sb3_worldmodels/dmc-cartpole-swingup-pixels-v0``: ``dm_control/cartpole-swingup-v0`` observed as 64x64x3 uint8
  frames, action repeat 2 (500 agent steps per episode);
- ``sb3_worldmodels/dmc-walker-walk-pixels-v0``: the same for ``dm_control/walker-walk-v0``.

Both are :func:`sb3_worldmodels.common.wrappers.make_pixel_dm_control`; its keyword arguments (``size``,
``action_repeat``, ``camera_id``) can be passed to ``gym.make`` or as the Zoo's ``env_kwargs``.
"""

from __future__ import annotations

import gymnasium as gym

#: Pixel id -> the dm_control task it renders.
PIXEL_TASKS = {
    "sb3_worldmodels/dmc-cartpole-swingup-pixels-v0": "dm_control/cartpole-swingup-v0",
    "sb3_worldmodels/dmc-walker-walk-pixels-v0": "dm_control/walker-walk-v0",
}


def register_envs() -> None:
    """Register :data:`PIXEL_TASKS` with Gymnasium (idempotent)."""
    for pixel_id, task_id in PIXEL_TASKS.items():
        if pixel_id not in gym.envs.registry:
            # The dm_control env inside keeps its own 1000-step time limit; none is added here.
            gym.register(
                pixel_id,
                entry_point="sb3_worldmodels.common.wrappers:make_pixel_dm_control",
                kwargs={"env_id": task_id, "size": 64, "action_repeat": 2},
            )
