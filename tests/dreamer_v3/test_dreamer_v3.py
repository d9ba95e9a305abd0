import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import TINY_DREAMER_V3, ToyEnv

from sb3_worldmodels.dreamer_v3 import DreamerV3
from sb3_worldmodels.dreamer_v3.policies import MODEL_SIZES


def test_replay_ratio_sets_sb3_schedule():
    # One update replays 16 x 64 = 1024 steps: a ratio of 512 is one update every 2 env steps.
    assert DreamerV3.replay_schedule(512, 16, 64, n_envs=1) == (2, 1)
    assert DreamerV3.replay_schedule(512, 16, 64, n_envs=4) == (1, 2)  # 4 env steps per vec step: 2 updates
    assert DreamerV3.replay_schedule(64, 4, 8, n_envs=1) == (1, 2)
    # Exact, not rounded: 1.5 updates per vec step of 3 envs are 3 every 2; 3/8 of an update per env step, 3 every 8.
    assert DreamerV3.replay_schedule(512, 16, 64, n_envs=3) == (2, 3)
    assert DreamerV3.replay_schedule(384, 16, 64, n_envs=1) == (8, 3)
    # No exact period up to 64 vec env steps: the closest, 4 updates every 41 steps (a ratio of 99.9 for 100).
    assert DreamerV3.replay_schedule(100, 16, 64, n_envs=1) == (41, 4)
    # Under one update per 64 steps: one every 1 / (updates per step) steps, 128 for a ratio of 8.
    assert DreamerV3.replay_schedule(8, 16, 64, n_envs=1) == (128, 1)
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY_DREAMER_V3, "replay_ratio": 8})
    assert model.train_freq.frequency == 4 and model.gradient_steps == 1
    sb3 = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY_DREAMER_V3, "train_freq": 10, "gradient_steps": 3})
    assert sb3.train_freq.frequency == 10 and sb3.gradient_steps == 3  # SB3's own schedule, when given
    for bad in (0, -8, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="replay_ratio must be a finite number > 0"):
            DreamerV3("MlpPolicy", "Pendulum-v1", replay_ratio=bad)
    # A ratio the schedule cannot carry out within 1% is said, with what it does instead: 0.03 updates per env step of
    # 32 replayed steps have no period up to 64; the closest is 1 every 33 (1.01% more).
    with pytest.warns(UserWarning, match=r"replay_ratio=0.96 .* replays 0.9697 steps per env step \(1 update\(s\) every 33 "):
        DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY_DREAMER_V3, "replay_ratio": 0.96})


def test_the_replay_schedule_follows_the_number_of_envs_a_model_is_loaded_with(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    model = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY_DREAMER_V3, "replay_ratio": 8})  # 32 replayed steps
    assert (model.train_freq.frequency, model.gradient_steps) == (4, 1)
    model.save(tmp_path / "one_env")
    loaded = DreamerV3.load(tmp_path / "one_env", env=make_vec_env("Pendulum-v1", n_envs=2))
    assert (loaded.train_freq.frequency, loaded.gradient_steps) == (2, 1)  # still 8 replayed steps per env step
    given = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY_DREAMER_V3, "train_freq": 4, "gradient_steps": 1})
    given.save(tmp_path / "given")
    loaded = DreamerV3.load(tmp_path / "given", env=make_vec_env("Pendulum-v1", n_envs=2))
    assert (loaded.train_freq.frequency, loaded.gradient_steps) == (4, 1)  # SB3's schedule, as given
    # A schedule passed to load() is SB3's, as given, too.
    loaded = DreamerV3.load(tmp_path / "one_env", env=make_vec_env("Pendulum-v1", n_envs=2), train_freq=3, gradient_steps=5)
    assert (loaded.train_freq.frequency, loaded.gradient_steps) == (3, 5)


