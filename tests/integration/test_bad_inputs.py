"""Bad input is refused where it enters, with a message naming it, and nothing stored is lost."""

from __future__ import annotations

import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import TINY_DCMPC, TINY_DREAMER, TINY_DREAMER_V3, ToyEnv
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_worldmodels import DCMPC, Dreamer
from sb3_worldmodels.common.callbacks import OpenLoopVideoCallback, PredictionErrorCallback
from sb3_worldmodels.dreamer_v3 import DreamerV3

ALGOS = [
    pytest.param(DCMPC, TINY_DCMPC, id="DCMPC"),
    pytest.param(Dreamer, TINY_DREAMER, id="Dreamer"),
    pytest.param(DreamerV3, TINY_DREAMER_V3, id="DreamerV3"),
]
BOX = spaces.Box(-1, 1, (3,), np.float32)
ACTION = spaces.Box(-1, 1, (1,), np.float32)


def make(algo, tiny, env="Pendulum-v1", policy="MlpPolicy", **extra):
    kwargs = {**tiny, "policy_kwargs": dict(tiny["policy_kwargs"]), **extra}
    return algo(policy, env, seed=0, **kwargs)


# --------------------------------------------------------------------------------- non-finite data
class Broken(ToyEnv):
    """Episodes of 5 steps; ``where`` decides which observation is NaN: the terminal one of episode 2 or the reset."""

    def __init__(self, where: str):
        super().__init__(BOX, ACTION)
        self.where, self.t, self.episodes = where, 0, 0

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        self.t, self.episodes = 0, self.episodes + 1
        if self.where == "reset":
            obs[0] = np.nan
        return obs, info

    def step(self, action):
        self.t += 1
        obs = self.observation_space.sample()
        if self.where == "terminal" and self.t == 5 and self.episodes == 2:
            obs[2] = np.inf
        return obs, 0.0, self.t == 5, False, {}


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_a_non_finite_terminal_observation_is_refused(algo, tiny):
    # SB3 stores the terminal observation from info["terminal_observation"]; new_obs is already the next reset's.
    model = make(algo, tiny, env=DummyVecEnv([lambda: Broken("terminal")]))
    with pytest.raises(ValueError, match=r"Non-finite terminal observation from env index \[0\] at step 10"):
        model.learn(40)
    assert model.replay_buffer.size() == 9  # the first episode and 4 steps of the second are kept


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_a_non_finite_reset_observation_is_refused_before_anything_is_stored(algo, tiny):
    model = make(algo, tiny, env=DummyVecEnv([lambda: Broken("reset")]))
    with pytest.raises(ValueError, match=r"Non-finite reset observation from env index \[0\]"):
        model.learn(20)
    assert model.replay_buffer.size() == 0


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_predict_refuses_a_non_finite_observation(algo, tiny):
    model = make(algo, tiny)
    with pytest.raises(ValueError, match="non-finite observation"):
        model.predict(np.array([0.0, np.nan, 1.0], dtype=np.float32), deterministic=True)


# ------------------------------------------------------------------------- recurrent state in predict
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_predict_refuses_a_state_of_another_batch(algo, tiny):
    model = make(algo, tiny)
    obs = np.zeros((2, 3), dtype=np.float32)
    _, state = model.predict(obs, deterministic=True)
    with pytest.raises(ValueError, match=r"a state for \[2.*\] envs and 3 observations"):
        model.predict(np.zeros((3, 3), dtype=np.float32), state=state, deterministic=True)
    with pytest.raises(ValueError, match="got 3 episode_start flags for 2 observations"):
        model.predict(obs, state=state, episode_start=np.zeros(3, dtype=bool), deterministic=True)


