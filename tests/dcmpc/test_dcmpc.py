"""DC-MPC as an SB3 algorithm: construction, acting, updates, logging, save/load and SB3 pipelines."""

from __future__ import annotations

import csv
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from conftest import ToyEnv
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize

from sb3_worldmodels import DCMPC
from sb3_worldmodels.accel.cuda_graph import PlanGraph

VECTOR = spaces.Box(-1, 1, (3,), np.float32)
ACTION = spaces.Box(-1, 1, (1,), np.float32)


# ------------------------------------------------------------------------------ construction
@pytest.mark.parametrize(
    "observation_space, action_space, message",
    [
        (VECTOR, spaces.Discrete(3), "Box action"),
        (VECTOR, spaces.MultiDiscrete([2, 2]), "Box action"),
        (VECTOR, spaces.Box(-np.inf, np.inf, (1,)), "finite bounds"),
        (spaces.Box(0, 255, (64, 64, 3), np.uint8), ACTION, "looks like an image"),
        (spaces.Tuple([VECTOR, VECTOR]), ACTION, "Box of vector observations"),
        (spaces.Dict({"image": spaces.Box(0, 255, (3, 32, 32), np.uint8)}), ACTION, "looks like an image"),
    ],
)
def test_unsupported_spaces_fail_at_construction(observation_space, action_space, message, tiny_dcmpc_kwargs):
    policy = "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"
    with pytest.raises(ValueError, match=message):
        DCMPC(policy, ToyEnv(observation_space, action_space), **tiny_dcmpc_kwargs)


def test_paper_defaults():
    model = DCMPC("MlpPolicy", "Pendulum-v1", buffer_size=1000, device="cpu")
    policy = model.policy
    assert policy.latent_dim == 512 and policy.fsq_levels == [5, 3] and policy.quantizer.codebook_size == 15
    assert policy.dynamics[-1].out_features == 512 * 15
    assert policy.encoder[0].out_features == 256 and policy.net_arch == [512, 512]
    assert policy.critics.n == 5
    planner = policy.planner
    assert (planner.plan_horizon, planner.mppi_iterations, planner.num_samples, planner.num_elites) == (3, 6, 512, 64)
    assert (planner.num_policy_trajs, planner.mppi_temperature, planner.min_plan_std, planner.max_plan_std) == (
        24,
        0.5,
        0.05,
        2.0,
    )
    assert (model.horizon, model.rho, model.batch_size, model.gamma, model.tau, model.n_steps) == (5, 0.9, 512, 0.99, 0.005, 1)
    assert policy.world_model_optimizer.param_groups[0]["lr"] == 1e-4
    assert policy.actor_optimizer.param_groups[0]["lr"] == 3e-4 and policy.critic_optimizer.param_groups[0]["lr"] == 3e-4


def test_exploration_noise_decays_linearly_over_episodes(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", exploration_noise_episodes=10, **tiny_dcmpc_kwargs)
    values = []
    for episodes in (0, 5, 10, 20):
        model._learning_episodes = episodes
        values.append(model.exploration_std)
    assert values == pytest.approx([1.0, 0.55, 0.1, 0.1])


# ------------------------------------------------------------------------------------ acting
@pytest.fixture(scope="module")
def trained_model():
    from conftest import TINY_DCMPC

    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **TINY_DCMPC)
    model.learn(120)
    return model


def test_predict_single_and_batch(trained_model):
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    action, state = trained_model.predict(obs, deterministic=True)
    assert action.shape == (1,) and env.action_space.contains(action.astype(np.float32))
    assert state[0].shape == (1, 2, 1)
    batch = np.stack([obs, obs * 0.5, -obs])
    actions, state = trained_model.predict(batch, deterministic=True)
    assert actions.shape == (3, 1) and state[0].shape == (3, 2, 1)
    # Each row of a batch is planned as if it were alone.
    np.testing.assert_allclose(actions[0], action, atol=1e-5)


def test_deterministic_predict_is_repeatable(trained_model):
    obs = np.array([0.3, -0.9, 0.5], dtype=np.float32)
    first, _ = trained_model.predict(obs, deterministic=True)
    for _ in range(3):
        again, _ = trained_model.predict(obs, deterministic=True)
        np.testing.assert_array_equal(first, again)
    stochastic = {float(trained_model.predict(obs, deterministic=False)[0][0]) for _ in range(5)}
    assert len(stochastic) > 1


