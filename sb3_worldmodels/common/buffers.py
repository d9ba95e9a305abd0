"""Sequence replay buffer shared by DC-MPC and Dreamer.

World models are trained on contiguous sub-trajectories, not on single transitions. This
buffer keeps SB3's ``(buffer_size // n_envs, n_envs)`` layout (so ``save_replay_buffer`` /
``load_replay_buffer`` and SB3's single-transition ``sample()`` keep working) and adds
:meth:`SequenceReplayBuffer.sample_sequences`, which draws sequences of one env's stream that start at a
stored transition drawn uniformly, and are padded (and masked) after the end of its episode.

Each observation is stored once: row ``t`` holds ``o_t``, and the next observation of a
transition is row ``t + 1`` of the same env. The only observations that row ``t + 1`` cannot
hold are the last observations of episodes (the env has already been reset); those are kept
in a small side table ``final_observations`` keyed by ``(row, env)``, one entry per episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

Obs = np.ndarray | dict[str, np.ndarray]
TensorObs = th.Tensor | dict[str, th.Tensor]


class SequenceSamples(NamedTuple):
    """A batch of ``B`` sequences of ``L`` transitions.

    :param observations: ``o_0 .. o_L``, shape ``(B, L + 1, *obs_shape)`` (a dict for Dict spaces).
        ``o_L`` is the true next observation of the last transition, also at an episode end.
    :param actions: ``a_0 .. a_{L-1}``, shape ``(B, L, action_dim)``, scaled to [-1, 1] for Box spaces.
    :param rewards: ``r_0 .. r_{L-1}``, shape ``(B, L)``.
    :param terminations: 1.0 where the transition ended the episode by termination (no bootstrap), ``(B, L)``.
    :param truncations: 1.0 where the episode was cut by a time limit (bootstrap from ``o_{t+1}``), ``(B, L)``.
    :param mask: 1.0 for the transitions of the first one's episode, ``(B, L)``: a sequence that reaches the end of
        its episode (or the newest stored transition) before ``L`` transitions is padded: the observations after the
        last true next observation repeat it, padded actions, rewards and flags are 0.
    :param previous_actions: ``a_{-1}``, the action that led to ``o_0``, ``(B, action_dim)``; 0 where there is none.
    :param episode_starts: ``(B,)``, 1.0 where ``o_0`` has no stored previous action: it starts an episode, or the
        transition before it is no longer stored.
    """

    observations: TensorObs
    actions: th.Tensor
    rewards: th.Tensor
    terminations: th.Tensor
    truncations: th.Tensor
    mask: th.Tensor
    previous_actions: th.Tensor
    episode_starts: th.Tensor


def _tree_map(fn, obs: Any) -> Any:
    """Apply ``fn`` to an array or to every value of a dict of arrays."""
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def _storage_dtype(space: spaces.Box) -> np.dtype:
    # float64 observations (dm_control) are stored as float32: the networks compute in float32 anyway.
    return np.dtype(np.float32) if np.issubdtype(space.dtype, np.floating) else np.dtype(space.dtype)


def observed_mask(data: SequenceSamples) -> th.Tensor:
    """``(B, L + 1)``: 1.0 for the observations of a sequence's own episode, ``o_0`` and the next observation of each
    true transition; the padding after them is 0."""
    return th.cat([th.ones_like(data.mask[:, :1]), data.mask], dim=1)


def masked_mean(values: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Mean of ``values`` over the entries where ``mask`` (broadcast over the leading dimensions) is 1."""
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


