"""Speed and memory of DC-MPC's two hot calls: one MPPI planning call and one gradient update.

    python benchmarks/dcmpc_speed.py [--size paper|pendulum-cpu] [--threads 2] [--repeats 5] [--mixed-precision bf16]
        [--compile-planner] [--cuda-graph-planner] [--accel auto|none|PATH,...] [--malloc keep-freed|default]
        [--device cpu|cuda]

For each call it reports the matrix-product FLOPs (counted by ``torch.utils.flop_counter`` from the layer
sizes actually run, backward included), the fp32 matmul rate of this machine measured in the same run, the
"floor" time FLOPs / rate (the bf16 rate with ``--mixed-precision bf16``), the median measured time after
warm-up, and their ratio. It also reports the
process's peak resident memory. With ``--device cuda`` the model and the matmul rate are on the GPU (8192^3 products),
each timed call ends when the GPU is idle, and the GPU's peak allocated memory is reported as well.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch as th
from _timing import (
    PRECISIONS,
    accel_option,
    add_device_option,
    add_malloc_option,
    add_precision_option,
    apply_malloc_option,
    call_times,
    count_flops,
    describe,
    device_matmul_rate,
    malloc_setting,
    mixed_precision,
    print_peak_memory,
    print_table,
)
from stable_baselines3.common.logger import configure

from sb3_worldmodels import DCMPC
from sb3_worldmodels.presets import DCMPC_PENDULUM_CPU


def build(size: str, mixed_precision: str | None = None, device: str = "cpu", accel: str | list[str] = "auto") -> DCMPC:
    extra = dict(mixed_precision=mixed_precision, device=device, accel=accel)
    if size == "paper":
        # walker-walk: obs 24, action 6; every network size is the paper default.
        env = gym.make("Pendulum-v1")  # replaced below by a Box env of walker's sizes
        env = gym.wrappers.TransformObservation(
            env, lambda o: np.zeros(24, np.float32), gym.spaces.Box(-np.inf, np.inf, (24,), np.float32)
        )
        env.action_space = gym.spaces.Box(-1, 1, (6,), np.float32)
        return DCMPC("MlpPolicy", env, buffer_size=10_000, learning_starts=0, **extra)
    kwargs = {**DCMPC_PENDULUM_CPU, "learning_starts": 0, **extra}
    return DCMPC("MlpPolicy", "Pendulum-v1", **kwargs)


def fill_buffer(model: DCMPC, n: int) -> None:
    buffer = model.replay_buffer
    obs_dim = model.observation_space.shape[0]
    act_dim = model.action_space.shape[0]
    for k in range(n):
        obs = np.random.randn(1, obs_dim).astype(np.float32)
        buffer.add(obs, obs, np.random.uniform(-1, 1, (1, act_dim)), np.random.randn(1), np.array([k % 500 == 499]), [{}])


def ready_for_updates(
    size: str, mixed_precision: str | None = None, device: str = "cpu", accel: str | list[str] = "auto"
) -> DCMPC:
    """A seeded model of ``size`` with a silent logger and 2000 random transitions, past its pretraining burst, so that
    ``train()`` times regular updates."""
    th.manual_seed(0)
    np.random.seed(0)
    model = build(size, mixed_precision, device, accel)
    model.set_logger(configure(None, []))  # train() records its losses; nothing is written
    fill_buffer(model, 2000)
    model._pretrained = True  # time one regular update, not the pretraining burst
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["paper", "pendulum-cpu"], default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    add_precision_option(parser)
    parser.add_argument("--compile-planner", action="store_true", help="DCMPC(compile_planner=True)")
    parser.add_argument("--cuda-graph-planner", action="store_true", help="DCMPC(cuda_graph_planner=True)")
    parser.add_argument("--accel", default="auto", help='DCMPC(accel=...): "auto", "none" or comma-separated fast paths')
    add_malloc_option(parser)
    add_device_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(args.threads)
    model = ready_for_updates(args.size, mixed_precision(args), args.device, accel_option(args.accel))
    obs = np.random.randn(1, model.observation_space.shape[0]).astype(np.float32)
    obs_tensor = th.as_tensor(obs, device=args.device)

    def plan():
        model.policy.plan(obs_tensor, deterministic=False, exploration_std=0.1)

    def update():
        model.train(gradient_steps=1, batch_size=model.batch_size)

    # The actor is updated every 2nd step: time and count two updates, report per update.
    def two_updates():
        update()
        update()

    # The matmul rate moves with the machine's load: it is measured around every timing, and the floor uses the
    # highest rate seen in the run (the most demanding floor).
    low = PRECISIONS[args.mixed_precision]
    rates = {dtype: [device_matmul_rate(dtype, args.device)] for dtype in dict.fromkeys([th.float32, th.bfloat16, low])}
    rows = []
    for name, fn, per_call in (("planning call", plan, 1), ("gradient update", two_updates, 2)):
        flops = count_flops(fn) / per_call  # counted eagerly
        if name == "planning call":  # as DCMPC(...) sets them; the warm-up call compiles / captures
            model.policy.cuda_graph_planner = args.cuda_graph_planner
            if args.compile_planner:
                model.policy.compile_planner()
        rates[low].append(device_matmul_rate(low, args.device))
        times = [t / per_call for t in call_times(fn, args.repeats, args.device)]
        rates[low].append(device_matmul_rate(low, args.device))
        rows.append((name, flops, times))
    setting = f"size={args.size} precision={args.mixed_precision} compiled={args.compile_planner} "
    setting += f"graph={args.cuda_graph_planner} accel={args.accel} malloc={malloc_setting()}"
    print(f"{setting} threads={args.threads} repeats={args.repeats} torch={th.__version__} device={describe(args.device)}")
    for name, dtype in PRECISIONS.items():
        if dtype not in rates:
            continue
        shown = ", ".join(f"{r.median / 1e9:.0f} ({r.best / 1e9:.0f})" for r in rates[dtype])
        print(f"matmul rate {name} (GFLOP/s, median (fastest) product, in order of measurement): {shown}")
    print_table(rows, rates[low], args.mixed_precision)
    print_peak_memory(args.device)


if __name__ == "__main__":
    main()
