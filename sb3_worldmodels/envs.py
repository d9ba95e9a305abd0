"""Gymnasium ids of the papers' DeepMind Control Suite settings, so that the RL Zoo and ``gym.make`` can name them.

Registered when ``sb3_worldmodels`` is imported (creating one imports dm_control; registering does not):

- state observations, as DC-MPC's (and TD-MPC2's) results use them: ``sb3_worldmodels/dmc-<task>-v0`` for every task
  of :data:`DMC_TASKS`, e.g. ``sb3_worldmodels/dmc-walker-walk-v0``
  (:func:`sb3_worldmodels.common.wrappers.make_state_dm_control`): a Dict of float32 vectors in sorted key order
  (``MultiInputPolicy``), action repeat 2 with the rewards of the two frames summed, 1000-frame episodes
  (500 agent steps);
- pixels, as Dreamer's: ``sb3_worldmodels/dmc-<task>-pixels-v0`` for the same tasks, e.g.
  ``sb3_worldmodels/dmc-cartpole-swingup-pixels-v0`` (:func:`sb3_worldmodels.common.wrappers.make_pixel_dm_control`):
  64x64x3 uint8 frames from camera 0 (2 for quadruped, as Dreamer's code), action repeat 2.

Each factory's keyword arguments (``action_repeat``; for pixels also ``size`` and ``camera_id``) can be passed to
``gym.make`` or as the Zoo's ``env_kwargs``.
"""

from __future__ import annotations

import gymnasium as gym

#: Task name (as in the DC-MPC and TD-MPC2 results) -> shimmy's dm_control id. The 28 state-based DMC tasks of the
#: official DC-MPC results that dm_control ships (its cup-spin and pendulum-spin are TD-MPC2's own tasks).
DMC_TASKS = {
    "acrobot-swingup": "dm_control/acrobot-swingup-v0",
    "cartpole-balance": "dm_control/cartpole-balance-v0",
    "cartpole-balance-sparse": "dm_control/cartpole-balance_sparse-v0",
    "cartpole-swingup": "dm_control/cartpole-swingup-v0",
    "cartpole-swingup-sparse": "dm_control/cartpole-swingup_sparse-v0",
    "cheetah-run": "dm_control/cheetah-run-v0",
    "cup-catch": "dm_control/ball_in_cup-catch-v0",
    "dog-run": "dm_control/dog-run-v0",
    "dog-stand": "dm_control/dog-stand-v0",
    "dog-trot": "dm_control/dog-trot-v0",
    "dog-walk": "dm_control/dog-walk-v0",
    "finger-spin": "dm_control/finger-spin-v0",
    "finger-turn-easy": "dm_control/finger-turn_easy-v0",
    "finger-turn-hard": "dm_control/finger-turn_hard-v0",
    "fish-swim": "dm_control/fish-swim-v0",
    "hopper-hop": "dm_control/hopper-hop-v0",
    "hopper-stand": "dm_control/hopper-stand-v0",
    "humanoid-run": "dm_control/humanoid-run-v0",
    "humanoid-stand": "dm_control/humanoid-stand-v0",
    "humanoid-walk": "dm_control/humanoid-walk-v0",
    "pendulum-swingup": "dm_control/pendulum-swingup-v0",
    "quadruped-run": "dm_control/quadruped-run-v0",
    "quadruped-walk": "dm_control/quadruped-walk-v0",
    "reacher-easy": "dm_control/reacher-easy-v0",
    "reacher-hard": "dm_control/reacher-hard-v0",
    "walker-run": "dm_control/walker-run-v0",
    "walker-stand": "dm_control/walker-stand-v0",
    "walker-walk": "dm_control/walker-walk-v0",
}


def pixel_id(task: str) -> str:
    """The registered id of a task of :data:`DMC_TASKS` observed as 64x64 frames."""
    return f"sb3_worldmodels/dmc-{task}-pixels-v0"


#: Pixel id -> the dm_control task it renders.
PIXEL_TASKS = {pixel_id(task): task_id for task, task_id in DMC_TASKS.items()}


def state_id(task: str) -> str:
    """The registered id of a task of :data:`DMC_TASKS` with state observations."""
    return f"sb3_worldmodels/dmc-{task}-v0"


def register_envs() -> None:
    """Register the ids of :data:`DMC_TASKS` and :data:`PIXEL_TASKS` with Gymnasium (idempotent).

    The dm_control env inside keeps its own 1000-frame time limit; none is added here.
    """
    for task, task_id in DMC_TASKS.items():
        if state_id(task) not in gym.envs.registry:
            gym.register(
                state_id(task),
                entry_point="sb3_worldmodels.common.wrappers:make_state_dm_control",
                kwargs={"env_id": task_id, "action_repeat": 2},
            )
    for pixel_id, task_id in PIXEL_TASKS.items():
        if pixel_id not in gym.envs.registry:
            gym.register(
                pixel_id,
                entry_point="sb3_worldmodels.common.wrappers:make_pixel_dm_control",
                kwargs={"env_id": task_id, "size": 64, "action_repeat": 2, "camera_id": 2 if "quadruped" in task_id else 0},
            )