def test_warm_start_state_is_carried_and_reset_at_episode_start(trained_model):
    obs = np.array([[0.3, -0.9, 0.5]], dtype=np.float32)
    cold, state = trained_model.predict(obs, deterministic=True)
    assert np.abs(state[0]).sum() > 0
    reset, _ = trained_model.predict(obs, state=state, episode_start=np.array([True]), deterministic=True)
    np.testing.assert_array_equal(cold, reset)


def test_evaluate_policy_runs_with_warm_start(trained_model):
    mean, std = evaluate_policy(trained_model, gym.make("Pendulum-v1"), n_eval_episodes=1)
    assert np.isfinite(mean) and -2000 < mean <= 0


# ----------------------------------------------------------------------------------- updates
def test_target_indices_are_the_fsq_indices_of_the_encoder_output(tiny_dcmpc_kwargs):
    tiny_dcmpc_kwargs["policy_kwargs"]["latent_dim"] = 2
    model = DCMPC("MlpPolicy", "Pendulum-v1", device="cpu", **tiny_dcmpc_kwargs)
    policy = model.policy
    # Encoder output z = [[0, 0], [5, -5]] for every observation: codes (0, 0) and (1, -1).
    policy.encoder = th.nn.Sequential(th.nn.Linear(3, 4))
    with th.no_grad():
        policy.encoder[0].weight.zero_()
        policy.encoder[0].bias.copy_(th.tensor([0.0, 0.0, 5.0, -5.0]))
    codes = policy.encode(th.zeros(2, 3))
    assert codes[0].tolist() == [0.0, 0.0, 1.0, -1.0]
    # index = level_index_0 + 5 * level_index_1: (2 + 5 * 1) = 7 and (4 + 5 * 0) = 4
    assert policy.code_indices(codes).tolist() == [[7, 4], [7, 4]]


