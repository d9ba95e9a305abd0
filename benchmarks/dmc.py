"""Learning curves on the DeepMind Control Suite, beside the published ones, counted in env frames.

Train::

    MUJOCO_GL=egl python benchmarks/dmc.py --algo dcmpc --config cpu --tasks walker-walk cartpole-swingup \\
        --seeds 0 1 2 --frames 50000

Table and plots (one PNG per task: our seeds, their mean, the published mean and min-max band)::

    python benchmarks/dmc.py --plot benchmarks/results/dmc

Runs go one after the other in this process (task by task, seed by seed). Every ``--eval-every`` env frames
(5,000) the deterministic policy is evaluated on ``--eval-episodes`` (10) episodes, one on each of as many separate envs
stepped together (one batched planning call per step), and the run
is checkpointed: model and replay buffer under ``--state`` (outside the repository by default; large), the curve as
JSON under ``--out`` (small, committed). Started again with the same arguments, or a larger ``--frames``, a run
continues from its last checkpoint (the partial episode in progress is dropped and the envs are reset); a finished
run is skipped. A curve whose checkpoint is gone starts over.

Hyperparameters come from the shipped RL Zoo files: ``--config paper`` is the task's entry in
``sb3_worldmodels/hyperparams/<algo>.yml`` (the paper's sizes), ``--config cpu`` its entry in
``<algo>_dmc_cpu.yml`` (the 2-core CPU configuration; ``dreamer_v3_cpu.yml`` for DreamerV3). ``--variant`` applies a
named set of constructor arguments on top (``VARIANTS``, e.g. the official DC-MPC code's choices) and ``--override``
a JSON dict.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch as th  # noqa: E402
import yaml  # noqa: E402
from pendulum_learning import NewestValues  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.logger import CSVOutputFormat, Logger  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from sb3_worldmodels import DCMPC, Dreamer, DreamerV3  # noqa: E402
from sb3_worldmodels.zoo import HYPERPARAMS_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parent
#: Published curves: CSV with columns algo,task,frame,seed,return (env frames, action repeat 2); DC-MPC's from the
#: official repository's result files (5 seeds, each value the mean of 10 evaluation episodes).
PUBLISHED = ROOT / "published" / "dmc_curves.csv"
#: Published points reported as mean and std only: CSV with columns algo,task,frame,mean,std,source (Dreamer at 100k
#: env frames, from the CURL paper's DMControl100k table).
PUBLISHED_POINTS = ROOT / "published" / "dmc_points.csv"

#: algo -> (class, policy, env id of a task name)
ALGOS: dict[str, tuple[type, str, str]] = {
    "dcmpc": (DCMPC, "MultiInputPolicy", "sb3_worldmodels/dmc-{task}-v0"),
    "dreamer": (Dreamer, "CnnPolicy", "sb3_worldmodels/dmc-{task}-pixels-v0"),
    "dreamer_v3": (DreamerV3, "CnnPolicy", "sb3_worldmodels/dmc-{task}-pixels-v0"),
}

#: Named sets of constructor arguments applied on top of the config (``--variant``).
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "dcmpc": {
        "ours": {},
        # Every choice of the official DC-MPC code that differs from the paper's text (docs/dcmpc.md, deviations).
        "official": dict(
            plan_discount=0.9,
            undiscounted_one_step_target=True,
            reward_bounds=(0.0, 2.0),
            shared_prior_noise=True,
            terminal_action_noise=True,
            # No updates during an episode, then one per step of it (SB3's own schedule for this).
            train_freq=(1, "episode"),
            gradient_steps=-1,
        ),
        # The paper's text at twice the CPU configuration's widths: is the gap to the published curve one of size?
        "wide": dict(
            num_samples=256, num_elites=32, policy_kwargs=dict(latent_dim=64, net_arch=[256, 256], encoder_net_arch=[256])
        ),
    },
    "dreamer": {
        "ours": {},
        # The paper's update rate, 100 updates every 1000 env frames (10 every 50 agent steps at action repeat 2), twice
        # the CPU configuration's: does more world-model training end the stall its diagnosis points to?
        "paper_rate": dict(train_freq=50),
    },
    "dreamer_v3": {"ours": {}},
}

#: Logged statistics kept with each evaluation point, to diagnose a curve (the newest values SB3's logger wrote).
DIAGNOSTICS = (
    "world_model/consistency_loss", "world_model/reward_loss", "world_model/codebook_perplexity", "world_model/loss",
    "world_model/kl", "world_model/reconstruction_loss", "train/critic_loss", "train/q_mean", "train/actor_loss",
    "train/value_mean", "train/imagined_return", "train/exploration_std", "planner/elite_value", "planner/std",
    "world_model/dynamics_loss", "world_model/observation_loss", "train/actor_entropy", "train/return_scale",
)  # fmt: skip


#: Zoo keys that are not constructor arguments.
_ZOO_ONLY = {"n_timesteps", "policy", "env_wrapper", "normalize", "n_envs", "frame_stack", "callback", "vec_env_wrapper"}


def config(algo: str, task: str, name: str) -> dict[str, Any]:
    """Constructor arguments of ``task`` in the shipped Zoo file of ``name`` (``paper`` or ``cpu``)."""
    file = HYPERPARAMS_DIR / (f"{algo}.yml" if name == "paper" else f"{algo}_dmc_{name}.yml")
    if not file.exists():  # DreamerV3's CPU file serves every task: ``dreamer_v3_cpu.yml``
        file = HYPERPARAMS_DIR / f"{algo}_{name}.yml"
    entries = yaml.safe_load(file.read_text())
    env_id = ALGOS[algo][2].format(task=task)
    if env_id not in entries:
        raise SystemExit(f"{file.name} has no entry for {env_id}")
    kwargs = {key: value for key, value in entries[env_id].items() if key not in _ZOO_ONLY}
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"])  # the Zoo's own convention for this key
    return kwargs


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(
    algo: str,
    task: str,
    seed: int,
    frames: int,
    config_name: str,
    variant: str,
    override: dict[str, Any],
    eval_every: int,
    eval_episodes: int,
    out: Path,
    state: Path,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train (or continue) one run up to ``frames`` env frames; returns its curve."""
    cls, policy, env_pattern = ALGOS[algo]
    env_id = env_pattern.format(task=task)
    action_repeat = int(gym.spec(env_id).kwargs.get("action_repeat", 1))
    if eval_every % action_repeat:
        raise SystemExit(f"--eval-every ({eval_every}) must be a multiple of the action repeat ({action_repeat})")
    label = f"{algo}-{config_name}-{variant}"
    curve_path = out / label / task / f"seed{seed}.json"
    state_dir = state / label / task / f"seed{seed}"
    kwargs = {**config(algo, task, config_name), **VARIANTS[algo][variant], **override}
    env = gym.make(env_id)
    # One env per evaluation episode, stepped together: each step plans for all of them in one batched call (the
    # deterministic planner plans every state of a batch as if alone), about 3x faster than one episode after another.
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(env_id)) for _ in range(eval_episodes)])
    eval_env.seed(10_000 + 100 * seed)
    if (state_dir / "model.zip").exists() and curve_path.exists():
        model = cls.load(state_dir / "model.zip", env=env, device="cpu")
        model.load_replay_buffer(state_dir / "replay_buffer.pkl")
        curve = json.loads(curve_path.read_text())
        done = model.num_timesteps * action_repeat
        keys = [k for k in ("frames", "returns", "return_std", "wall_s", "diagnostics") if k in curve]
        kept = [f <= done for f in curve["frames"]]  # points past the checkpoint are redone
        for key in keys:
            curve[key] = [v for keep, v in zip(kept, curve[key], strict=False) if keep]
        print(f"{label} {task} seed {seed}: continuing from {done} frames", flush=True)
    else:
        env.reset(seed=seed)
        model = cls(policy, env, seed=seed, device="cpu", verbose=verbose, **kwargs)
        curve = dict(
            algo=algo, task=task, env_id=env_id, seed=seed, config=config_name, variant=variant, override=override,
            action_repeat=action_repeat, eval_episodes=eval_episodes, eval_envs=eval_episodes, kwargs=repr(kwargs),
            frames=[], returns=[], return_std=[], wall_s=[], commits=[],
        )  # fmt: skip
    curve_path.parent.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    newest = NewestValues()
    log_file = state_dir / f"progress-{model.num_timesteps}.csv"  # one file per process: a resumed run starts its own
    model.set_logger(Logger(str(state_dir), [CSVOutputFormat(str(log_file)), newest]))
    curve.setdefault("diagnostics", [])
    commit = _commit()
    if commit not in curve["commits"]:
        curve["commits"].append(commit)
    elapsed = curve["wall_s"][-1] if curve["wall_s"] else 0.0
    while model.num_timesteps * action_repeat < frames:
        start = time.time()
        chunk = eval_every // action_repeat - model.num_timesteps % (eval_every // action_repeat)
        model.learn(chunk, reset_num_timesteps=False, log_interval=2)
        model.logger.dump(model.num_timesteps)  # what was recorded since the last dump, for the diagnostics below
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        elapsed += time.time() - start
        done = model.num_timesteps * action_repeat
        for key, value in (("frames", done), ("returns", float(mean)), ("return_std", float(std)), ("wall_s", elapsed)):
            curve[key].append(value)
        curve["diagnostics"].append({k: round(newest.values[k], 4) for k in DIAGNOSTICS if k in newest.values})
        model.save_replay_buffer(state_dir / "replay_buffer.pkl")
        model.save(state_dir / "model.zip")
        _write_json(curve_path, curve)
        fps = done / elapsed if elapsed else float("nan")
        print(f"{label} {task} seed {seed}: {done:>7d} frames  eval {mean:7.1f} +/- {std:5.1f}  ({elapsed:.0f} s, "
              f"{fps:.1f} frames/s with evaluation)", flush=True)  # fmt: skip
    return curve