# ------------------------------------------------------------------------------ replay buffers
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_load_replay_buffer_refuses_incompatible_buffers_and_keeps_its_own(algo, tiny, tmp_path):
    model = make(algo, tiny)
    model.learn(20)
    own = model.replay_buffer
    SAC("MlpPolicy", "Pendulum-v1", buffer_size=100).save_replay_buffer(tmp_path / "sac")
    with pytest.raises(ValueError, match="not a SequenceReplayBuffer"):
        model.load_replay_buffer(tmp_path / "sac")
    other = make(algo, tiny, env="MountainCarContinuous-v0")
    other.save_replay_buffer(tmp_path / "other_space")
    with pytest.raises(ValueError, match=r"observation space Box.*\(2,\).*\(this model: Box.*\(3,\)"):
        model.load_replay_buffer(tmp_path / "other_space")
    two_envs = make(algo, tiny, env=make_vec_env("Pendulum-v1", n_envs=2))
    two_envs.save_replay_buffer(tmp_path / "two_envs")
    with pytest.raises(ValueError, match=r"n_envs 2 \(this model: 1\)"):
        model.load_replay_buffer(tmp_path / "two_envs")
    assert model.replay_buffer is own
    model.save_replay_buffer(tmp_path / "own")
    model.load_replay_buffer(tmp_path / "own")  # a compatible one is taken
    assert model.replay_buffer.size() == own.size()


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "algo, tiny, setting, message",
    [
        pytest.param(DCMPC, TINY_DCMPC, dict(batch_size=0), "batch_size must be an integer >= 1, got 0", id="DCMPC-batch"),
        pytest.param(DCMPC, TINY_DCMPC, dict(horizon=0), "horizon must be an integer >= 1", id="DCMPC-horizon"),
        pytest.param(DCMPC, TINY_DCMPC, dict(n_steps=0), "n_steps must be an integer >= 1", id="DCMPC-n_steps"),
        pytest.param(DCMPC, TINY_DCMPC, dict(plan_horizon=0), "plan_horizon must be an integer >= 1", id="DCMPC-plan"),
        pytest.param(
            DCMPC, TINY_DCMPC, dict(policy_kwargs=dict(fsq_levels=[5, 1])), r"fsq_levels must .* at least 2", id="DCMPC-fsq"
        ),  # fmt: skip
        pytest.param(Dreamer, TINY_DREAMER, dict(batch_size=0), "batch_size must be an integer >= 1", id="Dreamer-batch"),
        pytest.param(
            Dreamer, TINY_DREAMER, dict(batch_length=1), "batch_length must be an integer >= 2, got 1", id="Dreamer-length"
        ),  # fmt: skip
        pytest.param(
            Dreamer,
            TINY_DREAMER,
            dict(imagination_horizon=0),
            "imagination_horizon must be an integer >= 1",
            id="Dreamer-imagination",
        ),  # fmt: skip
        pytest.param(DCMPC, TINY_DCMPC, dict(accel="fast"), r'accel must be "auto", "none" or a list', id="DCMPC-accel"),
        pytest.param(
            DreamerV3, TINY_DREAMER_V3, dict(free_bits=-1.0), "free_bits must be a finite number >= 0", id="DreamerV3-free"
        ),  # fmt: skip
        pytest.param(
            DreamerV3, TINY_DREAMER_V3, dict(replay_ratio=float("nan")), "replay_ratio must be a finite", id="DreamerV3-ratio"
        ),  # fmt: skip
        pytest.param(
            Dreamer, TINY_DREAMER, dict(accel=["mish", "fused"]), r"Unknown fast paths \['fused'\]", id="Dreamer-accel"
        ),  # fmt: skip
    ],
)
def test_invalid_settings_are_refused_at_construction(algo, tiny, setting, message):
    kwargs = {**tiny, **setting}
    with pytest.raises(ValueError, match=message):
        algo("MlpPolicy", "Pendulum-v1", **kwargs)


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize(
    "policy, space, message",
    [
        ("MultiInputPolicy", BOX, '"MultiInputPolicy" takes Dict observations'),
        ("MlpPolicy", spaces.Box(-1, 1, (), np.float32), "is 0-d; give it shape"),
        ("MlpPolicy", spaces.Box(-1, 1, (0,), np.float32), "holds no values"),
        ("MultiInputPolicy", spaces.Dict({"a": BOX, "b": spaces.Box(-1, 1, (0,), np.float32)}), "'b'.* holds no values"),
    ],
)
def test_observation_spaces_the_policy_cannot_take_are_refused(algo, tiny, policy, space, message):
    with pytest.raises(ValueError, match=message):
        make(algo, tiny, env=ToyEnv(space, ACTION), policy=policy)