def _snapshot(module: th.nn.Module) -> list[th.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(module: th.nn.Module, before: list[th.Tensor]) -> bool:
    return any(not th.equal(p, q) for p, q in zip(module.parameters(), before, strict=True))


def test_each_update_changes_only_its_own_networks(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dcmpc_kwargs)
    model.learn(60)
    policy = model.policy
    data = model.replay_buffer.sample_sequences(16, model.horizon)
    parts = ["encoder", "dynamics", "reward", "critics", "actor", "critics_target", "actor_target"]
    before = {name: _snapshot(getattr(policy, name)) for name in parts}
    model._update_world_model(data)
    assert {n for n in parts if _changed(getattr(policy, n), before[n])} == {"encoder", "dynamics", "reward"}
    before = {name: _snapshot(getattr(policy, name)) for name in parts}
    _, codes = model._update_critics(data)
    assert {n for n in parts if _changed(getattr(policy, n), before[n])} == {"critics"}
    before = {name: _snapshot(getattr(policy, name)) for name in parts}
    model._update_actor(codes)
    assert {n for n in parts if _changed(getattr(policy, n), before[n])} == {"actor"}


def test_target_actor_moves_only_with_the_delayed_actor_updates(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, policy_delay=2, **tiny_dcmpc_kwargs)
    model.learn(60)
    policy = model.policy
    parts = ["actor", "actor_target", "critics_target"]
    if model._n_critic_updates % 2 == 1:  # the next update is an actor update: make one more to start without it
        model.train(1, batch_size=16)
    before = {name: _snapshot(getattr(policy, name)) for name in parts}
    model.train(1, batch_size=16)  # critics only
    assert {n for n in parts if _changed(getattr(policy, n), before[n])} == {"critics_target"}
    before = {name: _snapshot(getattr(policy, name)) for name in parts}
    model.train(1, batch_size=16)  # critics and actor
    assert {n for n in parts if _changed(getattr(policy, n), before[n])} == set(parts)


def test_world_model_loss_and_gradient_match_a_plain_reference(tiny_dcmpc_kwargs, monkeypatch):
    # The update shares one log-softmax between the cross-entropy and the Gumbel sample and draws the noise of the
    # whole rollout at once; written out (F.cross_entropy per step, Gumbel-softmax of the logits) it must agree.
    import torch.nn.functional as F

    from sb3_worldmodels.dcmpc.latent import gumbel_noise

    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, max_grad_norm=1e9, device="cpu", accel="none", **tiny_dcmpc_kwargs)
    model.learn(60)
    policy, H = model.policy, model.horizon
    data = model.replay_buffer.sample_sequences(16, model.sequence_length)
    terminations = data.terminations.clone()
    terminations[:4, 1] = 1.0  # Pendulum never terminates: mark some, so that the masking is compared too
    mask = data.mask.clone()
    mask[:4, 2:] = 0.0  # the transitions after a termination are padding
    data = data._replace(terminations=terminations, mask=mask)
    batch, slots, size = 16, policy.latent_dim, policy.quantizer.codebook_size
    gumbel = gumbel_noise((H - 1, batch, slots, size), "cpu")
    monkeypatch.setattr(policy.latent, "gumbel_noise", lambda shape, device: gumbel)
    params = [p for name in ("encoder", "dynamics", "reward") for p in getattr(policy, name).parameters()]

    codes = policy.encode(data.observations[:, 0])
    consistency = reward_error = 0.0
    for t in range(H):
        with th.no_grad():
            target = policy.code_indices(policy.encode(data.observations[:, t + 1]))
        # Slot-major logits straight from the stored output layer, (batch, slot, code).
        logits = policy.dynamics(th.cat([codes, data.actions[:, t]], dim=-1)).view(batch, slots, size)
        ce = F.cross_entropy(logits.reshape(-1, size), target.reshape(-1), reduction="none").view(batch, slots).mean(1)
        alive = th.prod(1.0 - data.terminations[:, :t], dim=1) * data.mask[:, t]
        consistency = consistency + model.rho**t * (alive * ce).mean()
        error = (policy.predict_reward(codes, data.actions[:, t]) - data.rewards[:, t]) ** 2
        reward_error = reward_error + model.rho**t * (alive * error).mean()
        soft = th.softmax(logits + gumbel[t], dim=-1) if t < H - 1 else None
        if soft is not None:
            hard = F.one_hot(soft.argmax(dim=-1), size).float()
            codes = ((hard - soft).detach() + soft) @ policy.quantizer.codebook
            codes = codes.flatten(1)
    reference = (model.consistency_coef * consistency + model.reward_coef * reward_error) / H
    reference_grads = th.autograd.grad(reference, params)

    stats = model._update_world_model(data)
    assert th.allclose(stats["world_model/loss"], reference.detach(), rtol=1e-5)
    for p, g in zip(params, reference_grads, strict=True):
        assert th.allclose(p.grad, g, rtol=1e-4, atol=1e-6)


def test_plan_graph_inputs_give_the_eager_plan(tiny_dcmpc_kwargs):
    # PlanGraph keeps its inputs in fixed memory: without a previous plan it starts from the plan of a new episode,
    # and its noise std is a tensor that always draws noise. On the CPU it runs the call eagerly on those inputs
    # (on CUDA it replays the captured call: test_cuda.py), so its plumbing is checked here against plan().
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", **tiny_dcmpc_kwargs)
    model.learn(60)
    policy = model.policy
    obs = th.randn(3, 3)
    graph = PlanGraph(policy, obs)
    assert graph.graph is None
    previous = policy.plan(obs).mean
    starts = th.tensor([False, True, False])
    for args in [(None, None, 0.3), (previous, starts, 0.3), (previous, None, 0.7), (None, None, 0.3), (None, None, 0.0)]:
        th.manual_seed(5)
        eager = policy.plan(obs, *args[:2], exploration_std=args[2])
        th.manual_seed(5)
        graphed = graph(obs, *args)
        if args[2] == 0.0:  # the graph draws the noise at std 0 too: the same plan only where nothing was drawn
            assert graphed.action.shape == eager.action.shape and th.all(graphed.action.abs() <= 1)
            continue
        for a, b in zip(graphed, eager, strict=True):
            assert th.allclose(a, b, rtol=1e-5, atol=1e-6)
    # The outputs are copies: a later call does not change them.
    first = graph(obs, None, None, 0.3)
    kept = first.action.clone()
    graph(obs + 1, None, None, 0.3)
    assert th.equal(first.action, kept)


