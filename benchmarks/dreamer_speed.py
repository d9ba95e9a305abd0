"""Speed and memory of one Dreamer gradient update (world model + imagination actor-critic).

    python benchmarks/dreamer_speed.py [--size paper|paper-vector|pendulum-cpu|pixels-cpu] [--threads 2] [--repeats 3]
        [--accel auto|none|PATH,...] [--malloc keep-freed|default] [--device cpu|cuda] [--mixed-precision fp32|bf16|fp16]

``paper``: 64x64x3 images, 6-D actions, every network size and the batch (50 sequences x 50 steps) as in the paper;
``paper-vector``: the same with a 24-D vector observation (walker-walk's state); ``pendulum-cpu``: the
``DREAMER_PENDULUM_CPU`` preset; ``pixels-cpu``: the ``DREAMER_PIXELS_CPU`` preset with 64x64x3 images and a 1-D
action (cartpole). Reports FLOPs of matrix products and convolutions (``torch.utils.flop_counter``, backward
included), the fp32 matmul rate measured in the same run, the floor FLOPs / rate, the median time after warm-up and
their ratio, and the peak resident memory. With ``--device cuda`` the model and the matmul rate (8192^3 products,
float32 without TF32; cuDNN's convolutions use TF32, PyTorch's default) are on the GPU, each timed update ends when
the GPU is idle, and the GPU's peak allocated memory is reported too.
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

from sb3_worldmodels import Dreamer
from sb3_worldmodels.presets import DREAMER_PENDULUM_CPU, DREAMER_PIXELS_CPU


class ShapeEnv(gym.Env):
    """An env with the requested spaces; only the spaces matter here (the buffer is filled with random data)."""

    def __init__(self, observation_space: gym.Space, action_dim: int):
        self.observation_space = observation_space
        self.action_space = gym.spaces.Box(-1, 1, (action_dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def build(size: str, **extra) -> Dreamer:
    if size == "paper":
        env = ShapeEnv(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), 6)
        return Dreamer("CnnPolicy", env, buffer_size=5000, learning_starts=0, **extra)
    if size == "paper-vector":
        env = ShapeEnv(gym.spaces.Box(-np.inf, np.inf, (24,), np.float32), 6)
        return Dreamer("MlpPolicy", env, buffer_size=5000, learning_starts=0, **extra)
    if size == "pixels-cpu":
        env = ShapeEnv(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), 1)
        return Dreamer("CnnPolicy", env, **{**DREAMER_PIXELS_CPU, "learning_starts": 0, "buffer_size": 5000, **extra})
    return Dreamer("MlpPolicy", "Pendulum-v1", **{**DREAMER_PENDULUM_CPU, "learning_starts": 0, **extra})


def fill_buffer(model: Dreamer, n: int) -> None:
    space = model.observation_space
    act_dim = model.action_space.shape[0]
    for k in range(n):
        obs = space.sample()[None]
        model.replay_buffer.add(
            obs, obs, np.random.uniform(-1, 1, (1, act_dim)), np.random.rand(1), np.array([k % 500 == 499]), [{}]
        )


def ready_for_updates(
    size: str, device: str = "cpu", mixed_precision: str | None = None, accel: str | list[str] = "auto"
) -> Dreamer:
    """A seeded model of ``size`` with a silent logger and 2000 random transitions, ready for timed ``train()`` calls."""
    th.manual_seed(0)
    np.random.seed(0)
    model = build(size, device=device, mixed_precision=mixed_precision, accel=accel)
    model.set_logger(configure(None, []))  # train() records its losses; nothing is written
    fill_buffer(model, 2000)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["paper", "paper-vector", "pendulum-cpu", "pixels-cpu"], default="paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accel", default="auto", help='Dreamer(accel=...): "auto", "none" or comma-separated fast paths')
    add_precision_option(parser)
    add_malloc_option(parser)
    add_device_option(parser)
    args = parser.parse_args()
    apply_malloc_option(args)
    th.set_num_threads(args.threads)
    model = ready_for_updates(args.size, args.device, mixed_precision(args), accel_option(args.accel))

    def update():
        model.train(gradient_steps=1, batch_size=model.batch_size)

    low = PRECISIONS[args.mixed_precision]
    before = device_matmul_rate(low, args.device)
    flops = count_flops(update)
    times = call_times(update, args.repeats, args.device)
    after = device_matmul_rate(low, args.device)
    print(
        f"size={args.size} precision={args.mixed_precision} threads={args.threads} repeats={args.repeats} "
        f"accel={args.accel} malloc={malloc_setting()} torch={th.__version__} device={describe(args.device)}",
        end=" ",
    )
    print(f"batch={model.batch_size}x{model.batch_length}")
    print(
        f"{args.mixed_precision} matmul rate (GFLOP/s, median (fastest) product): "
        f"{before.median / 1e9:.0f} ({before.best / 1e9:.0f}) before, "
        f"{after.median / 1e9:.0f} ({after.best / 1e9:.0f}) after the timings"
    )
    # The floor uses the higher of the two rates (the most demanding floor): the rate moves with the machine's load.
    print_table([("gradient update", flops, times)], [before, after], args.mixed_precision)
    print_peak_memory(args.device)


if __name__ == "__main__":
    main()
