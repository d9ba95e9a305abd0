"""RL Zoo integration, driven through the real command line in subprocesses on tiny budgets."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rl_zoo3")

TINY_DCMPC_ARGS = [
    "--hyperparams",
    "learning_starts:100",
    "pretrain_gradient_steps:5",
    "batch_size:16",
    "num_samples:32",
    "num_elites:4",
    "num_policy_trajs:4",
    "mppi_iterations:1",
    "policy_kwargs:dict(latent_dim=8,net_arch=[32,32],encoder_net_arch=[32])",
]
TINY_DREAMER_ARGS = [
    "--hyperparams",
    "learning_starts:100",
    "train_freq:50",
    "gradient_steps:1",
    "batch_size:4",
    "batch_length:8",
    "imagination_horizon:3",
    "policy_kwargs:dict(stoch_dim=4,deter_dim=16,hidden_dim=16,mlp_net_arch=[16],embed_dim=16,"
    "reward_net_arch=[16],value_net_arch=[16],actor_net_arch=[16])",
]


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_train_then_enjoy_then_load_dcmpc(tmp_path):
    train = "--algo dcmpc --env Pendulum-v1 -n 200 -f logs --seed 3 --num-threads 1 --eval-freq 150 --eval-episodes 1"
    run(sys.executable, "-m", "sb3_worldmodels.train", *train.split(), *TINY_DCMPC_ARGS, cwd=tmp_path)
    folder = tmp_path / "logs" / "dcmpc" / "Pendulum-v1_1"
    assert (folder / "Pendulum-v1.zip").is_file() and (folder / "Pendulum-v1" / "config.yml").is_file()
    config = (folder / "Pendulum-v1" / "config.yml").read_text()
    assert "num_samples" in config and "exploration_noise_episodes" in config  # the shipped dcmpc.yml was used

    enjoy = "--algo dcmpc --env Pendulum-v1 -f logs -n 210 --no-render --deterministic --num-threads 1"
    result = run(sys.executable, "-m", "sb3_worldmodels.enjoy", *enjoy.split(), cwd=tmp_path)
    assert "Episode Reward" in result.stdout

    from sb3_worldmodels import DCMPC

    model = DCMPC.load(folder / "Pendulum-v1.zip")
    action, _ = model.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (1,) and model.num_timesteps == 200


def test_console_script_trains_dreamer(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "sb3-worldmodels")
    train = "--algo dreamer --env Pendulum-v1 -n 150 -f logs --num-threads 1 --eval-freq -1"
    run(script, "train", *train.split(), *TINY_DREAMER_ARGS, cwd=tmp_path)
    assert (tmp_path / "logs" / "dreamer" / "Pendulum-v1_1" / "Pendulum-v1.zip").is_file()


def test_dreamer_v3_trains_and_optimizes_from_the_zoo(tmp_path):
    tiny = [
        "--hyperparams", "learning_starts:100", "train_freq:50", "gradient_steps:1", "batch_size:4", "batch_length:8",
        "imagination_horizon:3", "policy_kwargs:dict(size='XS',deter=16,units=16,layers=1,stoch=4,classes=4)",
    ]  # fmt: skip
    train = "--algo dreamer_v3 --env Pendulum-v1 -n 150 -f logs --num-threads 1 --eval-freq -1"
    run(sys.executable, "-m", "sb3_worldmodels.train", *train.split(), *tiny, cwd=tmp_path)
    assert (tmp_path / "logs" / "dreamer_v3" / "Pendulum-v1_1" / "Pendulum-v1.zip").is_file()
    from sb3_worldmodels.zoo import _convert_dreamer_v3

    assert _convert_dreamer_v3({"size": "M", "replay_ratio_pow": 6}) == {"policy_kwargs": {"size": "M"}, "replay_ratio": 64}


def test_dreamer_trains_on_a_registered_pixel_env_from_the_zoo(tmp_path):
    env_id = "sb3_worldmodels/dmc-cartpole-swingup-pixels-v0"
    train = f"--algo dreamer --env {env_id} -n 40 -f logs --num-threads 1 --eval-freq -1"
    tiny = [
        *TINY_DREAMER_ARGS[:-1],
        TINY_DREAMER_ARGS[-1].replace(")", ",cnn_depth=4)"),
        "learning_starts:30",
        "train_freq:10",
    ]
    run(sys.executable, "-m", "sb3_worldmodels.train", *train.split(), *tiny, cwd=tmp_path)
    folder = tmp_path / "logs" / "dreamer" / "sb3_worldmodels-dmc-cartpole-swingup-pixels-v0_1"
    config = (folder / "sb3_worldmodels-dmc-cartpole-swingup-pixels-v0" / "config.yml").read_text()
    assert "CnnPolicy" in config and "cnn_depth: 4" in config  # the shipped entry, with the tiny overrides

    from sb3_worldmodels import Dreamer

    model = Dreamer.load(folder / "sb3_worldmodels-dmc-cartpole-swingup-pixels-v0.zip")
    assert model.observation_space.dtype == np.uint8 and sorted(model.observation_space.shape) == [3, 64, 64]
    assert model.num_timesteps == 40 and model._n_updates > 0


def test_record_video_of_a_shipped_agent(tmp_path):
    from pathlib import Path

    agents = Path(__file__).resolve().parents[2] / "rl-trained-agents"
    video = f"--algo dcmpc --env dm_control/cartpole-swingup-v0 -f {agents} -n 20 -o {tmp_path} --deterministic"
    run(sys.executable, "-m", "sb3_worldmodels.record_video", *video.split(), cwd=tmp_path)
    videos = list(tmp_path.rglob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


def test_optimize_with_two_workers_sharing_one_journal_study(tmp_path):
    import optuna

    options = (
        "--algo dcmpc --env Pendulum-v1 -n 150 -f logs --num-threads 1 --optimize --n-trials 1 --n-jobs 1 --sampler random "
        "--pruner none --n-evaluations 1 --eval-episodes 1 --study-name shared"
    )
    storage = ["--storage", str(tmp_path / "study.log")]
    command = [sys.executable, "-m", "sb3_worldmodels.train", *options.split(), *storage, *TINY_DCMPC_ARGS]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    workers.append(
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    )
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, output[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2  # one per worker, in one study
    assert {"learning_rate", "n_steps", "batch_size_pow"} <= trials[0].params.keys()


def test_optimize_dreamer_with_two_trials(tmp_path):
    options = (
        "--algo dreamer --env Pendulum-v1 -n 200 -f logs --num-threads 1 --optimize --n-trials 2 --n-jobs 1 --sampler random "
        "--pruner none --n-evaluations 1 --eval-episodes 1 --study-name dreamer --seed 0"
    )
    run(sys.executable, "-m", "sb3_worldmodels.train", *options.split(), *TINY_DREAMER_ARGS, cwd=tmp_path)
    report = next((tmp_path / "logs" / "dreamer").glob("report_Pendulum-v1_2-trials-*.csv"))
    rows = list(csv.DictReader(report.open()))
    assert len(rows) == 2 and all(row["state"] == "COMPLETE" for row in rows)
    assert {"params_free_nats", "params_actor_learning_rate"} <= rows[0].keys()  # Dreamer's own sampler was used


def test_register_is_idempotent_and_defaults_to_the_shipped_config():
    from rl_zoo3.utils import ALGOS

    from sb3_worldmodels import DCMPC, Dreamer
    from sb3_worldmodels.zoo import HYPERPARAMS_DIR, register, with_default_config

    register()
    register()
    assert ALGOS["dcmpc"] is DCMPC and ALGOS["dreamer"] is Dreamer and ALGOS["sac"].__name__ == "SAC"
    argv = with_default_config(["--algo", "dcmpc", "--env", "Pendulum-v1"])
    assert argv[-2:] == ["--conf-file", str(HYPERPARAMS_DIR / "dcmpc.yml")]
    assert with_default_config(["--algo", "dcmpc", "-conf", "mine.yml"]) == ["--algo", "dcmpc", "-conf", "mine.yml"]
    assert with_default_config(["--algo", "sac"]) == ["--algo", "sac"]


@pytest.mark.parametrize(
    "algo, env_id, preset",
    [
        ("dcmpc", "Pendulum-v1", "DCMPC_PENDULUM_CPU"),
        ("dreamer", "Pendulum-v1", "DREAMER_PENDULUM_FAST"),
        ("dreamer", "sb3_worldmodels/dmc-cartpole-swingup-pixels-v0", "DREAMER_PIXELS_CPU"),
    ],
)
def test_shipped_zoo_entries_are_the_documented_presets(algo, env_id, preset):
    import yaml

    from sb3_worldmodels import presets
    from sb3_worldmodels.zoo import HYPERPARAMS_DIR

    entry = yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text())[env_id]
    entry = {k: v for k, v in entry.items() if k not in ("n_timesteps", "policy")}
    entry["policy_kwargs"] = eval(entry["policy_kwargs"], {"dict": dict})  # the Zoo evaluates it the same way
    assert entry == getattr(presets, preset)


def test_every_dreamer_v3_cpu_entry_is_the_cpu_preset():
    import yaml

    from sb3_worldmodels.presets import DREAMER_V3_CPU
    from sb3_worldmodels.zoo import HYPERPARAMS_DIR

    entries = yaml.safe_load((HYPERPARAMS_DIR / "dreamer_v3_cpu.yml").read_text())
    assert {"Pendulum-v1", "CartPole-v1"} <= set(entries)
    for env_id, entry in entries.items():
        entry = {k: v for k, v in entry.items() if k not in ("n_timesteps", "policy")}
        entry["policy_kwargs"] = eval(entry["policy_kwargs"], {"dict": dict})
        assert entry == DREAMER_V3_CPU, env_id  # one set of hyperparameters for every task


@pytest.mark.parametrize("algo", ["dcmpc", "dreamer", "dreamer_v3"])
def test_every_shipped_zoo_entry_names_only_constructor_arguments(algo):
    # A misspelt key would only fail when the Zoo builds the model for that env (the GPU entries are never run here).
    import inspect

    import yaml

    from sb3_worldmodels.zoo import ALGORITHMS, HYPERPARAMS_DIR

    zoo_keys = {"n_timesteps", "n_envs", "normalize", "env_wrapper", "vec_env_wrapper", "frame_stack", "callback"}
    accepted = set(inspect.signature(ALGORITHMS[algo]).parameters) | zoo_keys
    for env_id, entry in yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text()).items():
        assert set(entry) <= accepted, (env_id, set(entry) - accepted)
