"""Learning curves on Pendulum-v1: DC-MPC and Dreamer (CPU presets) against SB3's SAC, same seeds and eval protocol.

Usage::

    python benchmarks/pendulum_learning.py --algo dcmpc --seeds 0 1 2 --steps 10000 --out benchmarks/results
    python benchmarks/pendulum_learning.py --algo sac --seeds 0 1 2 --steps 20000 --out benchmarks/results
    python benchmarks/pendulum_learning.py --plot benchmarks/results   # table + PNG

Every ``--eval-freq`` env steps the deterministic policy is evaluated on ``--eval-episodes`` fresh episodes; the newest
logged training statistics (:data:`DIAGNOSTICS`) and the share of saturated training actions are kept with each
evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import HumanOutputFormat, KVWriter, Logger

from sb3_worldmodels import DCMPC, Dreamer
from sb3_worldmodels.common.wrappers import ActionRepeat
from sb3_worldmodels.presets import DCMPC_PENDULUM_CPU, DREAMER_PENDULUM_CPU

THRESHOLD = -200.0
# Pendulum-v1's reward lies in [-MAX_COST, 0] (theta^2 + 0.1 thetadot^2 + 0.001 u^2 at their bounds).
MAX_COST = np.pi**2 + 0.1 * 8.0**2 + 0.001 * 2.0**2


#: Logged training statistics kept with each evaluation (their newest values), to diagnose a curve.
DIAGNOSTICS = (
    "train/value_mean", "train/imagined_return", "train/actor_entropy", "train/actor_grad_norm", "world_model/kl",
    "world_model/reward_loss", "world_model/reconstruction_loss", "train/critic_loss", "train/q_mean",
)  # fmt: skip
#: A training action (in [-1, 1]) counts as saturated beyond this magnitude.
SATURATION = 0.95


class NewestValues(KVWriter):
    """Keeps the newest value of every logged key."""

    def __init__(self):
        self.values: dict[str, float] = {}

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        self.values.update({k: v for k, v in key_values.items() if isinstance(v, (int, float))})


class EvalCurve(BaseCallback):
    def __init__(self, eval_env: gym.Env, eval_freq: int, n_episodes: int, stochastic: bool = False):
        super().__init__()
        self.eval_env, self.eval_freq, self.n_episodes = eval_env, eval_freq, n_episodes
        self.stochastic = stochastic
        self.steps: list[int] = []
        self.returns: list[float] = []
        self.stochastic_returns: list[float] = []
        self.diagnostics: list[dict[str, float]] = []
        self.newest: NewestValues | None = None
        self.keys: tuple[str, ...] = DIAGNOSTICS
        self._saturated, self._actions = 0, 0
        self.start = time.time()

    def watch(self, model, verbose: int = 0, keys: tuple[str, ...] = DIAGNOSTICS) -> None:
        """Route ``model``'s logger through :class:`NewestValues`, so that every evaluation keeps ``keys``."""
        self.newest, self.keys = NewestValues(), keys
        model.set_logger(Logger(None, [self.newest, *([HumanOutputFormat(sys.stdout)] if verbose else [])]))

    def _on_step(self) -> bool:
        actions = self.locals.get("buffer_actions")  # scaled to [-1, 1] by SB3's off-policy loop
        if actions is not None and isinstance(self.model.action_space, gym.spaces.Box):
            self._saturated += int((np.abs(actions) > SATURATION).sum())
            self._actions += int(np.size(actions))
        if self.num_timesteps % self.eval_freq == 0:
            mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True)
            self.steps.append(self.num_timesteps)
            self.returns.append(float(mean))
            line = f"{self.num_timesteps:>7d} steps  eval {mean:8.1f}"
            if self.stochastic:  # the policy's sampled actions, as in training but without exploration noise
                sampled, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=False)
                self.stochastic_returns.append(float(sampled))
                line += f"  sampled {sampled:8.1f}"
            if self.newest is not None:
                self.model.logger.dump(self.num_timesteps)  # what was recorded since the last dump
                diagnostics = {k: round(float(self.newest.values[k]), 4) for k in self.keys if k in self.newest.values}
                if self._actions:
                    diagnostics["rollout/saturated_actions"] = round(self._saturated / self._actions, 4)
                self._saturated, self._actions = 0, 0
                self.diagnostics.append(diagnostics)
                line += "  " + " ".join(f"{k.split('/')[1]}={v:.3g}" for k, v in diagnostics.items())
            print(f"{line}  ({time.time() - self.start:.0f} s)", flush=True)
        return True