def test_cuda_graph_planner_is_saved_and_changes_nothing_on_the_cpu(tmp_path, tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", cuda_graph_planner=True, **tiny_dcmpc_kwargs)
    model.learn(60)
    policy, obs = model.policy, th.randn(2, 3)
    assert policy.cuda_graph_planner and not policy._plan_graphs  # the CPU plans eagerly
    plans = []
    for flag in (True, False):
        policy.cuda_graph_planner = flag
        th.manual_seed(3)
        plans.append(policy.plan(obs, exploration_std=0.2))
    for a, b in zip(*plans, strict=True):
        assert th.equal(a, b)
    policy.cuda_graph_planner = True
    model.save(tmp_path / "model")
    loaded = DCMPC.load(tmp_path / "model", device="cpu")
    assert loaded.cuda_graph_planner and loaded.policy.cuda_graph_planner
    off = DCMPC.load(tmp_path / "model", device="cpu", custom_objects={"cuda_graph_planner": False})
    assert not off.policy.cuda_graph_planner


def test_bf16_planning_casts_the_head_once_and_keeps_the_expected_codes_in_float32(tiny_dcmpc_kwargs):
    # Under mixed precision the reordered head is cast to bfloat16 once per planning call (autocast would cast the
    # copy, not a parameter, again in every step), and the expectation over the codes is not rounded to bfloat16.
    th.manual_seed(2)
    model = DCMPC("MlpPolicy", "Pendulum-v1", device="cpu", mixed_precision="bf16", **tiny_dcmpc_kwargs)
    policy = model.policy
    seen = []
    step = policy.imagine_step

    def spying(latent, action):
        seen.append(tuple(t.dtype for t in policy._planning_head))
        return step(latent, action)

    policy.imagine_step = spying
    policy.plan(th.randn(2, 3))
    assert seen and set(seen) == {(th.bfloat16, th.bfloat16)}
    assert policy._planning_head is None  # not kept after the call
    slots, size = policy.latent_dim, policy.quantizer.codebook_size
    logits = th.randn(4, size, slots) * 3  # code-major: the default fast path
    expected = policy.latent.planning_expected_code(logits.clone())
    with th.autocast("cpu", dtype=th.bfloat16):
        assert th.allclose(policy.latent.planning_expected_code(logits.clone()), expected, rtol=1e-5, atol=1e-6)


def test_codebook_usage_and_perplexity_are_those_of_the_first_codes(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dcmpc_kwargs)
    model.learn(60)
    policy, size = model.policy, model.policy.quantizer.codebook_size
    data = model.replay_buffer.sample_sequences(16, model.sequence_length)
    with th.no_grad():  # the statistics use the codes of the first step, encoded before the update
        idx = policy.code_indices(policy.encode(data.observations[:, 0])).flatten()
    probs = th.nn.functional.one_hot(idx, size).float().mean(0)
    nonzero = probs[probs > 0]
    stats = model._update_world_model(data)
    assert stats["world_model/codebook_usage"].item() == pytest.approx(len(nonzero) / size)
    assert stats["world_model/codebook_perplexity"].item() == pytest.approx(th.exp(-(nonzero * nonzero.log()).sum()).item())


def test_world_model_losses_fall_on_a_fixed_batch(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, learning_rate=3e-3, **tiny_dcmpc_kwargs)
    model.learn(60)
    data = model.replay_buffer.sample_sequences(16, model.horizon)
    first = model._update_world_model(data)
    for _ in range(150):
        last = model._update_world_model(data)
    # The targets move with the encoder, so the cross-entropy falls more slowly than the reward error.
    assert last["world_model/consistency_loss"] < 0.8 * first["world_model/consistency_loss"]
    assert last["world_model/reward_loss"] < 0.5 * first["world_model/reward_loss"]


def test_logs_losses_planner_statistics_and_codebook_usage(tmp_path, tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dcmpc_kwargs)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    keys = set(rows[-1])
    expected = {
        "world_model/consistency_loss", "world_model/reward_loss", "world_model/codebook_usage",
        "world_model/codebook_perplexity", "train/critic_loss", "train/actor_loss", "train/exploration_std",
        "planner/elite_value", "planner/std", "rollout/ep_rew_mean", "time/fps",
    }  # fmt: skip
    assert expected <= keys
    usage = float(rows[-1]["world_model/codebook_usage"])
    assert 0 < usage <= 1


# --------------------------------------------------------------------------------- save/load
def test_save_load_gives_the_same_deterministic_actions(tmp_path, trained_model):
    obs = np.stack([gym.make("Pendulum-v1").observation_space.sample() for _ in range(4)])
    expected, _ = trained_model.predict(obs, deterministic=True)
    trained_model.save(tmp_path / "model")
    loaded = DCMPC.load(tmp_path / "model", device="cpu")
    actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, expected)
    assert loaded.policy.latent_dim == trained_model.policy.latent_dim
    assert loaded.num_samples == trained_model.num_samples


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
def test_save_load_on_cuda(tmp_path, trained_model):
    obs = np.zeros((2, 3), dtype=np.float32)
    trained_model.save(tmp_path / "model")
    on_cuda = DCMPC.load(tmp_path / "model", device="cuda")
    actions, _ = on_cuda.predict(obs, deterministic=True)
    on_cuda.save(tmp_path / "cuda_model")
    back, _ = DCMPC.load(tmp_path / "cuda_model", device="cpu").predict(obs, deterministic=True)
    np.testing.assert_allclose(actions, back, atol=1e-4)


