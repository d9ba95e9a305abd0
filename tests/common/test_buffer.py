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


def check_sequences(batch, history: dict, seq_len: int) -> None:
    """Every sampled sequence: a true prefix of one episode of one env, then padding that repeats its last true next
    observation; flags only on the last true transition."""
    obs, mask = batch.observations.numpy(), batch.mask.numpy()
    lengths = mask.sum(axis=1).astype(int)
    assert obs.shape[1] == seq_len + 1 and batch.actions.shape[1] == seq_len
    assert np.all(lengths >= 1)
    np.testing.assert_array_equal(mask, np.arange(seq_len) < lengths[:, None])  # a prefix
    for b, m in enumerate(lengths):
        true = obs[b, : m + 1]
        assert np.all(true[:, 0] == true[0, 0]) and np.all(true[:, 1] == true[0, 1])  # one env, one episode
        np.testing.assert_array_equal(np.diff(true[:, 2]), 1)  # consecutive, with the true next observation last
        np.testing.assert_array_equal(obs[b, m + 1 :], np.repeat(obs[b, m : m + 1], seq_len - m, axis=0))
        # Actions and rewards are aligned with the observation they were taken in; padding is zero.
        np.testing.assert_array_equal(batch.actions[b, :m].numpy(), obs[b, :m])
        np.testing.assert_array_equal(batch.rewards[b, :m].numpy(), obs[b, :m, 2])
        assert batch.actions[b, m:].abs().sum() == 0 and batch.rewards[b, m:].abs().sum() == 0
        env, episode, step = (int(x) for x in obs[b, m - 1])
        steps = history[env]
        k = next(i for i, h in enumerate(steps) if h[0] == episode and h[1] == step)
        _, _, done, truncated = steps[k]
        assert batch.terminations[b, m - 1] == float(done and not truncated)
        assert batch.truncations[b, m - 1] == float(done and truncated)
        # The sequence stops early only at its episode's end or at the newest stored transition.
        assert m == seq_len or done or k == len(steps) - 1
        # The action that led to o_0: the previous step's of the same episode, none (0) at an episode start.
        if batch.episode_starts[b] == 0:
            np.testing.assert_array_equal(batch.previous_actions[b].numpy(), obs[b, 0] - [0, 0, 1])
        else:
            assert batch.previous_actions[b].abs().sum() == 0
        if obs[b, 0, 2] == 0:
            assert batch.episode_starts[b] == 1
    assert th.all(batch.terminations * (1 - batch.mask) == 0)
    last = th.nn.functional.one_hot(batch.mask.sum(1).long() - 1, seq_len).float()
    assert th.all((batch.terminations + batch.truncations) * (1 - last) == 0)


@settings(max_examples=60, deadline=None)
@given(
    n_envs=st.integers(1, 4),
    rows=st.integers(3, 12),
    n_steps=st.integers(1, 40),
    seq_len=st.integers(1, 5),
    done_prob=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**16),
)
def test_sampled_sequences_are_a_true_episode_prefix_then_padding(n_envs, rows, n_steps, seq_len, done_prob, seed):
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    done_flags = rng.random((n_steps, n_envs)) < done_prob
    truncated_flags = rng.random((n_steps, n_envs)) < 0.5
    buffer = SequenceReplayBuffer(rows * n_envs, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=n_envs)
    history = fill(buffer, done_flags, truncated_flags)
    check_sequences(buffer.sample_sequences(32, seq_len), history, seq_len)


