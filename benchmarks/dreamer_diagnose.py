"""Why does a Dreamer (V1) run learn what it learns? Diagnostics of a saved model and its replay buffer.

Reads the checkpoint that ``benchmarks/dmc.py`` keeps for a run (``model.zip`` and ``replay_buffer.pkl``) and reports:

- the world model's open-loop prediction error against the horizon (observations and rewards), on sequences of the
  replay buffer, over the imagination horizon, with the variance of those rewards beside it;
- on fresh episodes, for the deterministic and the sampling policy: the return, the share of saturated actions
  (``|a| > 0.95`` in ``[-1, 1]``), the one-step reward prediction error on the posterior states, and the value of each
  state against the discounted return that actually followed it (``gamma`` of the model).

With ``--world-model-updates N`` the world model alone first takes N more steps on the replay buffer, with
``--free-nats`` in place of the run's own: whether the prior improves once the KL is trained again.

Usage::

    MUJOCO_GL=egl python benchmarks/dreamer_diagnose.py \\
        --state ~/.cache/sb3_worldmodels/dmc/dreamer-cpu-ours/cartpole-swingup/seed0 \\
        --env sb3_worldmodels/dmc-cartpole-swingup-pixels-v0 --episodes 2 --out diagnosis.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch as th  # noqa: E402

import sb3_worldmodels  # noqa: E402, F401  (registers the DMC ids)
from sb3_worldmodels import Dreamer  # noqa: E402
from sb3_worldmodels.common.returns import lambda_return  # noqa: E402
from sb3_worldmodels.dreamer.dreamer import open_loop_errors  # noqa: E402

SATURATION = 0.95


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma G_{t+1}`` of one finished episode (no bootstrap after its last step): the lambda-return
    with lambda 1 and zero values."""
    rewards = th.as_tensor(np.asarray(rewards, dtype=np.float64))
    zeros = th.zeros_like(rewards)
    return lambda_return(rewards, zeros, th.full_like(rewards, gamma), zeros[0], 1.0).numpy()


@th.no_grad()
def episode(model: Dreamer, env: gym.Env, deterministic: bool, seed: int) -> dict[str, float]:
    """One episode with ``model``'s policy, tracking its posterior state, value and reward predictions."""
    policy = model.policy
    obs, _ = env.reset(seed=seed)
    state, start = None, np.ones(1, dtype=bool)
    values, rewards, predicted_rewards, actions = [], [], [], []
    done = False
    while not done:
        action, state = model.predict(obs, state, start, deterministic=deterministic)
        start = np.zeros(1, dtype=bool)
        feature = th.cat([th.as_tensor(state[1]), th.as_tensor(state[0])], dim=-1).float().to(policy.device)
        if rewards:  # the state of o_{t+1} predicts r_t
            predicted_rewards.append(policy.reward(feature).item())
        values.append(policy.value(feature).item())
        actions.append(policy.scale_action(np.asarray(action)))
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
    rewards_array = np.asarray(rewards)
    # The last reward has no next posterior state in the episode; compare the rest.
    reward_error = np.asarray(predicted_rewards) - rewards_array[:-1]
    real = discounted_returns(rewards_array, model.gamma)
    values_array = np.asarray(values)
    head = len(values_array) // 2  # the first half, where the missing tail of the episode weighs least
    actions_array = np.abs(np.concatenate(actions))
    return {
        "return": float(rewards_array.sum()),
        "saturated_actions": float((actions_array > SATURATION).mean()),
        "mean_abs_action": float(actions_array.mean()),
        "reward_mse": float((reward_error**2).mean()),
        "value_mean_first_half": float(values_array[:head].mean()),
        "discounted_return_mean_first_half": float(real[:head].mean()),
        "value_return_correlation": float(np.corrcoef(values_array, real)[0, 1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, required=True, help="folder with model.zip and replay_buffer.pkl")
    parser.add_argument("--env", required=True)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=32, help="replayed sequences for the open-loop errors")
    parser.add_argument("--horizon", type=int, default=None, help="default: the model's imagination horizon")
    parser.add_argument("--world-model-updates", type=int, default=0, help="world-model steps before the diagnosis")
    parser.add_argument("--free-nats", type=float, default=None, help="free nats of those steps (default: the run's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    env = gym.make(args.env)
    model = Dreamer.load(args.state / "model.zip", env=env)
    model.load_replay_buffer(args.state / "replay_buffer.pkl")
    th.manual_seed(0)  # the same sequences and samples for every setting
    np.random.seed(0)
    horizon = args.horizon or model.imagination_horizon
    kls = []
    if args.free_nats is not None:
        model.free_nats = args.free_nats
    for _ in range(args.world_model_updates):
        data = model.replay_buffer.sample_sequences(model.batch_size, model.sequence_length)
        stats, _ = model._update_world_model(data)
        kls.append(float(stats["world_model/kl"]))
    truth, prediction, rewards = model.open_loop_prediction(args.sequences, model.prediction_context, horizon)
    errors = open_loop_errors(truth, prediction, rewards)
    mask = rewards["mask"].bool()
    result = {
        "state": str(args.state),
        "num_timesteps": model.num_timesteps,
        "open_loop": {key: [round(float(x), 5) for x in value] for key, value in errors.items()},
        # what predicting the mean reward of these steps would score, the yardstick of ``reward_mse``
        "reward_variance": round(float(rewards["true"][mask].var()), 5),
        "world_model_updates": args.world_model_updates,
        "free_nats": model.free_nats,
        "kl_during_updates": [round(float(np.mean(kls[i : i + 50])), 3) for i in range(0, len(kls), 50)],
    }
    for name, deterministic in (("deterministic", True), ("sampled", False)) if args.episodes else ():
        runs = [episode(model, env, deterministic, seed=20_000 + i) for i in range(args.episodes)]
        result[name] = {key: round(float(np.mean([run[key] for run in runs])), 4) for key in runs[0]}
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
