"""Env steps per second of the CPU presets on Pendulum-v1, acting and updates included (no evaluation).

    python benchmarks/preset_throughput.py [--threads 2] [--algo dcmpc] [--preset DCMPC_PENDULUM_FAST] [--override JSON]

Each algorithm first learns past its random prefill (and DC-MPC's pretraining burst), then the steady-state
rate of a further ``learn()`` call is timed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch as th

from sb3_worldmodels import DCMPC, Dreamer, presets

# (name, class, preset, steps before timing, timed steps)
RUNS = (
    ("dcmpc", DCMPC, presets.DCMPC_PENDULUM_CPU, 1000, 600),
    ("dreamer", Dreamer, presets.DREAMER_PENDULUM_CPU, 1200, 1000),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--algo", choices=[run[0] for run in RUNS], help="time only this algorithm")
    parser.add_argument("--preset", help="name of another preset in sb3_worldmodels.presets for --algo")
    parser.add_argument("--override", default="{}", help="JSON dict of constructor arguments to change")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    for name, algo, preset, warm, timed in RUNS:
        if args.algo is not None and name != args.algo:
            continue
        if args.preset is not None:
            preset = getattr(presets, args.preset)
        model = algo("MlpPolicy", "Pendulum-v1", seed=0, **{**preset, **json.loads(args.override)})
        model.learn(warm)
        start = time.perf_counter()
        model.learn(timed, reset_num_timesteps=False)
        seconds = time.perf_counter() - start
        print(f"{name}: {timed} env steps in {seconds:.1f} s after {warm} -> {timed / seconds:.1f} env steps/s", flush=True)


if __name__ == "__main__":
    main()