def run(
    algo: str,
    seed: int,
    steps: int,
    eval_freq: int,
    eval_episodes: int,
    override: dict,
    verbose: int = 0,
    repeat: int = 1,
    unit_reward: bool = False,
    stochastic_eval: bool = False,
    norm_reward: bool = False,
    reward_scale: float = 1.0,
) -> dict:
    # With action repeat, `steps` and `eval_freq` count agent steps; the results record env steps (x repeat).
    env = gym.make("Pendulum-v1")
    if unit_reward:
        # Training reward mapped affinely onto [0, 1] per env step, the scale of DMC rewards the papers tuned for.
        # Episodes have a fixed length (no terminations), so the optimal policy is unchanged; evaluation uses the raw reward.
        env = gym.wrappers.TransformReward(env, lambda r: (r + MAX_COST) / MAX_COST)
    if reward_scale != 1.0:  # training reward times a constant (the optimal policy is unchanged); evaluation stays raw
        env = gym.wrappers.TransformReward(env, lambda r: reward_scale * r)
    env = ActionRepeat(env, repeat)
    if norm_reward:
        # SB3's reward scaling (by the running std of the discounted return); the evaluation env keeps raw rewards.
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        env = VecNormalize(DummyVecEnv([lambda env=env: env]), norm_obs=False, norm_reward=True, gamma=0.99)
    eval_env = ActionRepeat(gym.make("Pendulum-v1"), repeat)
    eval_env.reset(seed=10_000 + seed)
    if algo == "dcmpc":
        model = DCMPC("MlpPolicy", env, seed=seed, verbose=verbose, **{**DCMPC_PENDULUM_CPU, **override})
    elif algo == "dreamer":
        model = Dreamer("MlpPolicy", env, seed=seed, verbose=verbose, **{**DREAMER_PENDULUM_CPU, **override})
    else:  # SB3's SAC with the RL Zoo's tuned Pendulum-v1 hyperparameters (learning_rate 1e-3, the rest SB3 defaults)
        model = SAC("MlpPolicy", env, seed=seed, verbose=verbose, **{"learning_rate": 1e-3, **override})
    callback = EvalCurve(eval_env, eval_freq, eval_episodes, stochastic_eval)
    callback.watch(model, verbose)
    start = time.time()
    model.learn(steps, callback=callback, log_interval=2)
    return dict(
        algo=algo,
        seed=seed,
        override=override,
        action_repeat=repeat,
        unit_reward=unit_reward,
        norm_reward=norm_reward,
        reward_scale=reward_scale,
        steps=[step * repeat for step in callback.steps],
        returns=callback.returns,
        stochastic_returns=callback.stochastic_returns,
        diagnostics=callback.diagnostics,
        wall_s=time.time() - start,
    )


def first_crossing(steps: list[int], returns: list[float]) -> int | None:
    for step, value in zip(steps, returns, strict=False):
        if value >= THRESHOLD:
            return step
    return None


def plot(folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    runs = [r for r in runs if r.get("env", "Pendulum-v1") == "Pendulum-v1"]  # other benchmarks share the folder
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"dcmpc": "tab:blue", "dreamer": "tab:green", "sac": "tab:orange"}
    labels = sorted({r.get("label", r["algo"]) for r in runs}, key=lambda name: (name not in colors, name))
    others = iter(["tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"])
    for label in labels:
        color = colors.get(label) or next(others)
        group = [r for r in runs if r.get("label", r["algo"]) == label]
        n = min(len(r["steps"]) for r in group)
        steps = np.array(group[0]["steps"][:n])
        returns = np.array([r["returns"][:n] for r in group])
        ax.plot(steps, returns.mean(0), color=color, label=f"{label.upper()} ({len(group)} seeds)")
        ax.fill_between(steps, returns.min(0), returns.max(0), color=color, alpha=0.2)
        print(f"\n{label}: mean eval return (min..max over seeds)")
        for s, row in zip(steps, returns.T, strict=False):
            print(f"| {s} | {row.mean():.0f} | {row.min():.0f} .. {row.max():.0f} |")
        crossings = [first_crossing(r["steps"], r["returns"]) for r in group]
        print(f"first step at >= {THRESHOLD}: {crossings}; wall-clock s: {[round(r['wall_s']) for r in group]}")
    ax.axhline(THRESHOLD, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean evaluation return")
    ax.set_title("Pendulum-v1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "pendulum_learning.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dcmpc", "dreamer", "sac"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--eval-freq", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--override", type=json.loads, default={}, help="JSON dict of constructor arguments to change")
    parser.add_argument("--label", default=None, help="name of the run group in the files and the plot (default: the algo)")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--action-repeat", type=int, default=1, help="steps and eval-freq then count agent steps")
    parser.add_argument("--unit-reward", action="store_true", help="train on the reward mapped onto [0, 1]")
    parser.add_argument("--norm-reward", action="store_true", help="train through VecNormalize(norm_reward=True)")
    parser.add_argument("--reward-scale", type=float, default=1.0, help="train on the reward times this constant")
    parser.add_argument("--stochastic-eval", action="store_true", help="also evaluate with sampled actions")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    if args.plot is not None:
        plot(args.plot)
        return
    th.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        result = run(
            args.algo,
            seed,
            args.steps,
            args.eval_freq,
            args.eval_episodes,
            args.override,
            args.verbose,
            args.action_repeat,
            args.unit_reward,
            args.stochastic_eval,
            args.norm_reward,
            args.reward_scale,
        )
        result["label"] = args.label or args.algo
        (args.out / f"{result['label']}_seed{seed}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