def test_every_stored_transition_starts_a_sequence_equally_often():
    # Episodes of 1, 2 and 3 transitions; terminal transitions and the last steps of episodes start sequences as often
    # as any other transition (a sequence of 4 covers none of these episodes whole).
    buffer = SequenceReplayBuffer(12, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    done = np.zeros((6, 2), dtype=bool)
    done[[0, 2, 5], 0] = True
    done[[2, 5], 1] = True
    history = fill(buffer, done, np.zeros_like(done))
    np.random.seed(0)
    batch = buffer.sample_sequences(24_000, 4)
    check_sequences(buffer.sample_sequences(200, 4), history, 4)
    starts = batch.observations[:, 0].numpy().astype(int)
    _, counts = np.unique(starts, axis=0, return_counts=True)
    assert len(counts) == 12  # every stored transition
    assert counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000


def test_sampling_an_empty_buffer_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        SequenceReplayBuffer(20, LABEL_SPACE, ACTION_SPACE, device="cpu").sample_sequences(4, 2)


def test_wrap_around_keeps_only_the_newest_rows_and_their_final_observations():
    buffer = SequenceReplayBuffer(5, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    done = np.zeros((12, 1), dtype=bool)
    done[[2, 8], 0] = True
    history = fill(buffer, done, np.zeros_like(done))
    assert buffer.full and buffer.pos == 2
    # Rows 7..11 are stored; the final observation of step 2 has been evicted, the one of step 8 is kept.
    assert list(buffer.final_observations) == [(3, 0)]
    np.random.seed(0)
    batch = buffer.sample_sequences(200, 2)
    check_sequences(batch, history, 2)
    starts = {tuple(o) for o in batch.observations[:, 0].numpy().astype(int)}
    # Episode 1 has steps 4 and 5 stored (global steps 7, 8), episode 2 steps 0..2 (global 9..11).
    assert starts == {(0, 1, 4), (0, 1, 5), (0, 2, 0), (0, 2, 1), (0, 2, 2)}


def test_newest_transition_uses_the_last_next_observation():
    buffer = SequenceReplayBuffer(10, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    fill(buffer, np.zeros((3, 1), dtype=bool), np.zeros((3, 1), dtype=bool))
    np.random.seed(0)
    batch = buffer.sample_sequences(50, 3)
    pairs = zip(batch.observations.numpy(), batch.mask.numpy(), strict=True)
    by_start = {int(o[0, 2]): (o[:, 2].tolist(), m.tolist()) for o, m in pairs}
    assert by_start[0] == ([0, 1, 2, 3], [1, 1, 1])
    assert by_start[2] == ([2, 3, 3, 3], [1, 0, 0])


def test_episode_break_is_a_truncation():
    buffer = SequenceReplayBuffer(10, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    history = fill(buffer, np.zeros((3, 2), dtype=bool), np.zeros((3, 2), dtype=bool))
    buffer.mark_episode_break()
    assert np.all(buffer.dones[2] == 1) and np.all(buffer.timeouts[2] == 1)
    # After the break the envs restart at step 0 of episode 0 again: no sequence may join the two.
    fill(buffer, np.zeros((3, 2), dtype=bool), np.zeros((3, 2), dtype=bool))
    np.random.seed(0)
    batch = buffer.sample_sequences(100, 2)
    for b, m in enumerate(batch.mask.sum(1).long().tolist()):
        np.testing.assert_array_equal(np.diff(batch.observations[b, : m + 1, 2].numpy()), 1)
    assert th.all(batch.terminations == 0)
    assert batch.truncations.sum() > 0  # sequences ending at the break bootstrap from the true next observation
    assert len(history) == 2


def test_episodes_of_one_transition_are_sampled_with_their_final_observation():
    buffer = SequenceReplayBuffer(20, LABEL_SPACE, ACTION_SPACE, device="cpu", n_envs=1)
    history = fill(buffer, np.ones((10, 1), dtype=bool), np.zeros((10, 1), dtype=bool))
    np.random.seed(0)
    batch = buffer.sample_sequences(16, 3)
    check_sequences(batch, history, 3)
    assert th.all(batch.mask == th.tensor([1.0, 0.0, 0.0])) and th.all(batch.terminations[:, 0] == 1)
    np.testing.assert_array_equal(batch.observations[:, :, 2].numpy(), np.tile([0, 1, 1, 1], (16, 1)))


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
    np.random.seed(0)
    batch = buffer.sample_sequences(64, 4)
    first = int(np.flatnonzero(batch.observations["position"][:, 0, 0].numpy() == 0)[0])
    np.testing.assert_array_equal(batch.observations["position"][first, :, 0].numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(batch.observations["velocity"][first, :, 0].numpy(), [0, -1, -2, -3, -4])


def test_sb3_sac_can_sample_single_transitions():
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", replay_buffer_class=SequenceReplayBuffer, learning_starts=50, seed=0)
    model.learn(120)
    sample = model.replay_buffer.sample(16)
    assert sample.observations.shape == (16, 3) and sample.next_observations.shape == (16, 3)
    assert sample.dones.shape == (16, 1) and sample.rewards.shape == (16, 1)
