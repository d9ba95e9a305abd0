"""Sequence replay buffer shared by DC-MPC and Dreamer.

World models are trained on contiguous sub-trajectories, not on single transitions. This
buffer keeps SB3's ``(buffer_size // n_envs, n_envs)`` layout (so ``save_replay_buffer`` /
``load_replay_buffer`` and SB3's single-transition ``sample()`` keep working) and adds
:meth:`SequenceReplayBuffer.sample_sequences`, which draws sequences that lie inside one
episode of one env's stream.

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
    """

    observations: TensorObs
    actions: th.Tensor
    rewards: th.Tensor
    terminations: th.Tensor
    truncations: th.Tensor


def _tree_map(fn, obs: Any) -> Any:
    """Apply ``fn`` to an array or to every value of a dict of arrays."""
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def _storage_dtype(space: spaces.Box) -> np.dtype:
    # float64 observations (dm_control) are stored as float32: the networks compute in float32 anyway.
    return np.dtype(np.float32) if np.issubdtype(space.dtype, np.floating) else np.dtype(space.dtype)


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

    def _has_valid_window(self, rows: np.ndarray, env_idx: np.ndarray, seq_len: int) -> np.ndarray:
        """Whether transitions ``rows .. rows + seq_len - 1`` of ``env_idx`` lie inside one episode."""
        window = (rows[:, None] + np.arange(seq_len - 1)) % self.buffer_size
        return self.dones[window, env_idx[:, None]].sum(axis=1) == 0

    def _sample_starts(self, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        size = self.size()
        n_starts = size - seq_len + 1  # relative start positions whose window does not cross the write head
        if n_starts <= 0:
            raise ValueError(
                f"The replay buffer holds {size} steps per env, fewer than one sequence of {seq_len} transitions."
            )
        oldest = self._oldest_row()
        rows_out, envs_out, n_found = np.empty(batch_size, dtype=np.int64), np.empty(batch_size, dtype=np.int64), 0
        # Rejection sampling is exact (uniform over valid windows) and cheap when episodes are long.
        for _ in range(8):
            rel = np.random.randint(0, n_starts, size=2 * batch_size)
            envs = np.random.randint(0, self.n_envs, size=2 * batch_size)
            rows = (oldest + rel) % self.buffer_size
            keep = np.flatnonzero(self._has_valid_window(rows, envs, seq_len))[: batch_size - n_found]
            rows_out[n_found : n_found + len(keep)], envs_out[n_found : n_found + len(keep)] = rows[keep], envs[keep]
            n_found += len(keep)
            if n_found == batch_size:
                return rows_out, envs_out
        # Low acceptance (short episodes): enumerate every valid window once and sample from them.
        rel, envs = np.meshgrid(np.arange(n_starts), np.arange(self.n_envs), indexing="ij")
        rows = (oldest + rel.ravel()) % self.buffer_size
        envs = envs.ravel()
        valid = np.flatnonzero(self._has_valid_window(rows, envs, seq_len))
        if len(valid) == 0:
            raise ValueError(
                f"No sequence of {seq_len} transitions lies inside one episode: every stored episode is shorter. "
                "Use a shorter sequence length or collect longer episodes."
            )
        pick = valid[np.random.randint(0, len(valid), size=batch_size - n_found)]
        rows_out[n_found:], envs_out[n_found:] = rows[pick], envs[pick]
        return rows_out, envs_out

    def _gather_observations(self, rows: np.ndarray, env_idx: np.ndarray, seq_len: int) -> Obs:
        """Observations ``o_0 .. o_L`` of each sequence, with true next observations at episode ends."""
        obs_rows = (rows[:, None] + np.arange(seq_len + 1)) % self.buffer_size
        observations = _tree_map(lambda x: x[obs_rows, env_idx[:, None]], self.observations)
        last_row = obs_rows[:, -2]
        newest_row = (self.pos - 1) % self.buffer_size
        for b in np.flatnonzero(self.dones[last_row, env_idx] > 0):
            final = self.final_observations[(int(last_row[b]), int(env_idx[b]))]
            if isinstance(observations, dict):
                for key in observations:
                    observations[key][b, -1] = final[key]
            else:
                observations[b, -1] = final
        # The next observation of the newest row is only known from the last add().
        for b in np.flatnonzero((last_row == newest_row) & (self.dones[last_row, env_idx] == 0)):
            if isinstance(observations, dict):
                for key in observations:
                    observations[key][b, -1] = self.last_next_observations[key][env_idx[b]]
            else:
                observations[b, -1] = self.last_next_observations[env_idx[b]]
        return observations

    def sample_sequences(self, batch_size: int, seq_len: int, env: VecNormalize | None = None) -> SequenceSamples:
        """Sample ``batch_size`` sequences of ``seq_len`` contiguous transitions, each inside one episode of one env.

        Only the last transition of a sequence may end its episode. Observations and rewards are normalised
        with ``env`` (a ``VecNormalize``) when given, as SB3 does at sampling time.
        """
        rows, env_idx = self._sample_starts(batch_size, seq_len)
        step_rows = (rows[:, None] + np.arange(seq_len)) % self.buffer_size
        env_col = env_idx[:, None]
        observations = self._normalize_obs(self._gather_observations(rows, env_idx, seq_len), env)
        dones, timeouts = self.dones[step_rows, env_col], self.timeouts[step_rows, env_col]
        rewards = self._normalize_reward(self.rewards[step_rows, env_col], env)
        return SequenceSamples(
            observations=_tree_map(lambda x: self.to_torch(np.asarray(x)), observations),
            actions=self.to_torch(self.actions[step_rows, env_col]).float(),
            rewards=self.to_torch(rewards).float(),
            terminations=self.to_torch(dones * (1.0 - timeouts)),
            truncations=self.to_torch(dones * timeouts),
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
