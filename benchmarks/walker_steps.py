"""Env steps per second on dm_control walker-walk at the paper's sizes, acting and updates included (for a GPU).

    python benchmarks/walker_steps.py --algo dcmpc|dreamer [--pixels] [--device cuda] [--compile-planner]
        [--cuda-graph-planner] [--mixed-precision fp32|bf16|fp16] [--learning-starts 1000] [--timed 500]

Every network size, batch and schedule is the constructor default (the papers'), on ``dm_control/walker-walk-v0``
(DC-MPC, and Dreamer with ``MultiInputPolicy``) or ``sb3_worldmodels/dmc-walker-walk-pixels-v0`` (Dreamer with
``--pixels``: 64x64 frames rendered with EGL, action repeat 2; a step is an agent step). Only the length of the
random phase is shorter (``--learning-starts``), and DC-MPC's pretraining burst is 10 gradient steps instead of one
per seed step: both only shorten the set-up, which is not timed.

The model first learns past its random phase (and, for Dreamer, through one training round), then a further
``learn()`` of ``--timed`` steps is timed. For Dreamer (100 updates every 1000 steps) the timed stretch should be a
multiple of 1000 steps. The env alone (random actions, no model) is timed as well, for the share of the simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import shimmy  # noqa: E402
import torch as th  # noqa: E402
from _timing import add_precision_option, describe, mixed_precision  # noqa: E402

from sb3_worldmodels import DCMPC, Dreamer  # noqa: E402


def env_only_rate(env_id: str, steps: int = 500) -> float:
    """Steps per second of the env with random actions (what no agent can beat)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dcmpc", "dreamer"], required=True)
    parser.add_argument("--pixels", action="store_true", help="Dreamer on 64x64 frames (action repeat 2)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compile-planner", action="store_true", help="DC-MPC: DCMPC(compile_planner=True)")
    parser.add_argument("--cuda-graph-planner", action="store_true", help="DC-MPC: DCMPC(cuda_graph_planner=True)")
    add_precision_option(parser)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--timed", type=int, default=None, help="timed env steps (default: 500 DC-MPC, 1000 Dreamer)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--override", default="{}", help="JSON dict of constructor arguments to change (smoke tests)")
    args = parser.parse_args()
    gym.register_envs(shimmy)  # the dm_control/ ids
    th.set_num_threads(args.threads)
    common = dict(seed=0, device=args.device, mixed_precision=mixed_precision(args), learning_starts=args.learning_starts)
    common.update(json.loads(args.override))
    if args.algo == "dcmpc":
        env_id, policy = "dm_control/walker-walk-v0", "MultiInputPolicy"
        model = DCMPC(
            policy, env_id, compile_planner=args.compile_planner, cuda_graph_planner=args.cuda_graph_planner,
            pretrain_gradient_steps=10, **common,
        )  # fmt: skip
        warm, timed = args.learning_starts + 50, args.timed or 500
    else:
        env_id = "sb3_worldmodels/dmc-walker-walk-pixels-v0" if args.pixels else "dm_control/walker-walk-v0"
        policy = "CnnPolicy" if args.pixels else "MultiInputPolicy"
        model = Dreamer(policy, env_id, buffer_size=100_000, **common)
        warm, timed = args.learning_starts + model.train_freq.frequency, args.timed or 1000
    model.learn(warm)
    updates = model._n_updates
    start = time.perf_counter()
    model.learn(timed, reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    env_rate = env_only_rate(env_id)
    setting = f"{args.algo} {env_id} {policy} precision={args.mixed_precision} compiled={args.compile_planner}"
    setting += f" graph={args.cuda_graph_planner}"
    if args.override != "{}":
        setting += f" override={args.override}"
    print(f"{setting} device={describe(args.device)} torch={th.__version__} threads={args.threads}")
    print(
        f"{timed} env steps in {seconds:.1f} s after {warm} -> {timed / seconds:.1f} env steps/s "
        f"(updates in the timed stretch: {model._n_updates - updates}; env alone: {env_rate:.0f} steps/s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
