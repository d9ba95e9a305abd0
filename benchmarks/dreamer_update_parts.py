"""Where a Dreamer update's time goes at the Pendulum CPU preset, optionally with overrides.

    python benchmarks/dreamer_update_parts.py ['{"batch_length": 16}']

Times (median of 10 after one warm-up, milliseconds, 2 threads): sampling a batch, the posterior filter alone,
the world-model update, the imagination rollout alone, the behaviour (actor and value) update, and one whole
``train(1)`` call. The JSON argument overrides constructor arguments of ``DREAMER_PENDULUM_CPU``.
"""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import torch as th
from _timing import median_time
from stable_baselines3.common.logger import configure

from sb3_worldmodels import Dreamer
from sb3_worldmodels.presets import DREAMER_PENDULUM_CPU


def main() -> None:
    th.set_num_threads(2)
    override = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    kwargs = {**DREAMER_PENDULUM_CPU, **override, "learning_starts": 400, "train_freq": 400}
    model = Dreamer("MlpPolicy", gym.make("Pendulum-v1"), seed=0, **kwargs)
    model.learn(400)  # random steps only: fills the buffer
    model.set_logger(configure(None, []))
    data = model.replay_buffer.sample_sequences(model.batch_size, model.sequence_length)
    _, posterior = model._update_world_model(data)

    def observe():
        with th.no_grad():
            model._observe(data)

    def imagine():
        with th.no_grad():
            model.imagine(model.imagination_start_states(posterior))

    parts = {
        "sample": lambda: model.replay_buffer.sample_sequences(model.batch_size, model.sequence_length),
        "observe (no grad)": observe,
        "world-model update": lambda: model._update_world_model(data),
        "imagine (no grad)": imagine,
        "behaviour update": lambda: model._update_behaviour(posterior),
        "train(1)": lambda: model.train(1, model.batch_size),
    }
    print(f"override={override}")
    for name, fn in parts.items():
        print(f"{name}: {1000 * median_time(fn, repeats=10):.1f} ms")


if __name__ == "__main__":
    main()
