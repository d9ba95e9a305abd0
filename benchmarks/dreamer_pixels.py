"""Dreamer from 64x64 pixels on dm_control cartpole-swingup (action repeat 2) with the CPU pixel preset.

    MUJOCO_GL=egl python benchmarks/dreamer_pixels.py --steps 5000 --eval-freq 1000 --seed 0 --out benchmarks/results

``--steps`` and ``--eval-freq`` count agent steps; the JSON result records env steps (2 per agent step). Every
evaluation runs ``--eval-episodes`` episodes (500 agent steps each) with the deterministic policy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported

import torch as th  # noqa: E402
from pendulum_learning import EvalCurve  # noqa: E402

from sb3_worldmodels import Dreamer  # noqa: E402
from sb3_worldmodels.common.wrappers import make_pixel_dm_control  # noqa: E402
from sb3_worldmodels.presets import DREAMER_PIXELS_CPU  # noqa: E402

ENV_ID = "dm_control/cartpole-swingup-v0"
ACTION_REPEAT = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--eval-freq", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    env = make_pixel_dm_control(ENV_ID, size=64, action_repeat=ACTION_REPEAT)
    eval_env = make_pixel_dm_control(ENV_ID, size=64, action_repeat=ACTION_REPEAT)
    eval_env.reset(seed=10_000 + args.seed)
    model = Dreamer("CnnPolicy", env, seed=args.seed, verbose=1, **DREAMER_PIXELS_CPU)
    callback = EvalCurve(eval_env, args.eval_freq, args.eval_episodes)
    start = time.time()
    model.learn(args.steps, callback=callback, log_interval=4)
    result = dict(
        algo="dreamer",
        env=ENV_ID,
        seed=args.seed,
        action_repeat=ACTION_REPEAT,
        steps=[step * ACTION_REPEAT for step in callback.steps],
        returns=callback.returns,
        wall_s=time.time() - start,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"dreamer_pixels_cartpole_seed{args.seed}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
