"""How far Dreamer's imagination is from the real env under its own actor: train DREAMER_PENDULUM_SAMPLE_EFFICIENT for
STEPS env steps, run the actor (sampled actions, no exploration noise) for 10 real episodes, and from every 5th
posterior state on the way compare the imagined 15-step reward sum (the reward model along the actor's imagined
rollout) with the real reward sum of the next 15 steps.

    python benchmarks/adhoc/dreamer_imagination_gap.py SEED STEPS THREADS

BENCHMARKS.md, "Ideas tried and rejected".
"""

import sys

import gymnasium as gym
import numpy as np
import torch as th

from sb3_worldmodels import Dreamer
from sb3_worldmodels.dreamer.rssm import RSSMState
from sb3_worldmodels.presets import DREAMER_PENDULUM_SAMPLE_EFFICIENT

seed, steps, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
th.set_num_threads(threads)
model = Dreamer("MlpPolicy", "Pendulum-v1", seed=seed, **DREAMER_PENDULUM_SAMPLE_EFFICIENT)
model.learn(steps)
policy, horizon = model.policy, model.imagination_horizon
env = gym.make("Pendulum-v1")
obs, _ = env.reset(seed=1000 + seed)
imagined, real, angle = [], [], []
for _ in range(10):
    state, start, rewards, starts = None, True, [], []
    for t in range(200):
        obs_tensor = th.as_tensor(obs[None], dtype=th.float32)
        action, state = policy.step(obs_tensor, state, np.array([start]), deterministic=False)
        start = False
        if t % 5 == 0 and t + horizon <= 200:
            deter, stoch = (th.as_tensor(x) for x in state[:2])
            starts.append((t, RSSMState(stoch, th.ones_like(stoch), stoch, deter), float(np.arctan2(obs[1], obs[0]))))
        obs, reward, _, _, _ = env.step(policy.unscale_action(action.numpy())[0])
        rewards.append(reward)
    obs, _ = env.reset()
    with th.no_grad():
        for t, s, theta in starts:
            features, _ = model.imagine(s)
            imagined.append(float(policy.reward(features).sum()))
            real.append(float(np.sum(rewards[t : t + horizon])))
            angle.append(abs(theta))
imagined, real, angle = np.array(imagined), np.array(real), np.array(angle)
print(f"seed {seed}, {steps} env steps: {len(real)} start states")
for name, mask in (("all", angle >= 0), ("|angle| < 0.5", angle < 0.5), ("|angle| >= 0.5", angle >= 0.5)):
    if mask.any():
        print(
            f"  {name:15s} n={mask.sum():4d} imagined {imagined[mask].mean():8.1f} real {real[mask].mean():8.1f} "
            f"gap {np.mean(imagined[mask] - real[mask]):7.1f} (|gap| {np.mean(np.abs(imagined[mask] - real[mask])):6.1f})"
        )