def published() -> dict[tuple[str, str], dict[int, np.ndarray]]:
    """(algo, task) -> frame -> returns of the published seeds."""
    curves: dict[tuple[str, str], dict[int, list[float]]] = {}
    if PUBLISHED.exists():
        with PUBLISHED.open() as file:
            for row in csv.DictReader(file):
                curves.setdefault((row["algo"], row["task"]), {}).setdefault(int(row["frame"]), []).append(
                    float(row["return"])
                )
    return {key: {f: np.array(v) for f, v in sorted(c.items())} for key, c in curves.items()}


def published_points() -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """(algo, task) -> [(frame, mean, std)] of results published as mean and std only."""
    points: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    if PUBLISHED_POINTS.exists():
        with PUBLISHED_POINTS.open() as file:
            for row in csv.DictReader(file):
                points.setdefault((row["algo"], row["task"]), []).append(
                    (int(row["frame"]), float(row["mean"]), float(row["std"]))
                )
    return points


def _band(values: np.ndarray) -> str:
    return f"{values.mean():.0f} [{values.min():.0f}-{values.max():.0f}]"


def _at(frames: list[int], values: list[float], frame: int) -> float | None:
    return next((v for f, v in zip(frames, values, strict=True) if f == frame), None)


def plot(folder: Path, checkpoints: tuple[int, ...] = (25_000, 50_000, 100_000)) -> None:
    """One PNG per task and label group, ``summary.csv`` with every point, and a Markdown table on stdout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*/seed*.json"))]
    reference, points = published(), published_points()
    with (folder / "summary.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["label", "task", "seed", "frame", "return", "wall_s"])
        for r in runs:
            label = f"{r['algo']}-{r['config']}-{r['variant']}"
            for f, v, w in zip(r["frames"], r["returns"], r["wall_s"], strict=True):
                writer.writerow([label, r["task"], r["seed"], f, round(v, 2), round(w, 1)])
    header = "| task | run | seeds | " + " | ".join(f"{c // 1000}k" for c in checkpoints) + " | frames/s |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for task in sorted({r["task"] for r in runs}):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        task_runs = [r for r in runs if r["task"] == task]
        algos = sorted({r["algo"] for r in task_runs})
        for algo in algos:
            ref = reference.get((algo, task))
            if ref:
                frames = [f for f in ref if f <= max(max(r["frames"], default=0) for r in task_runs)]
                values = [ref[f] for f in frames]
                ax.plot(frames, [v.mean() for v in values], color="black", label=f"{algo} published (mean, min-max)")
                ax.fill_between(frames, [v.min() for v in values], [v.max() for v in values], color="gray", alpha=0.25)
                cells = [_band(ref[c]) if c in ref else "" for c in checkpoints]
                print(f"| {task} | {algo} published | {len(values[0]) if values else 0} | " + " | ".join(cells) + " | |")
            for frame, mean, std in points.get((algo, task), []):
                ax.errorbar(
                    [frame], [mean], yerr=[std], fmt="o", color="black", capsize=4, label=f"{algo} published (mean, std)"
                )
                cells = [f"{mean:.0f} +/- {std:.0f}" if c == frame else "" for c in checkpoints]
                print(f"| {task} | {algo} published (mean +/- std) | | " + " | ".join(cells) + " | |")
        labels = sorted({(r["algo"], r["config"], r["variant"]) for r in task_runs})
        for color, key in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], labels, strict=False):
            group = [r for r in task_runs if (r["algo"], r["config"], r["variant"]) == key]
            n = min(len(r["frames"]) for r in group)
            if n == 0:
                continue
            frames = np.array(group[0]["frames"][:n])
            returns = np.array([r["returns"][:n] for r in group])
            for r in group:
                ax.plot(r["frames"], r["returns"], color=color, alpha=0.35, linewidth=0.8)
            ax.plot(frames, returns.mean(0), color=color, linewidth=2, label=f"{'-'.join(key)} ({len(group)} seeds)")
            cells = []
            for c in checkpoints:
                values = [v for v in (_at(r["frames"], r["returns"], c) for r in group) if v is not None]
                cells.append(
                    f"{np.mean(values):.0f} [{min(values):.0f}-{max(values):.0f}] (n={len(values)})" if values else ""
                )
            rate = np.mean([r["frames"][-1] / r["wall_s"][-1] for r in group if r["frames"]])
            print(f"| {task} | {'-'.join(key)} | {len(group)} | " + " | ".join(cells) + f" | {rate:.1f} |")
        ax.set_xlabel("env frames (action repeat 2)")
        ax.set_ylabel(f"evaluation return ({task_runs[0]['eval_episodes']} episodes)")
        ax.set_title(task)
        ax.set_ylim(0, 1000)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / f"{task}.png", dpi=100)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(ALGOS), default="dcmpc")
    parser.add_argument("--tasks", nargs="+", default=["walker-walk"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frames", type=int, default=50_000, help="budget in env frames (agent steps x action repeat)")
    parser.add_argument("--config", default="cpu", help="paper (the shipped yml) or cpu (<algo>_dmc_cpu.yml)")
    parser.add_argument("--variant", default="ours", help="a named set of constructor arguments (VARIANTS)")
    parser.add_argument("--override", type=json.loads, default={}, help="JSON dict of constructor arguments to change")
    parser.add_argument("--eval-every", type=int, default=5_000, help="env frames between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "dmc", help="curves (JSON)")
    parser.add_argument("--state", type=Path, default=Path.home() / ".cache" / "sb3_worldmodels" / "dmc", help="checkpoints")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None, help="write the table and plots of a results folder, then exit")
    args = parser.parse_args()
    if args.plot is not None:
        plot(args.plot)
        return
    if args.variant not in VARIANTS[args.algo]:
        raise SystemExit(f"--variant must be one of {sorted(VARIANTS[args.algo])}")
    th.set_num_threads(args.threads)
    for task in args.tasks:
        for seed in args.seeds:
            run(
                args.algo, task, seed, args.frames, args.config, args.variant, args.override,
                args.eval_every, args.eval_episodes, args.out, args.state, args.verbose,
            )  # fmt: skip


if __name__ == "__main__":
    main()
