"""Dreamer: RSSM, ELBO pieces, lambda-returns, update isolation, acting state, spaces, save/load, pipelines."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import TINY_DREAMER, ToyEnv, make_pixel_cartpole
from gymnasium import spaces
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import Dreamer
from sb3_worldmodels.common.returns import lambda_return
from sb3_worldmodels.dreamer.rssm import RSSM, RSSMState, gaussian_kl


# ----------------------------------------------------------------------------------------- RSSM
def test_rssm_step_shapes_and_initial_state():
    rssm = RSSM(action_dim=2, embed_dim=5, stoch_dim=3, deter_dim=7, hidden_dim=6)
    state = rssm.initial(4, "cpu")
    assert all(th.count_nonzero(x) == 0 for x in state)
    prior = rssm.imagine(state, th.zeros(4, 2))
    assert prior.stoch.shape == (4, 3) and prior.deter.shape == (4, 7) and prior.feature.shape == (4, 10)
    assert th.all(prior.std > 0.1)
    posterior, prior = rssm.observe_step(state, th.zeros(4, 2), th.randn(4, 5))
    # The posterior shares the prior's deterministic state and differs in its stochastic part.
    assert th.equal(posterior.deter, prior.deter) and not th.equal(posterior.mean, prior.mean)
    posts, priors = rssm.observe(th.randn(4, 6, 5), th.randn(4, 6, 2))
    assert posts.stoch.shape == (4, 6, 3) and priors.deter.shape == (4, 6, 7)


def test_rssm_mean_steps_are_deterministic_and_reset_masks_states():
    th.manual_seed(0)
    rssm = RSSM(action_dim=1, embed_dim=2, stoch_dim=2, deter_dim=3, hidden_dim=4)
    state = rssm.imagine(rssm.initial(2, "cpu"), th.ones(2, 1))
    a = rssm.imagine(state, th.ones(2, 1), sample=False)
    b = rssm.imagine(state, th.ones(2, 1), sample=False)
    assert th.equal(a.stoch, b.stoch) and th.equal(a.stoch, a.mean)
    masked = state.mask(th.tensor([1.0, 0.0]))
    assert th.equal(masked.deter[0], state.deter[0]) and th.count_nonzero(masked.deter[1]) == 0


def test_gaussian_kl_matches_the_closed_form():
    post = RSSMState(th.tensor([[1.0, 0.0]]), th.tensor([[2.0, 1.0]]), th.zeros(1, 2), th.zeros(1, 1))
    prior = RSSMState(th.tensor([[0.0, 0.0]]), th.tensor([[1.0, 1.0]]), th.zeros(1, 2), th.zeros(1, 1))
    # KL(N(1, 4) || N(0, 1)) = 0.5 * (4 + 1 - 1 - ln 4); the second dimension contributes 0.
    expected = 0.5 * (4 + 1 - 1 - math.log(4))
    assert gaussian_kl(post, prior).item() == pytest.approx(expected)


def test_free_nats_apply_to_the_batch_mean_kl(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", free_nats=1e6, seed=0, **tiny_dreamer_kwargs)
    model.learn(110)
    data = model.replay_buffer.sample_sequences(4, 7)
    # With free nats far above the KL, the KL term is a constant: its gradient vanishes and the
    # loss is the hand sum reconstruction + reward + free_nats.
    stats, _ = model._update_world_model(data)
    total = stats["world_model/reconstruction_loss"] + stats["world_model/reward_loss"] + 1e6
    assert stats["world_model/loss"].item() == pytest.approx(total.item())
    assert stats["world_model/kl"] < 1e6


# ---------------------------------------------------------------------------------- lambda-return
def test_lambda_return_hand_computed():
    rewards = th.tensor([1.0, 2.0, 3.0])
    values = th.tensor([10.0, 20.0, 30.0])
    discounts = th.tensor([0.5, 0.5, 0.5])
    bootstrap = th.tensor(40.0)
    lam = 0.5
    # R_2 = 3 + .5 * 40 = 23
    # R_1 = 2 + .5 * (.5 * 30 + .5 * 23) = 2 + .5 * 26.5 = 15.25
    # R_0 = 1 + .5 * (.5 * 20 + .5 * 15.25) = 1 + .5 * 17.625 = 9.8125
    returns = lambda_return(rewards, values, discounts, bootstrap, lam)
    assert returns.tolist() == pytest.approx([9.8125, 15.25, 23.0])


def test_lambda_return_limits():
    rewards, values = th.rand(5, 3), th.rand(5, 3)
    discounts, bootstrap = th.full((5, 3), 0.9), th.rand(3)
    td = lambda_return(rewards, values, discounts, bootstrap, 0.0)
    next_values = th.cat([values[1:], bootstrap[None]])
    assert th.allclose(td, rewards + 0.9 * next_values)
    mc = lambda_return(rewards, values, discounts, bootstrap, 1.0)
    expected = bootstrap
    for t in reversed(range(5)):
        expected = rewards[t] + 0.9 * expected
    assert th.allclose(mc[0], expected)


# ------------------------------------------------------------------------------------ updates
def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(params, before):
    return any(not th.equal(p, q) for p, q in zip(params, before, strict=True))


def test_each_update_changes_only_its_own_parameters(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(110)
    policy = model.policy
    groups = {
        "world_model": policy.world_model_parameters(),
        "actor": list(policy.actor.parameters()),
        "value": list(policy.value.parameters()),
    }
    data = model.replay_buffer.sample_sequences(4, 7)
    before = {k: _snapshot(v) for k, v in groups.items()}
    _, posterior = model._update_world_model(data)
    assert {k for k, v in groups.items() if _changed(v, before[k])} == {"world_model"}
    # The behaviour update: the actor step changes only the actor, then the value step only the value.
    before = {k: _snapshot(v) for k, v in groups.items()}
    original_step = model.policy.value_optimizer.step
    model.policy.value_optimizer.step = lambda *a, **k: None
    model._update_behaviour(posterior)
    assert {k for k, v in groups.items() if _changed(v, before[k])} == {"actor"}
    model.policy.value_optimizer.step = original_step
    before = {k: _snapshot(v) for k, v in groups.items()}
    model.policy.actor_optimizer.step = lambda *a, **k: None
    model._update_behaviour(posterior)
    assert {k for k, v in groups.items() if _changed(v, before[k])} == {"value"}
    assert all(p.requires_grad for p in policy.parameters())


def test_actor_gradient_flows_through_the_dynamics(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(110)
    _, posterior = model._update_world_model(model.replay_buffer.sample_sequences(4, 7))
    model._update_behaviour(posterior)
    grads = [p.grad for p in model.policy.actor.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_actor_entropy_scale_adds_the_weighted_entropy_to_the_actor_loss(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", **tiny_dreamer_kwargs)
    model.learn(110)
    _, posterior = model._update_world_model(model.replay_buffer.sample_sequences(4, 7))
    # No parameter moves, so each call below sees the same networks and, reseeded, the same noise.
    model.policy.actor_optimizer.step = model.policy.value_optimizer.step = lambda *a, **k: None
    th.manual_seed(1)
    _, entropy = model.imagine(posterior.flatten())
    th.manual_seed(1)
    plain = model._update_behaviour(posterior)["train/actor_loss"]
    model.actor_entropy_scale = 0.5
    th.manual_seed(1)
    regularised = model._update_behaviour(posterior)["train/actor_loss"]
    horizon = model.imagination_horizon
    # Weights of the imagined steps without a continuation head: 1, gamma, gamma^2, ...
    weights = model.gamma ** th.arange(horizon - 1, dtype=th.float32)
    expected = plain - 0.5 * (weights[:, None] * entropy[:-1]).mean()
    assert th.allclose(regularised, expected, rtol=1e-5, atol=1e-5)


def test_imagination_starts_draws_distinct_posterior_states(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs, imagination_starts=5)
    model.learn(110)
    _, posterior = model._update_world_model(model.replay_buffer.sample_sequences(4, 7))
    flat = posterior.flatten()
    start = model.imagination_start_states(posterior)
    assert start.deter.shape == (5, flat.deter.shape[1])
    # Each start is one of the batch's posterior states (all four fields of the same row), and no row is drawn twice.
    rows = th.cat(list(flat), dim=1)
    matches = (th.cat(list(start), dim=1)[:, None] == rows[None]).all(dim=-1)
    assert (matches.sum(dim=1) == 1).all() and matches.any(dim=0).sum() == 5
    # Different draws from call to call; the imagination then runs from the 5 starts.
    assert not th.equal(model.imagination_start_states(posterior).deter, start.deter)
    features, entropy = model.imagine(start)
    assert features.shape[:2] == entropy.shape == (model.imagination_horizon, 5)
    model._update_behaviour(posterior)
    # None (the paper) and a number at least the batch's state count start from every state, in order.
    for n in (None, 4 * 8):
        model.imagination_starts = n
        assert th.equal(model.imagination_start_states(posterior).deter, flat.deter)
    with pytest.raises(ValueError, match="imagination_starts"):
        Dreamer("MlpPolicy", "Pendulum-v1", **tiny_dreamer_kwargs, imagination_starts=0)


@pytest.mark.parametrize(
    "observation_space, action_space, message",
    [
        (spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 2]), "Box and Discrete action"),
        (spaces.Box(0, 255, (32, 32, 3), np.uint8), spaces.Box(-1, 1, (1,)), "64x64"),
        (spaces.Box(-1, 1, (4, 5)), spaces.Box(-1, 1, (1,)), "has shape"),
        (spaces.Tuple([spaces.Box(-1, 1, (3,))]), spaces.Box(-1, 1, (1,)), "vector Box"),
    ],
)
def test_unsupported_spaces_fail_at_construction(observation_space, action_space, message, tiny_dreamer_kwargs):
    with pytest.raises(ValueError, match=message):
        Dreamer("MlpPolicy", ToyEnv(observation_space, action_space), **tiny_dreamer_kwargs)


def test_paper_defaults():
    model = Dreamer("MlpPolicy", "Pendulum-v1", buffer_size=1000, device="cpu")
    policy = model.policy
    assert (policy.rssm.stoch_dim, policy.rssm.deter_dim) == (30, 200)
    assert (model.batch_size, model.batch_length, model.imagination_horizon) == (50, 50, 15)
    assert model.imagination_starts is None  # every posterior state of the batch
    assert (model.gamma, model.lambda_, model.free_nats, model.kl_scale) == (0.99, 0.95, 3.0, 1.0)
    assert (model.learning_starts, model.train_freq.frequency, model.gradient_steps) == (5000, 1000, 100)
    assert policy.world_model_optimizer.param_groups[0]["lr"] == 6e-4
    assert policy.actor_optimizer.param_groups[0]["lr"] == 8e-5 and policy.value_optimizer.param_groups[0]["lr"] == 8e-5
    assert model.exploration_noise == 0.3 and model.max_grad_norm == 100
    assert model.actor_entropy_scale == 0.0  # Dreamer V1's actor has no entropy term


def test_discrete_actions_with_epsilon_greedy(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "CartPole-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(200)
    action, state = model.predict(np.zeros(4, np.float32), deterministic=True)
    assert action.shape == () and action in (0, 1)
    assert state[2].shape == (1, 2)  # the previous action, one-hot


# ------------------------------------------------------------------------------------ pixels
@pytest.fixture(scope="module")
def pixel_model():
    env = make_pixel_cartpole()
    model = Dreamer("CnnPolicy", env, seed=0, **{**TINY_DREAMER, "learning_starts": 60, "train_freq": 30})
    model.learn(90)
    return model


def test_pixels_are_stored_once_as_uint8(pixel_model):
    buffer = pixel_model.replay_buffer
    assert buffer.observations.dtype == np.uint8
    assert buffer.observations.shape[1:] == (1, 3, 64, 64)  # SB3 transposes HWC images to CHW
    assert not hasattr(buffer, "next_observations")
    scaled = pixel_model.policy.preprocess(th.as_tensor(buffer.observations[:2, 0]))[""]
    assert scaled.min() >= -0.5 and scaled.max() <= 0.5
    assert scaled.dtype == th.float32


def test_one_decoder_pass_gives_the_log_likelihood_and_the_logged_image_error(pixel_model):
    policy = pixel_model.policy
    data = pixel_model.replay_buffer.sample_sequences(2, 3)
    with th.no_grad():
        obs, posterior, _ = pixel_model._observe(data)
        log_likelihood, errors = policy.reconstruction_log_likelihood(posterior.feature, obs)
        prediction = policy.decode(posterior.feature.flatten(0, 1))[""]
        target = obs[""].flatten(0, 1)
        expected = th.distributions.Normal(prediction, 1.0).log_prob(target).flatten(1).sum(dim=1).view(2, -1)
    assert log_likelihood.shape == posterior.feature.shape[:-1] == expected.shape
    assert th.allclose(log_likelihood, expected, rtol=1e-5)
    assert errors[""].item() == pytest.approx(((prediction - target) ** 2).mean().item(), rel=1e-5)


def test_pixel_predict_carries_the_recurrent_state(pixel_model):
    obs = make_pixel_cartpole().reset(seed=0)[0]
    action, state = pixel_model.predict(obs, deterministic=True)
    again, _ = pixel_model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, again)
    next_action, next_state = pixel_model.predict(obs, state=state, episode_start=np.array([False]), deterministic=True)
    assert not np.allclose(next_state[0], state[0])
    reset_action, _ = pixel_model.predict(obs, state=state, episode_start=np.array([True]), deterministic=True)
    np.testing.assert_array_equal(reset_action, action)


# ----------------------------------------------------------------------------- SB3 behaviour
@pytest.mark.parametrize("action_space", ["box", "discrete"])
def test_deterministic_acting_draws_no_random_numbers(action_space, tiny_dreamer_kwargs):
    # Otherwise an evaluation would shift the training run's random stream, and curves would depend on how often
    # they are evaluated.
    env = "Pendulum-v1" if action_space == "box" else "CartPole-v1"
    model = Dreamer("MlpPolicy", env, seed=0, device="cpu", **tiny_dreamer_kwargs)  # the CPU's generator is checked
    obs = model.env.reset()
    rng = th.get_rng_state()
    action, state = model.predict(obs, deterministic=True)
    model.predict(obs, state=state, episode_start=np.zeros(1, dtype=bool), deterministic=True)
    assert th.equal(th.get_rng_state(), rng)
    feature = th.randn(5, model.policy.rssm.feature_dim)
    assert th.equal(model.policy.actor.mode(feature), model.policy.actor(feature).mode)
    model.predict(obs, deterministic=False)
    assert not th.equal(th.get_rng_state(), rng)


def test_save_load_gives_the_same_deterministic_actions(tmp_path, tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(150)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    expected, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "dreamer")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = Dreamer.load(tmp_path / "dreamer", env=gym.make("Pendulum-v1"))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.size() == 150
    loaded.learn(50, reset_num_timesteps=False)
    assert loaded.num_timesteps == 200 and loaded._n_updates > model._n_updates


def test_runs_in_an_sb3_pipeline(tmp_path, tiny_dreamer_kwargs):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = Dreamer("MlpPolicy", env, seed=0, tensorboard_log=str(tmp_path / "tb"), **tiny_dreamer_kwargs)
    callback = EvalCallback(make_vec_env("Pendulum-v1", n_envs=1, seed=1), eval_freq=100, n_eval_episodes=1)
    model.learn(400, callback=callback, progress_bar=True)
    assert model.num_timesteps == 400 and model._acting_state[0].shape == (2, 16)
    assert list((tmp_path / "tb").glob("Dreamer_1/events.out.tfevents.*"))
    mean, _ = evaluate_policy(model, gym.make("Pendulum-v1"), n_eval_episodes=1)
    assert np.isfinite(mean)


def test_continuation_head_for_tasks_with_terminations(tiny_dreamer_kwargs):
    tiny_dreamer_kwargs["policy_kwargs"]["use_continuation"] = True
    model = Dreamer("MlpPolicy", "CartPole-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(200)
    data = model.replay_buffer.sample_sequences(4, 7)
    stats, _ = model._update_world_model(data)
    assert "world_model/continuation_loss" in stats and stats["world_model/continuation_loss"] > 0


def test_latent_is_reset_per_env_at_episode_starts(tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), seed=0, **tiny_dreamer_kwargs)
    obs = np.random.default_rng(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    _, state = model.predict(obs, deterministic=True)
    _, state = model.predict(obs * 0.5, state=state, episode_start=np.array([False, False]), deterministic=True)
    fresh_action, fresh_state = model.predict(obs, deterministic=True)
    carried_action, carried_state = model.predict(obs, state=state, episode_start=np.array([False, False]), deterministic=True)
    mixed_action, mixed_state = model.predict(obs, state=state, episode_start=np.array([True, False]), deterministic=True)
    # Env 0 starts a new episode: its latent is the fresh one; env 1 keeps its history.
    np.testing.assert_allclose(mixed_state[0][0], fresh_state[0][0], atol=1e-6)
    np.testing.assert_allclose(mixed_state[0][1], carried_state[0][1], atol=1e-6)
    np.testing.assert_allclose(mixed_action[0], fresh_action[0], atol=1e-6)
    np.testing.assert_allclose(mixed_action[1], carried_action[1], atol=1e-6)
    assert not np.allclose(fresh_state[0][1], carried_state[0][1])


def test_pixel_cpu_preset_builds_and_updates():
    from conftest import ToyEnv

    from sb3_worldmodels.presets import DREAMER_PIXELS_CPU

    env = ToyEnv(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Box(-1, 1, (1,), np.float32))
    model = Dreamer("CnnPolicy", env, seed=0, **{**DREAMER_PIXELS_CPU, "learning_starts": 40, "buffer_size": 200})
    assert model.policy.rssm.deter_dim == 100 and model.train_freq.frequency == 100
    model.learn(40)
    stats, _ = model._update_world_model(model.replay_buffer.sample_sequences(2, 5))
    assert np.isfinite(stats["world_model/loss"].item())


_SAMPLE_EFFICIENT_CHANGES = {
    "learning_starts": 500,
    "train_freq": 25,
    "gradient_steps": 10,
    "batch_length": 16,
    "imagination_starts": 64,
    "free_nats": 0.0,
    "actor_entropy_scale": 0.3,
}


@pytest.mark.parametrize(
    "name, changes",
    [
        ("DREAMER_PENDULUM_SAMPLE_EFFICIENT", _SAMPLE_EFFICIENT_CHANGES),
        ("DREAMER_PENDULUM_FAST", {**_SAMPLE_EFFICIENT_CHANGES, "train_freq": 50}),
    ],
)
def test_pendulum_presets_differ_from_the_cpu_preset_only_where_documented(name, changes, tiny_dreamer_kwargs):
    from sb3_worldmodels import presets

    preset = getattr(presets, name)
    assert {k: v for k, v in preset.items() if presets.DREAMER_PENDULUM_CPU.get(k) != v} == changes
    # The schedule they set is the one SB3's loop runs (tiny networks and batches, the preset's schedule keys).
    small = {k: v for k, v in tiny_dreamer_kwargs.items() if k not in ("train_freq", "gradient_steps")}
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **{**preset, **small})
    model.learn(200)
    assert model._n_updates == (200 - 100) // preset["train_freq"] * preset["gradient_steps"]


@pytest.mark.parametrize("n_envs", [1, 2])
def test_the_paper_schedule_counts_env_frames(n_envs):
    # 5000 prefill frames and one training call every 1000 frames: at action repeat 2, 2500 agent steps of prefill and a
    # call every 500 agent steps, every 250 steps of a vec env of 2.
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_worldmodels.common.wrappers import ActionRepeat

    env = make_vec_env("Pendulum-v1", n_envs=n_envs, wrapper_class=ActionRepeat, wrapper_kwargs=dict(repeat=2))
    model = Dreamer("MlpPolicy", env, buffer_size=1000, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    assert model.learning_starts == 2500 and model.train_freq.frequency == 500 // n_envs and model.gradient_steps == 100
    plain = Dreamer("MlpPolicy", "Pendulum-v1", buffer_size=1000, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    assert plain.learning_starts == 5000 and plain.train_freq.frequency == 1000
    explicit = Dreamer("MlpPolicy", env, learning_starts=7, train_freq=3, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    assert explicit.learning_starts == 7 and explicit.train_freq.frequency == 3  # SB3 semantics when given


def test_the_paper_schedule_follows_the_number_of_envs_a_model_is_loaded_with(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_worldmodels.common.wrappers import ActionRepeat

    def env(n_envs):
        return make_vec_env("Pendulum-v1", n_envs=n_envs, wrapper_class=ActionRepeat, wrapper_kwargs=dict(repeat=2))

    model = Dreamer("MlpPolicy", env(1), buffer_size=1000, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    model.save(tmp_path / "one_env")
    loaded = Dreamer.load(tmp_path / "one_env", env=env(2))
    assert loaded.train_freq.frequency == 250 and loaded.gradient_steps == 100  # still every 1000 env frames
    given = Dreamer("MlpPolicy", env(1), train_freq=30, buffer_size=1000, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    given.save(tmp_path / "given")
    assert Dreamer.load(tmp_path / "given", env=env(2)).train_freq.frequency == 30  # SB3's schedule, as given
    assert Dreamer.load(tmp_path / "one_env", env=env(2), train_freq=7).train_freq.frequency == 7  # given to load()
    # The action repeat is that of the env given to load(): every 1000 frames of 1-frame steps, 500 vec env steps.
    plain = make_vec_env("Pendulum-v1", n_envs=2)
    assert Dreamer.load(tmp_path / "one_env", env=plain).train_freq.frequency == 500


def test_the_registered_pixel_ids_get_the_paper_schedule_in_frames():
    model = Dreamer("CnnPolicy", "sb3_worldmodels/dmc-cartpole-swingup-pixels-v0", buffer_size=100,
                    policy_kwargs=TINY_DREAMER["policy_kwargs"])  # fmt: skip
    assert model.learning_starts == 2500 and model.train_freq.frequency == 500


def test_initialisation_is_keras_as_in_the_official_code():
    model = Dreamer("MlpPolicy", "Pendulum-v1", buffer_size=100, policy_kwargs=TINY_DREAMER["policy_kwargs"])
    policy = model.policy
    for layer in policy.modules():
        if isinstance(layer, (th.nn.Linear, th.nn.Conv2d, th.nn.ConvTranspose2d)):
            fan_in, fan_out = th.nn.init._calculate_fan_in_and_fan_out(layer.weight)
            assert layer.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5  # glorot uniform
            assert layer.bias is None or th.all(layer.bias == 0)
    gru = policy.rssm.gru
    recurrent = gru.weight_hh  # (3 * units, units), orthogonal columns
    assert th.allclose(recurrent.t() @ recurrent, th.eye(recurrent.shape[1]), atol=1e-5)
    assert th.all(gru.bias_ih == 0) and th.all(gru.bias_hh == 0)
    assert {o.defaults["eps"] for o in (policy.world_model_optimizer, policy.actor_optimizer, policy.value_optimizer)} == {
        1e-7
    }


def test_imagination_sees_the_world_model_before_its_step(tiny_dreamer_kwargs):
    # The official code computes the three losses from the same parameters, then applies the three steps.
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(tiny_dreamer_kwargs["learning_starts"] + 5)
    gru = model.policy.rssm.gru
    seen = []
    imagine = model.imagine

    def recording(start):
        seen.append(gru.weight_hh.detach().clone())
        return imagine(start)

    model.imagine = recording
    before = gru.weight_hh.detach().clone()
    model.train(1, batch_size=4)
    assert th.equal(seen[0], before) and not th.equal(gru.weight_hh, before)


def test_the_first_observation_of_a_sequence_is_observed_after_its_stored_previous_action(tiny_dreamer_kwargs):
    # As the official code: the RSSM's first step of a sampled sequence takes the action that led to o_0 (zero at an
    # episode start), not a zero action.
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(tiny_dreamer_kwargs["learning_starts"] + 5)
    data = model.replay_buffer.sample_sequences(32, 4)
    inputs = model._previous_actions(data)
    assert inputs.shape == (32, 5, 1)
    assert th.equal(inputs[:, 1:], data.actions)
    starts = data.episode_starts.bool()
    assert (~starts).any() and th.equal(inputs[~starts, 0], data.previous_actions[~starts])
    assert th.all(inputs[starts, 0] == 0)
