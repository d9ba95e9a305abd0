"""The DeepMind Control Suite as the DC-MPC paper runs it: registered ids, the shipped Zoo entries, the benchmark."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import shimmy
import torch as th
import yaml

from sb3_worldmodels import DCMPC
from sb3_worldmodels.dcmpc.planner import MPPIPlanner
from sb3_worldmodels.envs import DMC_TASKS, state_id
from sb3_worldmodels.presets import DCMPC_DMC_CPU
from sb3_worldmodels.zoo import HYPERPARAMS_DIR

gym.register_envs(shimmy)

#: The official DC-MPC code's per-task settings (its cfgs/env/*.yaml): n-step, latent slots, exploration decay episodes.
OFFICIAL = {
    "acrobot-swingup": (3, 512, 150),
    "cartpole-balance": (1, 512, 50),
    "cartpole-balance-sparse": (1, 512, 50),
    "cartpole-swingup": (1, 512, 50),
    "cartpole-swingup-sparse": (3, 512, 250),
    "cheetah-run": (1, 512, 150),
    "cup-catch": (1, 512, 50),
    "dog-run": (3, 1024, 500),
    "dog-stand": (3, 1024, 500),
    "dog-trot": (3, 1024, 500),
    "dog-walk": (3, 1024, 500),
    "finger-spin": (1, 512, 50),
    "finger-turn-easy": (2, 512, 150),
    "finger-turn-hard": (2, 512, 150),
    "fish-swim": (3, 512, 150),
    "hopper-hop": (1, 512, 150),
    "hopper-stand": (1, 512, 50),
    "humanoid-run": (1, 1024, 500),
    "humanoid-stand": (1, 1024, 500),
    "humanoid-walk": (1, 1024, 500),
    "pendulum-swingup": (1, 512, 50),
    "quadruped-run": (1, 512, 150),
    "quadruped-walk": (1, 512, 150),
    "reacher-easy": (3, 512, 150),
    "reacher-hard": (3, 512, 150),
    "walker-run": (1, 512, 150),
    "walker-stand": (1, 512, 50),
    "walker-walk": (1, 512, 50),
}
_ZOO_ONLY = {"n_timesteps", "policy"}


def test_every_official_dmc_task_that_dm_control_ships_has_an_id():
    assert set(DMC_TASKS) == set(OFFICIAL)
    for task, shimmy_id in DMC_TASKS.items():
        assert state_id(task) in gym.envs.registry
        assert shimmy_id in gym.envs.registry


def test_state_id_repeats_each_action_twice_sums_the_rewards_and_keeps_the_official_layout():
    env = gym.make("sb3_worldmodels/dmc-walker-walk-v0")
    raw = gym.make("dm_control/walker-walk-v0")
    obs, _ = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)

    def official_vector(observation: dict) -> np.ndarray:
        # The official code concatenates the observations in sorted key order, as float32.
        return np.concatenate([np.asarray(observation[k], np.float32).reshape(-1) for k in sorted(observation)])

    assert list(obs) == ["height", "orientations", "velocity"]
    assert all(v.dtype == np.float32 and v.ndim == 1 for v in obs.values())
    np.testing.assert_array_equal(np.concatenate(list(obs.values())), official_vector(raw_obs))
    rng = np.random.default_rng(0)
    steps = 0
    while True:
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        raw_reward = 0.0
        for _ in range(2):
            raw_obs, r, raw_terminated, raw_truncated, _ = raw.step(action)
            raw_reward += r
        steps += 1
        assert reward == pytest.approx(raw_reward, abs=1e-12)
        np.testing.assert_array_equal(np.concatenate(list(obs.values())), official_vector(raw_obs))
        if terminated or truncated:
            break
    assert steps == 500 and truncated and not terminated
    assert raw_truncated and not raw_terminated


def _entries(file: str) -> dict[str, dict]:
    entries = yaml.safe_load((HYPERPARAMS_DIR / file).read_text())
    return {key: value for key, value in entries.items() if key.startswith("sb3_worldmodels/dmc-")}


def _build(entry: dict, env_id: str, **override) -> DCMPC:
    kwargs = {k: v for k, v in entry.items() if k not in _ZOO_ONLY}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # the Zoo's convention for this key
    return DCMPC(entry["policy"], env_id, **{**kwargs, **override})


@pytest.mark.parametrize("file", ["dcmpc.yml", "dcmpc_dmc_cpu.yml"])
def test_every_dmc_entry_builds_a_model_with_the_official_task_settings(file):
    entries = _entries(file)
    assert set(entries) == {state_id(task) for task in OFFICIAL}
    cpu = file != "dcmpc.yml"
    for task, (n_steps, latent_dim, decay) in OFFICIAL.items():
        entry = entries[state_id(task)]
        assert entry["n_timesteps"] == (25_000 if cpu else 500_000)  # 50k / 1M env frames at action repeat 2
        # A small buffer: the test checks the settings, not the memory.
        model = _build(entry, state_id(task), buffer_size=1000)
        assert model.n_steps == n_steps, task
        assert model.exploration_noise_episodes == decay, task
        assert model.gamma == 0.99 and model.horizon == 5 and model.learning_starts == 5000
        assert model.learning_rate == 1e-4 and model.actor_learning_rate == model.critic_learning_rate == 3e-4
        assert model.policy.planner.plan_horizon == 3 and model.policy.fsq_levels == [5, 3]
        if cpu:
            assert model.policy.latent_dim == DCMPC_DMC_CPU["policy_kwargs"]["latent_dim"]
            for key in ("batch_size", "num_samples", "num_elites", "num_policy_trajs", "mppi_iterations"):
                assert getattr(model, key) == DCMPC_DMC_CPU[key], (task, key)
        else:
            assert model.policy.latent_dim == latent_dim, task
            assert model.batch_size == 512 and model.num_samples == 512 and model.mppi_iterations == 6
        model.env.close()


def _load_benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dmc.py"
    if str(path.parent) not in sys.path:  # as when run as a script: it imports its sibling pendulum_learning.py
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("dmc_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dmc_benchmark_runs_resumes_and_plots(tmp_path):
    dmc = _load_benchmark()
    tiny = dict(
        learning_starts=200, pretrain_gradient_steps=5, batch_size=16, num_samples=16, num_elites=4, num_policy_trajs=2,
        mppi_iterations=1, policy_kwargs=dict(latent_dim=4, net_arch=[16], encoder_net_arch=[16]), plan_discount=0.9,
    )  # fmt: skip
    args = dict(
        algo="dcmpc", task="cartpole-swingup", seed=0, config_name="cpu", variant="ours", override=tiny,
        eval_every=400, eval_episodes=2, out=tmp_path / "out", state=tmp_path / "state",
    )  # fmt: skip
    curve = dmc.run(frames=800, **args)
    assert curve["frames"] == [400, 800] and curve["action_repeat"] == 2
    # Started again with a larger budget, the run continues from its checkpoint (model and replay buffer).
    curve = dmc.run(frames=1200, **args)
    assert curve["frames"] == [400, 800, 1200]
    assert all(0 <= r <= 1000 for r in curve["returns"])
    saved = json.loads((tmp_path / "out" / "dcmpc-cpu-ours" / "cartpole-swingup" / "seed0.json").read_text())
    assert saved["frames"] == [400, 800, 1200] and saved["variant"] == "ours"
    # Each evaluation point keeps the newest logged statistics, to diagnose a curve.
    assert len(saved["diagnostics"]) == 3 and "world_model/consistency_loss" in saved["diagnostics"][-1]
    model = DCMPC.load(tmp_path / "state" / "dcmpc-cpu-ours" / "cartpole-swingup" / "seed0" / "model.zip")
    assert model.num_timesteps == 600 and model.plan_discount == 0.9
    dmc.plot(tmp_path / "out")
    assert (tmp_path / "out" / "cartpole-swingup.png").stat().st_size > 0
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert rows[0] == "label,task,seed,frame,return,wall_s" and len(rows) == 4


def test_dmc_benchmark_reads_each_algorithms_cpu_file():
    from sb3_worldmodels.presets import DREAMER_PIXELS_CPU, DREAMER_V3_CPU

    dmc = _load_benchmark()
    # DreamerV3 has one CPU entry for every task; V1 and DC-MPC have DMC files of their own.
    assert dmc.config("dreamer_v3", "cartpole-swingup", "cpu") == DREAMER_V3_CPU
    assert dmc.config("dreamer", "cartpole-swingup", "cpu") == DREAMER_PIXELS_CPU
    assert dmc.config("dcmpc", "walker-walk", "cpu")["batch_size"] == DCMPC_DMC_CPU["batch_size"]


# ------------------------------------------------------------------ the official code's choices, as options
def test_one_step_target_without_discount_as_the_official_code():
    from sb3_worldmodels.common.returns import n_step_targets

    rewards, terminations, bootstrap = th.tensor([[1.0], [1.0]]), th.tensor([[0.0], [1.0]]), th.tensor([10.0, 10.0])
    # r + 1.0 * Q' (the official n-step helper at n = 1), and no bootstrap after a termination.
    assert n_step_targets(rewards, terminations, bootstrap, 0.99, bootstrap_discount=1.0).tolist() == [11.0, 1.0]


@pytest.mark.parametrize("flag, n_steps, expected", [(True, 1, 1.0), (True, 3, None), (False, 1, None)])
def test_undiscounted_one_step_target_reaches_the_critic_target(monkeypatch, tiny_dcmpc_kwargs, flag, n_steps, expected):
    import sb3_worldmodels.dcmpc.dcmpc as dcmpc_module

    seen = []
    original = dcmpc_module.n_step_targets

    def spy(*args, **kwargs):
        seen.append(args[4])
        return original(*args, **kwargs)

    monkeypatch.setattr(dcmpc_module, "n_step_targets", spy)
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, undiscounted_one_step_target=flag, n_steps=n_steps, **tiny_dcmpc_kwargs)
    model.learn(60)
    assert seen and set(seen) == {expected}


class _Recorder:
    """A point-mass latent model that records the prior's actions and the terminal action noise the planner passes."""

    def __init__(self):
        self.prior_actions, self.terminal_noise = [], []

    def imagine_step(self, latent, action):
        return latent + action, -(latent**2).sum(-1)

    def policy_prior(self, latent):
        return th.zeros_like(latent)

    def terminal_value(self, latent, generator, action_noise=None):
        self.terminal_noise.append(action_noise)
        return th.zeros(latent.shape[0])


