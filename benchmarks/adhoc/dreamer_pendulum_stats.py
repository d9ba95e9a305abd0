"""Dreamer on Pendulum-v1 trained in chunks of 250 env steps; after each, an evaluation (5 deterministic episodes,
and with SAMPLED=1 5 with sampled actions) and the means of training statistics over the chunk (value,
imagined return, actor entropy, losses, KL).

    python benchmarks/adhoc/dreamer_pendulum_stats.py SEED STEPS THREADS [JSON overrides of DREAMER_PENDULUM_CPU]

BENCHMARKS.md, "Ideas tried and rejected".
"""

import json
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import Dreamer
from sb3_worldmodels.presets import DREAMER_PENDULUM_CPU

# SAMPLED=1 adds 5 episodes with sampled actions to each evaluation (they draw random numbers, so the run differs).
SAMPLED = os.environ.get("SAMPLED") == "1"
seed, steps, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
override = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
th.set_num_threads(threads)
kw = {**DREAMER_PENDULUM_CPU, **override}
if "policy_kwargs" in override:
    kw["policy_kwargs"] = {**DREAMER_PENDULUM_CPU["policy_kwargs"], **override["policy_kwargs"]}
model = Dreamer("MlpPolicy", "Pendulum-v1", seed=seed, **kw)
captured = []
orig = model._record_means


def rec(stats):
    captured.append({k: th.stack(v).float().mean().item() for k, v in stats.items()})
    orig(stats)


model._record_means = rec
env = gym.make("Pendulum-v1")
env.reset(seed=1000 + seed)
keys = [
    "train/value_mean",
    "train/imagined_return",
    "train/actor_entropy",
    "world_model/reward_loss",
    "world_model/reconstruction_loss",
    "train/actor_grad_norm",
    "world_model/kl",
]
t0 = time.time()
done = 0
while done < steps:
    model.learn(250, reset_num_timesteps=False)
    done += 250
    mean, _ = evaluate_policy(model, env, n_eval_episodes=5, deterministic=True)
    sampled = evaluate_policy(model, env, n_eval_episodes=5, deterministic=False)[0] if SAMPLED else float("nan")
    agg = {k: np.mean([c[k] for c in captured if k in c]) if captured else float("nan") for k in keys}
    captured.clear()
    print(
        f"{done:5d} eval {mean:7.0f} sampled {sampled:7.0f} | "
        + " ".join(f"{k.split('/')[1][:10]} {v:8.2f}" for k, v in agg.items())
        + f" | {time.time() - t0:.0f}s",
        flush=True,
    )
