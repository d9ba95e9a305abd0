"""The procedure of ``tests/learning/test_learning.py::test_dreamer_learns_pendulum`` on other seeds, to show what its fixed
seed stands for: train ``DREAMER_PENDULUM_SAMPLE_EFFICIENT`` for STEPS env steps with THREADS threads, evaluate 10
deterministic episodes from ``reset(seed=123)``.

    python benchmarks/adhoc/dreamer_pendulum_test_seeds.py STEPS THREADS SEED [SEED ...]

BENCHMARKS.md, "Ideas tried and rejected".
"""

import sys
import time

import gymnasium as gym
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import Dreamer
from sb3_worldmodels.presets import DREAMER_PENDULUM_SAMPLE_EFFICIENT

steps, threads = int(sys.argv[1]), int(sys.argv[2])
th.set_num_threads(threads)
for seed in map(int, sys.argv[3:]):
    t0 = time.time()
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=seed, **DREAMER_PENDULUM_SAMPLE_EFFICIENT)
    model.learn(steps)
    train_s = time.time() - t0
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=123)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"seed {seed}: {mean:.0f} +/- {std:.0f} after {steps} env steps ({train_s:.0f} s training)", flush=True)