def _plan(shared: bool, terminal: bool, noise_std: float = 0.5) -> _Recorder:
    planner = MPPIPlanner(
        action_dim=2, plan_horizon=2, mppi_iterations=2, num_samples=16, num_elites=4, num_policy_trajs=4,
        shared_prior_noise=shared, terminal_action_noise=terminal,
    )  # fmt: skip
    model = _Recorder()
    original = model.imagine_step

    def imagine_step(latent, action):
        if latent.shape[0] == 3 * 4:  # the policy's sequences: 3 states x 4 sequences
            model.prior_actions.append(action.view(3, 4, 2))
        return original(latent, action)

    model.imagine_step = imagine_step
    th.manual_seed(0)
    start = th.zeros(3, 2)
    planner.plan(model, start, planner.warm_start(None, None, 3, start.device), policy_noise_std=noise_std)
    return model


def test_shared_prior_noise_makes_the_policy_sequences_of_a_state_copies():
    shared = _plan(shared=True, terminal=False).prior_actions[0]
    assert th.equal(shared, shared[:, :1].expand_as(shared))  # one draw per state and step
    assert not th.equal(shared[0], shared[1])  # states draw their own
    own = _plan(shared=False, terminal=False).prior_actions[0]
    assert not th.equal(own[:, 0], own[:, 1])


