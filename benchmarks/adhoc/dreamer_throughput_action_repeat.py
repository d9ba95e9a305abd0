"""Env steps per second of a Dreamer Pendulum configuration with action repeat.

    python benchmarks/adhoc/dreamer_throughput_action_repeat.py JSON_OVERRIDES REPEAT

"Per-call times at the paper's sizes" in BENCHMARKS.md.
"""

import json
import sys
import time

import gymnasium as gym
import torch as th

from sb3_worldmodels import Dreamer
from sb3_worldmodels.common.wrappers import ActionRepeat
from sb3_worldmodels.presets import DREAMER_PENDULUM_CPU

th.set_num_threads(2)
o = json.loads(sys.argv[1])
ar = int(sys.argv[2])
env = ActionRepeat(gym.make("Pendulum-v1"), ar) if ar > 1 else gym.make("Pendulum-v1")
m = Dreamer("MlpPolicy", env, seed=0, **{**DREAMER_PENDULUM_CPU, **o})
m.learn(o["learning_starts"] + 200)
t = time.perf_counter()
n = 1000
m.learn(n, reset_num_timesteps=False)
s = time.perf_counter() - t
print(f"{n} agent steps ({n * ar} env steps) in {s:.1f} s -> {n * ar / s:.1f} env steps/s", flush=True)