def test_the_cpu_preset_keeps_the_paper_objectives_and_updates_once_per_env_step():
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_worldmodels.presets import DREAMER_V3_CPU

    paper = DreamerV3("MlpPolicy", "Pendulum-v1", _init_setup_model=False)
    for env_id, n_envs in (("Pendulum-v1", 1), ("CartPole-v1", 2)):
        model = DreamerV3("MlpPolicy", make_vec_env(env_id, n_envs=n_envs), **DREAMER_V3_CPU)
        # 8 x 16 = 128 replayed steps per update at a ratio of 128: one update per env step, two per step of 2 envs.
        assert model.train_freq.frequency == 1 and model.gradient_steps == n_envs
        for key in ("learning_rate", "actor_learning_rate", "gamma", "lambda_", "imagination_horizon", "entropy_scale"):
            assert getattr(model, key) == getattr(paper, key), key
        rssm = model.policy.world_model.rssm
        assert (rssm.deter_dim, rssm.stoch_dim, rssm.classes) == (128, 16, 16)


def test_paper_defaults():
    model = DreamerV3("MlpPolicy", "Pendulum-v1", _init_setup_model=False)
    assert (model.batch_size, model.batch_length, model.replay_ratio) == (16, 64, 512)
    assert math.isclose(model.gamma, 1 - 1 / 333) and model.lambda_ == 0.95 and model.imagination_horizon == 15
    assert (model.learning_rate, model.actor_learning_rate, model.critic_learning_rate) == (1e-4, 3e-5, 3e-5)
    assert (model.entropy_scale, model.slow_critic_fraction, model.free_bits) == (3e-4, 0.02, 1.0)
    assert (model.model_max_grad_norm, model.actor_critic_max_grad_norm) == (1000.0, 100.0)
    assert MODEL_SIZES["S"] == dict(deter=512, units=512, layers=2, cnn_depth=32)
    model = DreamerV3("MlpPolicy", "Pendulum-v1")
    policy = model.policy
    assert policy.world_model.rssm.deter_dim == 512 and policy.world_model.rssm.stoch_dim == 32
    assert policy.world_model_optimizer.defaults["eps"] == 1e-8 and policy.actor_optimizer.defaults["eps"] == 1e-5


def test_free_bits_reach_the_world_model_loss_and_can_change_between_updates(tiny_dreamer_v3_kwargs):
    model = DreamerV3("MlpPolicy", "Pendulum-v1", free_bits=1000.0, **tiny_dreamer_v3_kwargs)
    model.learn(tiny_dreamer_v3_kwargs["learning_starts"] + 2)
    data = model.replay_buffer.sample_sequences(4, model.sequence_length)
    stats, _ = model._update_world_model(data)
    assert stats["world_model/dynamics_loss"] == stats["world_model/representation_loss"] == 1000.0  # every step free
    model.free_bits = 0.0
    stats, _ = model._update_world_model(data)
    assert stats["world_model/dynamics_loss"] < 1000.0