def test_dcmpc_cnn_policy_points_to_dreamer():
    with pytest.raises(ValueError, match=r"DC-MPC takes vector observations.*Dreamer\(\"CnnPolicy\""):
        DCMPC("CnnPolicy", "Pendulum-v1")


# ---------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_a_damaged_policy_file_is_reported_as_damaged(algo, tiny, tmp_path):
    make(algo, tiny).save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as source, zipfile.ZipFile(tmp_path / "bad.zip", "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "policy.pth":
                data = data[:100] + b"\x86" * 64 + data[164:]
            target.writestr(item, data)
    with pytest.raises(ValueError, match=r"policy.pth inside the checkpoint is damaged") as error:
        algo.load(tmp_path / "bad.zip")
    assert "weights_only" not in str(error.value)


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_save_onto_a_directory_leaves_no_temporary_file(algo, tiny, tmp_path):
    (tmp_path / "model.zip").mkdir()
    with pytest.raises(OSError):
        make(algo, tiny).save(tmp_path / "model.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]
    assert list((tmp_path / "model.zip").iterdir()) == []


# ------------------------------------------------------------------------------------ callbacks
def test_open_loop_video_callback_is_refused_for_dcmpc():
    model = make(DCMPC, TINY_DCMPC)
    with pytest.raises(TypeError, match="DCMPC has no decoder.*PredictionErrorCallback"):
        model.learn(10, callback=OpenLoopVideoCallback(log_freq=5))


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_prediction_callback_warns_once_when_episodes_are_shorter_than_its_horizon(algo, tiny):
    env = gym.wrappers.TimeLimit(gym.make("Pendulum-v1").unwrapped, max_episode_steps=4)
    model = make(algo, tiny, env=env, learning_starts=20)
    callback = PredictionErrorCallback(log_freq=10, horizon=8, n_sequences=4)
    with pytest.warns(UserWarning, match="episodes last 4 steps on average, fewer than the") as record:
        model.learn(60, callback=callback)
    assert sum("PredictionErrorCallback" in str(w.message) for w in record) == 1
    assert callback.last_errors  # and it still measures


# ------------------------------------------------------------------------- what SAC takes, ours too
class _ShapedActions(ToyEnv):
    def step(self, action):
        assert np.shape(action) == self.action_space.shape, np.shape(action)
        return self.observation_space.sample(), float(np.sum(action)), False, False, {}


@pytest.mark.parametrize("algo, tiny", ALGOS)
def test_multi_dimensional_box_actions_as_sac_takes_them(algo, tiny):
    env = _ShapedActions(BOX, spaces.Box(-1, 1, (2, 2), np.float32))
    model = make(algo, tiny, env=env)
    model.learn(tiny["learning_starts"] + 20)
    assert model._n_updates > 0
    assert model.predict(BOX.sample(), deterministic=True)[0].shape == (2, 2)
    assert model.predict(np.stack([BOX.sample()] * 3), deterministic=True)[0].shape == (3, 2, 2)


@pytest.mark.parametrize("algo, tiny", ALGOS)
@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(4),
        spaces.MultiDiscrete([3, 2]),
        spaces.MultiBinary(3),
        spaces.Dict({"d": spaces.Discrete(3), "v": spaces.Box(-1, 1, (2,), np.float32)}),
    ],
    ids=["Discrete", "MultiDiscrete", "MultiBinary", "Dict"],
)
def test_discrete_observations_are_one_hot_encoded_as_sb3_does(algo, tiny, space):
    policy = "MultiInputPolicy" if isinstance(space, spaces.Dict) else "MlpPolicy"
    model = make(algo, tiny, env=ToyEnv(space, ACTION), policy=policy)
    model.learn(tiny["learning_starts"] + 20)
    assert model._n_updates > 0 and model.non_finite_updates == 0
    action, _ = model.predict(space.sample(), deterministic=True)
    assert action.shape == (1,)
    # The first layer sees the one-hot encoding: Discrete(4) is 4 inputs, MultiDiscrete([3, 2]) 5, MultiBinary(3) 3.
    sizes = {"Discrete": 4, "MultiDiscrete": 5, "MultiBinary": 3, "Dict": 5}
    first = next(m for m in model.policy.modules() if isinstance(m, th.nn.Linear))
    assert first.in_features == sizes[type(space).__name__] or isinstance(space, spaces.Dict)
