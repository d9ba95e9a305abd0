"""Checks of observation and action spaces, run when an algorithm is constructed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space


def check_box_action_space(action_space: spaces.Space, algo: str) -> None:
    """Raise a ``ValueError`` unless ``action_space`` is a bounded ``Box``."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"{algo} supports only continuous Box action spaces, got {action_space}. "
            "Wrap discrete envs yourself or use an algorithm that supports them."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"{algo} needs a Box action space with finite bounds (actions are rescaled to [-1, 1]), got {action_space}."
        )


#: Observation spaces that are one-hot encoded into vectors (as SB3's ``preprocess_obs`` does).
DISCRETE_OBSERVATIONS = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def check_vector_observation_space(observation_space: spaces.Space, algo: str) -> None:
    """Raise a ``ValueError`` unless observations are vectors: a non-image ``Box``, a ``Discrete``, ``MultiDiscrete`` or
    ``MultiBinary`` (one-hot encoded, as SB3 does), or a ``Dict`` of them."""
    supported = (
        "a Box of vector observations, a Discrete, MultiDiscrete or MultiBinary one, or a Dict of them (MultiInputPolicy)"
    )
    subspaces = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"": observation_space}
    for key, space in subspaces.items():
        name = f"observation '{key}'" if key else "observation space"
        if isinstance(space, DISCRETE_OBSERVATIONS):
            continue
        if not isinstance(space, spaces.Box):
            raise ValueError(f"{algo} supports {supported}; the {name} is {space}.")
        check_not_empty(space, name, algo, top_level=not key)
        if is_image_space(space, check_channels=False) or len(space.shape) > 2:
            raise ValueError(f"{algo} supports {supported}; the {name} {space} looks like an image, which it cannot encode.")


def check_not_empty(space: spaces.Box, name: str, algo: str, top_level: bool) -> None:
    """Raise a ``ValueError`` for a Box without values, or a 0-d Box as the whole observation (inside a Dict a 0-d Box
    is one feature, as dm_control walker's ``height``)."""
    if int(np.prod(space.shape)) == 0:
        raise ValueError(f"{algo}: the {name} {space} holds no values.")
    if top_level and space.shape == ():
        raise ValueError(f"{algo}: the {name} {space} is 0-d; give it shape (1,) (e.g. with a reshaping wrapper).")


def as_contiguous(observation: Any) -> Any:
    """Contiguous copies of observation arrays: rendered frames (dm_control) can have negative strides, which torch rejects.

    ``np.asarray(order="C")`` rather than ``np.ascontiguousarray``, which turns a 0-d array (dm_control walker's
    ``height``) into shape ``(1,)``, and a single observation would then look like a batch to SB3.
    """
    if isinstance(observation, dict):
        return {key: np.asarray(value, order="C") for key, value in observation.items()}
    return np.asarray(observation, order="C")


def to_env_actions(action_space: spaces.Space, actions: np.ndarray, vectorized: bool, unscale: Any) -> np.ndarray:
    """Policy outputs to what the env takes: Box actions rescaled from [-1, 1] with ``unscale`` and clipped,
    discrete indices as they are; the batch dimension is dropped for a single (non-vectorised) observation."""
    if isinstance(action_space, spaces.Box):
        actions = np.clip(unscale(actions.reshape((-1, *action_space.shape))), action_space.low, action_space.high)
    return actions if vectorized else actions.squeeze(axis=0)


def check_predict_inputs(
    observation: th.Tensor | dict[str, th.Tensor], state: tuple[np.ndarray, ...] | None, episode_start: np.ndarray | None
) -> None:
    """Refuse what ``predict()`` cannot act on, with a message naming it: a non-finite observation, a recurrent
    ``state`` or ``episode_start`` whose batch does not match the observations' (``observation`` as batched tensors)."""
    parts = observation.items() if isinstance(observation, dict) else [("", observation)]
    for key, part in parts:
        if part.is_floating_point() and not bool(th.isfinite(part).all()):
            name = f"observation key {key!r}" if key else "observation"
            raise ValueError(f"predict() got a non-finite {name} (NaN or inf): no action can be planned from it.")
    n_obs = next(iter(parts))[1].shape[0]
    if state is not None:
        sizes = [np.shape(part)[0] if np.ndim(part) else None for part in state]
        if any(size != n_obs for size in sizes):
            raise ValueError(
                f"predict() got a state for {sizes} envs and {n_obs} observations: pass back the state returned for the "
                "same batch of observations, or None to start from scratch."
            )
    if episode_start is not None and np.size(episode_start) != n_obs:
        raise ValueError(f"predict() got {np.size(episode_start)} episode_start flags for {n_obs} observations.")
