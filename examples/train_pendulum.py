"""Train DC-MPC on Pendulum-v1 with the CPU preset, evaluate it and save it.

    python examples/train_pendulum.py [--steps N] [--seed S] [--output PATH]

About 6 minutes on a 2-core CPU (see BENCHMARKS.md); Pendulum-v1 counts as solved at a mean return of about -200.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_worldmodels import DCMPC
from sb3_worldmodels.presets import DCMPC_PENDULUM_CPU, DCMPC_PENDULUM_CPU_STEPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=DCMPC_PENDULUM_CPU_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="dcmpc_pendulum")
    args = parser.parse_args()
    th.set_num_threads(2)

    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=args.seed, verbose=1, **DCMPC_PENDULUM_CPU)
    start = time.time()
    model.learn(total_timesteps=args.steps, log_interval=5, progress_bar=True)
    print(f"Trained for {args.steps} env steps in {time.time() - start:.0f} s")
    model.save(args.output)

    eval_env = Monitor(gym.make("Pendulum-v1"))
    eval_env.reset(seed=args.seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"Evaluation over 10 episodes: mean return {mean:.1f} +/- {std:.1f} (random policy: about -1200)")
    print(f"Model saved to {args.output}.zip")


if __name__ == "__main__":
    main()