def test_replay_buffer_round_trip_and_resumed_training(tmp_path, tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dcmpc_kwargs)
    model.learn(100)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    stored = model.replay_buffer.size()
    # Resume in a fresh process, as a user would after an interruption.
    script = f"""
import gymnasium as gym
import torch
from sb3_worldmodels import DCMPC
torch.set_num_threads(1)
model = DCMPC.load({str(tmp_path / "model")!r}, env=gym.make("Pendulum-v1"))
model.load_replay_buffer({str(tmp_path / "buffer")!r})
assert model.replay_buffer.size() == {stored}, model.replay_buffer.size()
assert model.num_timesteps == 100
model.learn(50, reset_num_timesteps=False)
assert model.num_timesteps == 150, model.num_timesteps
assert model.replay_buffer.size() == {stored} + 50
# The episode cut by the interruption is closed as a truncation, not joined to the new one.
assert model.replay_buffer.timeouts[99, 0] == 1 and model.replay_buffer.dones[99, 0] == 1
print("resumed", model._n_updates)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    n_updates = int(result.stdout.split()[-1])
    assert n_updates == model._n_updates + 50


# ---------------------------------------------------------------------------------- pipelines
def test_runs_in_an_sb3_pipeline(tmp_path, tiny_dcmpc_kwargs):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=1)
    model = DCMPC("MlpPolicy", env, seed=0, tensorboard_log=str(tmp_path / "tb"), **tiny_dcmpc_kwargs)
    callbacks = [
        EvalCallback(eval_env, eval_freq=100, n_eval_episodes=1, log_path=str(tmp_path / "eval")),
        CheckpointCallback(save_freq=100, save_path=str(tmp_path / "checkpoints"), save_replay_buffer=True),
    ]
    model.learn(400, callback=callbacks, progress_bar=True)
    assert model.num_timesteps == 400
    assert model.replay_buffer.size() == 200 and model.replay_buffer.n_envs == 2
    assert list((tmp_path / "tb").glob("DCMPC_1/events.out.tfevents.*"))
    assert np.load(tmp_path / "eval" / "evaluations.npz")["results"].shape[0] == 2
    checkpoints = sorted((tmp_path / "checkpoints").glob("rl_model_*_steps.zip"))
    assert len(checkpoints) == 2 and list((tmp_path / "checkpoints").glob("rl_model_replay_buffer_*_steps.pkl"))
    DCMPC.load(checkpoints[-1]).predict(np.zeros(3, dtype=np.float32))


def test_warm_start_is_kept_per_env(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=3, seed=0), seed=0, **tiny_dcmpc_kwargs)
    model.learn(180)
    assert model._acting_state[0].shape == (3, 2, 1)
    assert not np.allclose(model._acting_state[0][0], model._acting_state[0][1])


def test_vec_normalize(tiny_dcmpc_kwargs):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    model = DCMPC("MlpPolicy", env, seed=0, **tiny_dcmpc_kwargs)
    model.learn(200)
    # The buffer keeps raw observations; the sampled ones are normalised.
    raw = model.replay_buffer.observations[:50].reshape(-1, 3)
    assert np.abs(raw[:, 2]).max() > 1.5  # angular velocity in [-8, 8]
    sample = model.replay_buffer.sample_sequences(8, 2, env=env)
    assert th.isfinite(sample.observations).all()


def test_dm_control_through_shimmy(tiny_dcmpc_kwargs):
    import shimmy

    gym.register_envs(shimmy)
    env = gym.make("dm_control/cartpole-swingup-v0")
    assert isinstance(env.observation_space, spaces.Dict)
    model = DCMPC("MultiInputPolicy", env, seed=0, **tiny_dcmpc_kwargs)
    model.learn(80)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape
    assert model.replay_buffer.observations["position"].dtype == np.float32


def test_actor_only_acting_ablation(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", use_planner=False, seed=0, **tiny_dcmpc_kwargs)
    model.learn(80)
    assert model._acting_state is None


def test_seeded_runs_are_identical(tiny_dcmpc_kwargs):
    runs = []
    for _ in range(2):
        model = DCMPC("MlpPolicy", "Pendulum-v1", seed=3, **tiny_dcmpc_kwargs)
        model.learn(80)
        runs.append(model.replay_buffer.actions[:80].copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_an_interrupted_save_keeps_the_previous_files(tmp_path, trained_model, monkeypatch):
    import stable_baselines3.common.base_class as base_class
    import stable_baselines3.common.off_policy_algorithm as off_policy

    trained_model.save(tmp_path / "model")
    trained_model.save_replay_buffer(tmp_path / "buffer")
    model_bytes = (tmp_path / "model.zip").read_bytes()
    buffer_bytes = (tmp_path / "buffer.pkl").read_bytes()

    def crash(path, *args, **kwargs):
        path.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(base_class, "save_to_zip_file", crash)
    monkeypatch.setattr(off_policy, "save_to_pkl", lambda path, *args, **kwargs: crash(path))
    with pytest.raises(KeyboardInterrupt):
        trained_model.save(tmp_path / "model")
    with pytest.raises(KeyboardInterrupt):
        trained_model.save_replay_buffer(tmp_path / "buffer")
    assert (tmp_path / "model.zip").read_bytes() == model_bytes
    assert (tmp_path / "buffer.pkl").read_bytes() == buffer_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buffer.pkl", "model.zip"]
    monkeypatch.undo()
    DCMPC.load(tmp_path / "model").load_replay_buffer(tmp_path / "buffer")


@pytest.mark.parametrize("bad", ["observation", "reward"])
def test_non_finite_env_data_is_refused_with_the_env_index(bad, tiny_dcmpc_kwargs):
    from conftest import ToyEnv
    from stable_baselines3.common.vec_env import DummyVecEnv

    class Broken(ToyEnv):
        def __init__(self, broken: bool):
            super().__init__(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
            self.broken, self.t = broken, 0

        def step(self, action):
            self.t += 1
            obs, reward = self.observation_space.sample(), 0.0
            if self.broken and self.t == 7:
                if bad == "observation":
                    obs[1] = np.nan
                else:
                    reward = float("inf")
            return obs, reward, False, False, {}

    env = DummyVecEnv([lambda: Broken(False), lambda: Broken(True)])
    model = DCMPC("MlpPolicy", env, seed=0, **tiny_dcmpc_kwargs)
    with pytest.raises(ValueError, match=rf"Non-finite {bad} from env index \[1\] at step 14"):
        model.learn(40)
    assert model.replay_buffer.size() == 6  # the 6 good steps are kept, the bad one never stored


@pytest.mark.parametrize(
    "name, changes",
    [
        ("DCMPC_PENDULUM_SAMPLE_EFFICIENT", {"gradient_steps": 4, "learning_starts": 300}),
        ("DCMPC_PENDULUM_FAST", {"train_freq": 2, "batch_size": 128}),
    ],
)
def test_pendulum_presets_differ_from_the_cpu_preset_only_where_documented(name, changes, tiny_dcmpc_kwargs):
    from sb3_worldmodels import presets

    preset = getattr(presets, name)
    assert {k: v for k, v in preset.items() if presets.DCMPC_PENDULUM_CPU.get(k) != v} == changes
    # The schedule they set is the one SB3's loop runs: updates per env step after the random phase.
    # Tiny networks and planner; the schedule keys (train_freq, gradient_steps) stay the preset's.
    small = {**tiny_dcmpc_kwargs, "learning_starts": 40, "pretrain_gradient_steps": 3}
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **{**preset, **small})
    model.learn(60)
    train_freq, per_call = model.train_freq.frequency, model.gradient_steps
    assert model._n_updates == 3 + (60 - 40) // train_freq * per_call
