"""Probes of a Dreamer Pendulum-v1 run every 500 env steps (X1 settings of BENCHMARKS.md, "Ideas tried and rejected").

    python benchmarks/adhoc/dreamer_pendulum_probe.py SEED STEPS models   # predicted reward and value over 13 angles
    python benchmarks/adhoc/dreamer_pendulum_probe.py SEED STEPS balance  # 100-step return from rest at the top

"What the stuck phase looks like" in BENCHMARKS.md.
"""

import sys

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import Dreamer
from sb3_worldmodels.presets import DREAMER_PENDULUM_CPU

th.set_num_threads(2)
seed, steps, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
X1 = dict(batch_size=16, batch_length=16, train_freq=10, gradient_steps=10, learning_starts=500, imagination_starts=64)
model = Dreamer("MlpPolicy", "Pendulum-v1", seed=seed, **{**DREAMER_PENDULUM_CPU, **X1})
env = gym.make("Pendulum-v1").unwrapped
env.reset(seed=0)


def models_over_angles() -> None:
    """Mean true and predicted reward and value over 6 steps from rest at 13 angles (zero torque)."""
    print(" theta  true_r  pred_r  value")
    for angle in np.linspace(-np.pi, np.pi, 13):
        env.state = np.array([angle, 0.0])
        observations, rewards = [env._get_obs()], []
        for _ in range(6):
            obs, reward, *_ = env.step(np.array([0.0]))
            observations.append(obs)
            rewards.append(reward)
        obs_t = th.as_tensor(np.array(observations), dtype=th.float32)[None]
        actions = th.zeros(1, 7, 1)
        with th.no_grad():
            posterior, _ = model.policy.rssm.observe(model.policy.embed(model.policy.preprocess(obs_t)), actions)
            feature = posterior.feature[:, 1:]
            predicted = model.policy.reward(feature).mean().item()
            value = model.policy.value(feature).mean().item()
        print(f"{angle:6.2f} {np.mean(rewards):7.2f} {predicted:7.2f} {value:7.1f}", flush=True)


def return_from(angle: float, n: int = 100) -> float:
    env.state = np.array([angle, 0.0])
    obs, state, start, total = env._get_obs(), None, np.array([True]), 0.0
    for _ in range(n):
        action, state = model.predict(obs[None], state=state, episode_start=start, deterministic=True)
        start = np.array([False])
        obs, reward, *_ = env.step(action[0])
        total += reward
    return total


for _ in range(steps // 500):
    model.learn(500, reset_num_timesteps=False)
    if mode == "models":
        print("steps", model.num_timesteps)
        models_over_angles()
    else:
        stored = model.replay_buffer.observations[: model.replay_buffer.pos].reshape(-1, 3)
        near_top = float((stored[:, 0] > np.cos(0.5)).mean())
        mean, _ = evaluate_policy(model, gym.make("Pendulum-v1"), n_eval_episodes=3, deterministic=True)
        print(
            f"eval {mean:7.0f} steps {model.num_timesteps}: 100-step return from rest at the top {return_from(0.0):7.1f},"
            f" from 0.3 rad {return_from(0.3):7.1f}; replay share with |theta| < 0.5: {near_top:.3f}",
            flush=True,
        )