class SequenceReplayBuffer(ReplayBuffer):
    """Replay buffer that samples contiguous sequences inside episodes.

    :param buffer_size: Maximum number of transitions (over all envs).
    :param observation_space: Observation space (``Box`` or ``Dict`` of ``Box``).
    :param action_space: Action space.
    :param device: PyTorch device of the sampled tensors.
    :param n_envs: Number of parallel environments.
    :param optimize_memory_usage: Accepted for SB3 compatibility; this buffer always stores each observation once.
    :param handle_timeout_termination: Tell truncation by a time limit apart from termination (SB3 semantics).
    """

    observations: Obs
    final_observations: dict[tuple[int, int], Any]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ):
        # Skip ReplayBuffer.__init__: it would allocate a second (next_observations) array.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        # SB3's _setup_learn marks `dones` when this is True; episode breaks are handled by `mark_episode_break`.
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        rows = (self.buffer_size, self.n_envs)
        if isinstance(observation_space, spaces.Dict):
            self.observations = {
                key: np.zeros((*rows, *space.shape), dtype=_storage_dtype(space))
                for key, space in observation_space.spaces.items()
            }
        else:
            self.observations = np.zeros((*rows, *observation_space.shape), dtype=_storage_dtype(observation_space))
        self.actions = np.zeros((*rows, self.action_dim), dtype=self._maybe_cast_dtype(action_space.dtype))
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.dones = np.zeros(rows, dtype=np.float32)
        self.timeouts = np.zeros(rows, dtype=np.float32)
        self.final_observations = {}
        # Next observation of the newest row of each env: it is not in `observations` until the next add().
        self.last_next_observations: Obs | None = None

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: Obs,
        next_obs: Obs,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of every env (SB3 signature). ``next_obs`` holds the terminal observation where ``done``."""
        pos = self.pos
        for env_idx in range(self.n_envs):
            self.final_observations.pop((pos, env_idx), None)
        if isinstance(self.observations, dict):
            for key in self.observations:
                self.observations[key][pos] = np.asarray(obs[key]).reshape(self.observations[key].shape[1:])
        else:
            self.observations[pos] = np.asarray(obs).reshape(self.observations.shape[1:])
        self.actions[pos] = np.asarray(action).reshape(self.n_envs, self.action_dim)
        self.rewards[pos] = np.asarray(reward)
        self.dones[pos] = np.asarray(done)
        if self.handle_timeout_termination:
            self.timeouts[pos] = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        next_obs = _tree_map(lambda x: np.array(x, copy=True), next_obs)
        for env_idx in np.flatnonzero(np.asarray(done)):
            self.final_observations[(pos, int(env_idx))] = _tree_map(lambda x, i=env_idx: x[i], next_obs)
        self.last_next_observations = next_obs
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def mark_episode_break(self) -> None:
        """End the newest episode of every env as a truncation.

        Call this when the envs are reset without a ``done`` (a new ``learn()`` call, ``set_env``): the
        next stored row then starts a new episode, and sequences must not run across the break.
        """
        if self.size() == 0 or self.last_next_observations is None:
            return
        last = (self.pos - 1) % self.buffer_size
        for env_idx in np.flatnonzero(self.dones[last] == 0):
            self.dones[last, env_idx] = 1.0
            self.timeouts[last, env_idx] = 1.0
            self.final_observations[(last, int(env_idx))] = _tree_map(lambda x, i=env_idx: x[i], self.last_next_observations)

    def reset(self) -> None:
        super().reset()
        self.final_observations = {}
        self.last_next_observations = None

    # ----------------------------------------------------------------- sampling
    def _oldest_row(self) -> int:
        return self.pos if self.full else 0

    def _sample_starts(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows and envs of ``batch_size`` stored transitions drawn uniformly, and how many transitions are stored from
        each up to the newest one of its env."""
        size = self.size()
        if size == 0:
            raise ValueError("The replay buffer is empty: nothing to sample.")
        rel = np.random.randint(0, size, size=batch_size)
        envs = np.random.randint(0, self.n_envs, size=batch_size)
        return (self._oldest_row() + rel) % self.buffer_size, envs, size - rel

    def _gather_observations(self, rows: np.ndarray, env_idx: np.ndarray, lengths: np.ndarray, seq_len: int) -> Obs:
        """Observations ``o_0 .. o_L`` of each sequence of ``lengths`` true transitions: ``o_lengths`` is the true next
        observation of the last one (the final observation at an episode end), repeated after it."""
        steps = np.minimum(np.arange(seq_len + 1), lengths[:, None])
        obs_rows = (rows[:, None] + steps) % self.buffer_size
        observations = _tree_map(lambda x: x[obs_rows, env_idx[:, None]], self.observations)
        last_row = (rows + lengths - 1) % self.buffer_size
        newest_row = (self.pos - 1) % self.buffer_size
        ended = self.dones[last_row, env_idx] > 0
        # The next observation of an episode's last transition is in the side table; the one of the newest transition
        # is only known from the last add(). Every other next observation is the following row.
        for b in np.flatnonzero(ended | (last_row == newest_row)):
            if ended[b]:
                final = self.final_observations[(int(last_row[b]), int(env_idx[b]))]
            else:
                final = _tree_map(lambda x, e=env_idx[b]: x[e], self.last_next_observations)
            if isinstance(observations, dict):
                for key in observations:
                    observations[key][b, lengths[b] :] = final[key]
            else:
                observations[b, lengths[b] :] = final
        return observations

    def sample_sequences(self, batch_size: int, seq_len: int, env: VecNormalize | None = None) -> SequenceSamples:
        """Sample ``batch_size`` sequences of ``seq_len`` contiguous transitions of one env.

        Every stored transition is equally likely to be the first of a sequence, also the last transitions of an
        episode: a sequence stops at the end of its episode (or at the newest stored transition) and is padded to
        ``seq_len`` (``mask`` tells which transitions are true). Observations and rewards are normalised with ``env``
        (a ``VecNormalize``) when given, as SB3 does at sampling time.
        """
        rows, env_idx, stored = self._sample_starts(batch_size)
        # The transition before the first one: same env, stored, and not the end of an earlier episode.
        before = (rows - 1) % self.buffer_size
        has_before = (stored < self.size()) & (self.dones[before, env_idx] == 0)
        previous_actions = self.actions[before, env_idx] * has_before[:, None]
        step_rows = (rows[:, None] + np.arange(seq_len)) % self.buffer_size
        env_col = env_idx[:, None]
        dones, timeouts = self.dones[step_rows, env_col], self.timeouts[step_rows, env_col]
        # A transition belongs to the sequence while no earlier one ended the episode and it is stored.
        ended_before = (np.cumsum(dones, axis=1) - dones) > 0
        mask = ~ended_before & (np.arange(seq_len) < stored[:, None])
        lengths = mask.sum(axis=1)
        observations = self._normalize_obs(self._gather_observations(rows, env_idx, lengths, seq_len), env)
        rewards = self._normalize_reward(self.rewards[step_rows, env_col], env) * mask
        actions = self.actions[step_rows, env_col] * mask[..., None]
        dones, timeouts = dones * mask, timeouts * mask
        return SequenceSamples(
            observations=_tree_map(lambda x: self.to_torch(np.asarray(x)), observations),
            actions=self.to_torch(actions).float(),
            rewards=self.to_torch(rewards).float(),
            terminations=self.to_torch(dones * (1.0 - timeouts)),
            truncations=self.to_torch(dones * timeouts),
            mask=self.to_torch(mask.astype(np.float32)),
            previous_actions=self.to_torch(previous_actions).float(),
            episode_starts=self.to_torch((~has_before).astype(np.float32)),
        )

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples | DictReplayBufferSamples:
        """SB3's single-transition sample (a sequence of length 1), so SAC/TD3 can use this buffer too."""
        seq = self.sample_sequences(batch_size, 1, env)
        first = _tree_map(lambda x: x[:, 0], seq.observations)
        second = _tree_map(lambda x: x[:, 1], seq.observations)
        cls = DictReplayBufferSamples if isinstance(first, dict) else ReplayBufferSamples
        return cls(first, seq.actions[:, 0], second, seq.terminations[:, :1], seq.rewards[:, :1])

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None):  # pragma: no cover - unused
        raise NotImplementedError("SequenceReplayBuffer samples through sample() / sample_sequences().")

    # ------------------------------------------------------------------ memory
    def nbytes(self) -> int:
        """Bytes held by the stored arrays and the table of final observations."""
        arrays = [self.actions, self.rewards, self.dones, self.timeouts]
        arrays += list(self.observations.values()) if isinstance(self.observations, dict) else [self.observations]
        finals = sum(
            sum(v.nbytes for v in value.values()) if isinstance(value, dict) else np.asarray(value).nbytes
            for value in self.final_observations.values()
        )
        return int(sum(a.nbytes for a in arrays) + finals)
