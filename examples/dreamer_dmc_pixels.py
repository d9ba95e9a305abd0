"""Dreamer from pixels on dm_control cartpole-swingup (action repeat 2), with the open-loop prediction figure.

    MUJOCO_GL=egl python examples/dreamer_dmc_pixels.py --steps 20000 --tensorboard runs [--paper-sizes]

Images are 64x64x3 uint8 frames from the env's renderer (``AddRenderObservation``); TensorBoard shows the
losses and, under ``world_model/open_loop_prediction``, truth / prediction / difference.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported

import gymnasium as gym  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402

from sb3_worldmodels import Dreamer  # noqa: E402
from sb3_worldmodels.common.callbacks import OpenLoopVideoCallback, PredictionErrorCallback  # noqa: E402
from sb3_worldmodels.common.wrappers import make_pixel_dm_control  # noqa: E402
from sb3_worldmodels.presets import DREAMER_PIXELS_CPU  # noqa: E402


def make_env() -> gym.Env:
    return make_pixel_dm_control("dm_control/cartpole-swingup-v0", size=64, action_repeat=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--tensorboard", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper-sizes", action="store_true", help="the paper's networks and schedule (GPU-sized)")
    args = parser.parse_args()
    # The CPU preset by default: at the paper's sizes one update takes 12-16 s on a 2-core CPU (BENCHMARKS.md).
    kwargs = {} if args.paper_sizes else DREAMER_PIXELS_CPU
    model = Dreamer("CnnPolicy", make_env(), seed=args.seed, verbose=1, tensorboard_log=args.tensorboard, **kwargs)
    callbacks = [OpenLoopVideoCallback(log_freq=5000), PredictionErrorCallback(log_freq=1000)]
    model.learn(args.steps, callback=callbacks, progress_bar=True)
    model.save("dreamer_cartpole_pixels")
    mean, std = evaluate_policy(model, make_env(), n_eval_episodes=5)
    print(f"Evaluation over 5 episodes: {mean:.1f} +/- {std:.1f}")


if __name__ == "__main__":
    main()
