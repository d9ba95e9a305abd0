"""DreamerV3 with one set of hyperparameters (:data:`~sb3_worldmodels.presets.DREAMER_V3_CPU`) on two kinds of task:
Pendulum-v1 (continuous actions, 200-step episodes) and CartPole-v1 (discrete actions, episodes that end early).

Usage::

    python benchmarks/dreamer_v3_learning.py --env Pendulum-v1 --seeds 0 1 2 3 4 --steps 10000 --eval-freq 1000
    python benchmarks/dreamer_v3_learning.py --env CartPole-v1 --seeds 0 1 2 3 4 --steps 20000 --eval-freq 2000
    python benchmarks/dreamer_v3_learning.py --plot benchmarks/results/dreamer_v3   # tables and one PNG per env

Every ``--eval-freq`` env steps the deterministic policy (the latent's and the actor's modes) is evaluated on
``--eval-episodes`` fresh episodes, then the sampling one (as the official code evaluates; ``sampled_returns``); the
targets are -200 on Pendulum-v1 and 475 on CartPole-v1 (its "solved" return).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from pendulum_learning import EvalCurve

from sb3_worldmodels import DreamerV3
from sb3_worldmodels.presets import DREAMER_V3_CPU

THRESHOLDS = {"Pendulum-v1": -200.0, "CartPole-v1": 475.0}
#: Logged statistics kept with each evaluation (their newest values), to diagnose a curve.
DIAGNOSTICS = (
    "train/actor_entropy", "train/return_scale", "train/value_mean", "train/imagined_return", "train/critic_loss",
    "world_model/continuation_loss", "world_model/reward_loss", "world_model/dynamics_loss",
)  # fmt: skip


class SavedEvalCurve(EvalCurve):
    """:class:`EvalCurve` that rewrites the result file after every evaluation, so that a stopped run keeps its curve."""

    def __init__(self, eval_env: gym.Env, eval_freq: int, n_episodes: int, path: Path, header: dict):
        super().__init__(eval_env, eval_freq, n_episodes, stochastic=True)
        self.path, self.header = path, header

    def result(self) -> dict:
        return {
            **self.header, "steps": self.steps, "returns": self.returns, "sampled_returns": self.stochastic_returns,
            "diagnostics": self.diagnostics, "wall_s": time.time() - self.start,
        }  # fmt: skip

    def _on_step(self) -> bool:
        n = len(self.steps)
        super()._on_step()
        if len(self.steps) > n:
            self.path.write_text(json.dumps(self.result()))
        return True


def run(args: argparse.Namespace, seed: int, path: Path) -> dict:
    """Train and evaluate ``args.env`` with :data:`DREAMER_V3_CPU` (and ``args.override``) for ``args.steps`` env steps."""
    eval_env = gym.make(args.env)
    eval_env.reset(seed=10_000 + seed)
    model = DreamerV3("MlpPolicy", args.env, seed=seed, verbose=args.verbose, **{**DREAMER_V3_CPU, **args.override})
    header = dict(algo="dreamer_v3", env=args.env, seed=seed, override=args.override, label=args.label, commit=git_commit())
    callback = SavedEvalCurve(eval_env, args.eval_freq, args.eval_episodes, path, header)
    callback.watch(model, args.verbose, DIAGNOSTICS)
    model.learn(args.steps, callback=callback, log_interval=4)
    return callback.result()


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def first_crossing(steps: list[int], returns: list[float], threshold: float) -> int | None:
    return next((step for step, value in zip(steps, returns, strict=False) if value >= threshold), None)


def plot(folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    for env_id in sorted({r["env"] for r in runs}):
        group = [r for r in runs if r["env"] == env_id]
        # Runs may stop at different budgets: the mean at a step is over the seeds that reached it.
        steps = np.array(sorted({s for r in group for s in r["steps"]}))
        at = [dict(zip(r["steps"], r["returns"], strict=True)) for r in group]
        mean = np.array([np.mean([a[s] for a in at if s in a]) for s in steps])
        count = [sum(s in a for a in at) for s in steps]
        threshold = THRESHOLDS.get(env_id)
        print(f"\n{env_id}: {len(group)} seeds, deterministic evaluation")
        print("| env steps | " + " | ".join(f"seed {r['seed']}" for r in group) + " | mean (seeds) |")
        print("| --- " * (len(group) + 2) + "|")
        for s, m, n in zip(steps, mean, count, strict=True):
            cells = " | ".join(f"{a[s]:.0f}" if s in a else "" for a in at)
            print(f"| {s} | {cells} | {m:.0f} ({n}) |")
        if threshold is not None:
            crossings = [first_crossing(r["steps"], r["returns"], threshold) for r in group]
            print(f"first step at >= {threshold}: {crossings}; wall-clock s: {[round(r['wall_s']) for r in group]}")
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in group:
            ax.plot(r["steps"], r["returns"], color="tab:green", alpha=0.35, linewidth=1)
        ax.plot(steps, mean, color="tab:green", linewidth=2, label=f"DreamerV3, CPU size (mean of {len(group)} seeds)")
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("env steps")
        ax.set_ylabel("mean evaluation return")
        ax.set_title(env_id)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"{env_id.split('-')[0].lower()}.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--eval-freq", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--override", type=json.loads, default={}, help="JSON dict of constructor arguments to change")
    parser.add_argument("--label", default="cpu", help="name of the run group in the file names")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dreamer_v3"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    if args.plot is not None:
        plot(args.plot)
        return
    th.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        path = args.out / f"{args.env.split('-')[0].lower()}_{args.label}_seed{seed}.json"
        result = run(args, seed, path)
        path.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
