"""The sequence replay buffer: contiguity, episode boundaries, wrap-around, termination vs truncation, storage."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from sb3_worldmodels.common.buffers import SequenceReplayBuffer

LABEL_SPACE = spaces.Box(-np.inf, np.inf, (3,), np.float32)  # observation = (env, episode, step in episode)
ACTION_SPACE = spaces.Box(-1e6, 1e6, (3,), np.float32)


def fill(buffer: SequenceReplayBuffer, done_flags: np.ndarray, truncated_flags: np.ndarray) -> dict:
    """Step ``n_envs`` fake envs whose observations label themselves; return the ground truth per env."""
    n_steps, n_envs = done_flags.shape
    episode = np.zeros(n_envs, dtype=int)
    t = np.zeros(n_envs, dtype=int)
    history: dict[int, list[tuple[int, int, bool, bool]]] = {e: [] for e in range(n_envs)}
    for k in range(n_steps):
        obs = np.stack([[e, episode[e], t[e]] for e in range(n_envs)]).astype(np.float32)
        next_obs = obs.copy()
        next_obs[:, 2] += 1  # terminal observation at episode ends, next observation otherwise
        done = done_flags[k]
        infos = [{"TimeLimit.truncated": bool(truncated_flags[k, e] and done[e])} for e in range(n_envs)]
        buffer.add(obs, next_obs, obs.copy(), reward=obs[:, 2], done=done.astype(np.float32), infos=infos)
        for e in range(n_envs):
            history[e].append((episode[e], t[e], bool(done[e]), bool(truncated_flags[k, e] and done[e])))
            if done[e]:
                episode[e] += 1
                t[e] = 0
            else:
                t[e] += 1
    return history


def valid_window_exists(history: dict, rows: int, seq_len: int) -> bool:
    for steps in history.values():
        stored = steps[-rows:]
        for i in range(len(stored) - seq_len + 1):
            if len({ep for ep, *_ in stored[i : i + seq_len]}) == 1:
                return True
    return False


@settings(max_examples=60, deadline=None)
@given(
    n_envs=st.integers(1, 4),
    rows=st.integers(3, 12),
    n_steps=st.integers(1, 40),
    seq_len=st.integers(1, 5),
    done_prob=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_sampled_sequences_are_contiguous_inside_one_episode(n_envs, rows, n_steps, seq_len, done_prob, seed):
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    done_flags = rng.random((n_steps, n_envs)) < done_prob
    truncated_flags = rng.random((n_steps, n_envs)) < 0.5
    buffer = SequenceReplayBuffer(rows * n_envs, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=n_envs)
    history = fill(buffer, done_flags, truncated_flags)
    if not valid_window_exists(history, rows, seq_len):
        with pytest.raises(ValueError):
            buffer.sample_sequences(8, seq_len)
        return
    batch = buffer.sample_sequences(32, seq_len)
    obs = batch.observations.numpy()
    assert obs.shape == (32, seq_len + 1, 3)
    assert batch.actions.shape == (32, seq_len, 3)
    # One env, one episode, consecutive steps, including the true (terminal) next observation at the end.
    assert np.all(obs[:, :, 0] == obs[:, :1, 0])
    assert np.all(obs[:, :, 1] == obs[:, :1, 1])
    np.testing.assert_array_equal(np.diff(obs[:, :, 2], axis=1), 1)
    # Actions and rewards are aligned with the observation they were taken in.
    np.testing.assert_array_equal(batch.actions.numpy(), obs[:, :-1])
    np.testing.assert_array_equal(batch.rewards.numpy(), obs[:, :-1, 2])
    for b in range(32):
        env, episode, step = (int(x) for x in obs[b, -2])
        _, _, done, truncated = next(h for h in history[env] if h[0] == episode and h[1] == step)
        assert batch.terminations[b, -1] == float(done and not truncated)
        assert batch.truncations[b, -1] == float(done and truncated)
    # Only the last transition of a sequence may end its episode.
    assert th.all(batch.terminations[:, :-1] == 0) and th.all(batch.truncations[:, :-1] == 0)


def test_wrap_around_keeps_only_the_newest_rows_and_their_final_observations():
    buffer = SequenceReplayBuffer(5, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    done = np.zeros((12, 1), dtype=bool)
    done[[2, 8], 0] = True
    fill(buffer, done, np.zeros_like(done))
    assert buffer.full and buffer.pos == 2
    # Rows 7..11 are stored; the final observation of step 2 has been evicted, the one of step 8 is kept.
    assert list(buffer.final_observations) == [(3, 0)]
    np.random.seed(0)
    batch = buffer.sample_sequences(200, 2)
    starts = {tuple(o) for o in batch.observations[:, 0].numpy().astype(int)}
    # Episode 1 has steps 4 and 5 stored (global steps 7, 8), episode 2 steps 0..2 (global 9..11).
    assert starts == {(0, 1, 4), (0, 2, 0), (0, 2, 1)}


def test_newest_transition_uses_the_last_next_observation():
    buffer = SequenceReplayBuffer(10, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    fill(buffer, np.zeros((3, 1), dtype=bool), np.zeros((3, 1), dtype=bool))
    np.random.seed(0)
    batch = buffer.sample_sequences(50, 3)
    np.testing.assert_array_equal(batch.observations[0].numpy()[:, 2], [0, 1, 2, 3])


def test_episode_break_is_a_truncation():
    buffer = SequenceReplayBuffer(10, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    fill(buffer, np.zeros((3, 2), dtype=bool), np.zeros((3, 2), dtype=bool))
    buffer.mark_episode_break()
    assert np.all(buffer.dones[2] == 1) and np.all(buffer.timeouts[2] == 1)
    # After the break the envs restart at step 0 of episode 0 again: no window may join the two.
    fill(buffer, np.zeros((3, 2), dtype=bool), np.zeros((3, 2), dtype=bool))
    np.random.seed(0)
    batch = buffer.sample_sequences(100, 2)
    np.testing.assert_array_equal(np.diff(batch.observations[:, :, 2].numpy(), axis=1), 1)
    assert th.all(batch.terminations == 0)
    assert batch.truncations[:, -1].sum() > 0  # windows ending at the break bootstrap from the true next observation


def test_short_episodes_are_rejected_with_a_clear_error():
    buffer = SequenceReplayBuffer(20, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    fill(buffer, np.ones((10, 1), dtype=bool), np.zeros((10, 1), dtype=bool))
    with pytest.raises(ValueError, match="shorter"):
        buffer.sample_sequences(4, 2)
    with pytest.raises(ValueError, match="fewer than one sequence"):
        SequenceReplayBuffer(20, LABEL_SPACE, ACTION_SPACE, device="cpu").sample_sequences(4, 2)


def test_pickle_round_trip_keeps_contents():
    buffer = SequenceReplayBuffer(8, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    done = np.zeros((6, 2), dtype=bool)
    done[3, 1] = True
    fill(buffer, done, np.zeros_like(done))
    loaded = pickle.loads(pickle.dumps(buffer))
    np.testing.assert_array_equal(loaded.observations, buffer.observations)
    assert loaded.final_observations.keys() == buffer.final_observations.keys()
    np.random.seed(1)
    a = loaded.sample_sequences(16, 2)
    np.random.seed(1)
    b = buffer.sample_sequences(16, 2)
    assert th.equal(a.observations, b.observations)


def test_images_are_stored_once_as_uint8():
    image_space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    buffer = SequenceReplayBuffer(1000, image_space, spaces.Box(-1, 1, (2,)), device="cpu")
    assert buffer.observations.dtype == np.uint8
    assert not hasattr(buffer, "next_observations")
    per_step = buffer.nbytes() / buffer.buffer_size
    assert 64 * 64 * 3 <= per_step < 64 * 64 * 3 + 32


def test_float64_observations_are_stored_as_float32_and_dict_spaces_work():
    space = spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float64), "velocity": spaces.Box(-1, 1, (1,), np.float64)})
    buffer = SequenceReplayBuffer(10, space, spaces.Box(-1, 1, (1,)), device="cpu")
    for k in range(4):
        obs = {"position": np.full((1, 2), k, np.float64), "velocity": np.full((1, 1), -k, np.float64)}
        nxt = {"position": np.full((1, 2), k + 1, np.float64), "velocity": np.full((1, 1), -k - 1, np.float64)}
        buffer.add(obs, nxt, np.zeros((1, 1)), np.zeros(1), np.array([k == 3]), [{}])
    assert buffer.observations["position"].dtype == np.float32
    batch = buffer.sample_sequences(4, 4)
    np.testing.assert_array_equal(batch.observations["position"][0, :, 0].numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(batch.observations["velocity"][0, :, 0].numpy(), [0, -1, -2, -3, -4])


def test_sb3_sac_can_sample_single_transitions():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", replay_buffer_class=SequenceReplayBuffer, learning_starts=50, seed=0)
    model.learn(120)
    sample = model.replay_buffer.sample(16)
    assert sample.observations.shape == (16, 3) and sample.next_observations.shape == (16, 3)
    assert sample.dones.shape == (16, 1) and sample.rewards.shape == (16, 1)