def test_terminal_action_noise_is_one_draw_per_state_and_only_when_asked():
    assert all(noise is None for noise in _plan(shared=False, terminal=False).terminal_noise)
    assert all(noise is None for noise in _plan(shared=False, terminal=True, noise_std=0.0).terminal_noise)
    noise = _plan(shared=False, terminal=True).terminal_noise[0].view(3, 16, 2)
    assert th.equal(noise, noise[:, :1].expand_as(noise)) and noise.abs().sum() > 0


def test_reward_bounds_map_the_reward_head_into_the_range(tiny_dcmpc_kwargs):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, reward_bounds=(0.0, 2.0), **tiny_dcmpc_kwargs)
    policy = model.policy
    th.nn.init.constant_(policy.reward[-1].bias, 30.0)  # a raw output far above the range
    codes, action = th.zeros(4, policy.code_dim), th.zeros(4, 1)
    assert th.allclose(policy.predict_reward(codes, action), th.full((4,), 2.0))
    th.nn.init.zeros_(policy.reward[-1].weight)
    th.nn.init.constant_(policy.reward[-1].bias, 0.5)
    assert th.allclose(policy.predict_reward(codes, action), th.full((4,), 1.0 + np.tanh(0.5)))  # 0 + 2 (tanh + 1) / 2
    with pytest.raises(ValueError, match="reward_bounds"):
        DCMPC("MlpPolicy", "Pendulum-v1", reward_bounds=(1.0, 1.0), **tiny_dcmpc_kwargs)


def test_official_options_are_saved_and_restored(tmp_path, tiny_dcmpc_kwargs):
    options = dict(
        plan_discount=0.9, undiscounted_one_step_target=True, reward_bounds=(0.0, 2.0), shared_prior_noise=True,
        terminal_action_noise=True,
    )  # fmt: skip
    DCMPC("MlpPolicy", "Pendulum-v1", **options, **tiny_dcmpc_kwargs).save(tmp_path / "model")
    model = DCMPC.load(tmp_path / "model")
    assert model.undiscounted_one_step_target and model.policy.reward_bounds == (0.0, 2.0)
    planner = model.policy.planner
    assert planner.plan_discount == 0.9 and planner.shared_prior_noise and planner.terminal_action_noise


def test_dmc_benchmark_serves_dreamer_from_pixels_with_the_published_points():
    from sb3_worldmodels.presets import DREAMER_PIXELS_CPU

    dmc = _load_benchmark()
    for task in ("cartpole-swingup", "walker-walk", "reacher-easy", "finger-spin"):
        assert dmc.config("dreamer", task, "cpu") == DREAMER_PIXELS_CPU
        assert dmc.ALGOS["dreamer"][2].format(task=task) in gym.envs.registry
    assert dmc.published_points()[("dreamer", "walker-walk")] == [(100_000, 277.0, 12.0)]
    assert dmc.published_points()[("dreamer", "cartpole-swingup")] == [(100_000, 326.0, 27.0)]