def test_an_update_trains_every_part_and_moves_the_slow_critic(tiny_dreamer_v3_kwargs):
    model = DreamerV3("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_v3_kwargs)
    model.learn(tiny_dreamer_v3_kwargs["learning_starts"] + 20)
    policy = model.policy
    parts = {name: copy.deepcopy(getattr(policy, name).state_dict()) for name in ("world_model", "actor", "critic")}
    slow, critic = copy.deepcopy(policy.slow_critic.state_dict()), copy.deepcopy(policy.critic.state_dict())
    model.train(gradient_steps=1, batch_size=model.batch_size)
    for name, before in parts.items():
        after = getattr(policy, name).state_dict()
        assert any(not th.equal(before[k], after[k]) for k in before), name
    new_critic = policy.critic.state_dict()
    for key, value in policy.slow_critic.state_dict().items():
        assert th.allclose(value, 0.98 * slow[key] + 0.02 * new_critic[key], atol=1e-6), key
    assert any(not th.equal(slow[k], critic[k]) for k in slow)  # the slow critic lags behind
    assert model.logger.name_to_value["train/return_scale"] >= 1.0


def test_discrete_actions_and_image_observations(tiny_dreamer_v3_kwargs):
    model = DreamerV3("MlpPolicy", "CartPole-v1", seed=0, **tiny_dreamer_v3_kwargs)
    model.learn(tiny_dreamer_v3_kwargs["learning_starts"] + 10)
    action, _ = model.predict(np.zeros(4, np.float32), deterministic=True)
    assert action.shape == () and action in (0, 1)
    env = ToyEnv(gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(-1, 1, (2,)))
    model = DreamerV3("CnnPolicy", env, seed=0, **tiny_dreamer_v3_kwargs)
    model.learn(tiny_dreamer_v3_kwargs["learning_starts"] + 10)
    truth, prediction, rewards = model.open_loop_prediction(2, context=2, horizon=3)
    assert truth[""].shape == prediction[""].shape == (2, 3, 3, 16, 16) and rewards["predicted"].shape == (2, 3)
    assert truth[""].min() >= -0.5 and truth[""].max() <= 0.5
    errors = model.prediction_errors(2, horizon=3, context=2)
    assert errors["observation_mse"].shape == (3,) and errors["reward_mse"].shape == (3,)
    with pytest.raises(ValueError, match="power of 2"):
        DreamerV3("CnnPolicy", ToyEnv(gym.spaces.Box(0, 255, (24, 24, 3), np.uint8), gym.spaces.Box(-1, 1, (2,))))


def test_deterministic_actions_survive_save_and_load(tiny_dreamer_v3_kwargs, tmp_path):
    model = DreamerV3("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_v3_kwargs)
    model.learn(tiny_dreamer_v3_kwargs["learning_starts"] + 20)
    obs = np.array([[0.3, -0.9, 1.5], [1.0, 0.0, -2.0]], np.float32)
    actions, state = model.predict(obs, deterministic=True)
    again, state2 = model.predict(obs, state=state, episode_start=np.array([True, True]), deterministic=True)
    assert np.allclose(actions, again)  # an episode start restarts from the learned initial state
    model.save(tmp_path / "v3")
    loaded = DreamerV3.load(tmp_path / "v3", device="cpu")
    assert np.allclose(loaded.predict(obs, deterministic=True)[0], actions, atol=1e-6)
    for a, b in zip(model.policy.slow_critic.parameters(), loaded.policy.slow_critic.parameters(), strict=True):
        assert th.equal(a, b)
    assert th.equal(model.policy.return_normalizer.high, loaded.policy.return_normalizer.high)


def test_fast_paths_give_the_plain_world_model_loss_and_gradients(tiny_dreamer_v3_kwargs):
    env = ToyEnv(gym.spaces.Box(0, 255, (16, 16, 3), np.uint8), gym.spaces.Box(-1, 1, (2,)))
    models = [DreamerV3("CnnPolicy", env, accel=accel, device="cpu", **tiny_dreamer_v3_kwargs) for accel in ("none", "auto")]
    models[1].policy.load_state_dict(models[0].policy.state_dict())
    assert type(models[1].policy.world_model.encoders["image16"].net[0]) is not th.nn.Conv2d  # a fast path is in place
    g = th.Generator().manual_seed(0)
    inputs = dict(
        obs={"": th.rand(3, 5, 3, 16, 16, generator=g)},
        previous_actions=th.rand(3, 5, 2, generator=g),
        is_first=th.zeros(3, 5, dtype=th.bool),
        rewards=th.randn(3, 4, generator=g),
        terminations=th.zeros(3, 4),
        mask=th.ones(3, 4),
    )
    results = []
    for model in models:
        world_model = model.policy.world_model
        world_model.zero_grad()
        loss, _, _ = world_model.loss(**inputs, generator=th.Generator().manual_seed(1))
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in world_model.parameters() if p.grad is not None]))
    assert th.allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert th.allclose(a, b, rtol=1e-3, atol=1e-5)
