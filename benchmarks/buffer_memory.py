"""Bytes per stored step of the sequence replay buffer against SB3's ReplayBuffer.

    python benchmarks/buffer_memory.py

Each buffer is filled with 10,000 steps of 200-step episodes; the figure is the total bytes of its arrays
(and of the final-observation table) divided by the number of steps.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from sb3_worldmodels.common.buffers import SequenceReplayBuffer

STEPS, EPISODE = 10_000, 200


def sb3_bytes(buffer) -> int:
    arrays = [buffer.actions, buffer.rewards, buffer.dones, buffer.timeouts]
    for name in ("observations", "next_observations"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays += list(value.values())
        elif value is not None:
            arrays.append(value)
    return sum(a.nbytes for a in arrays)


def fill(buffer, observation_space: spaces.Space, action_dim: int) -> None:
    obs = observation_space.sample()
    batch = {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]
    for k in range(STEPS):
        done = np.array([k % EPISODE == EPISODE - 1])
        buffer.add(batch, batch, np.zeros((1, action_dim)), np.zeros(1), done, [{"TimeLimit.truncated": bool(done[0])}])


def main() -> None:
    cases = {
        "Pendulum-v1 (3 floats)": spaces.Box(-8, 8, (3,), np.float32),
        "dm_control cartpole (Dict of float64, 5 values)": spaces.Dict(
            {"position": spaces.Box(-1, 1, (3,), np.float64), "velocity": spaces.Box(-1, 1, (2,), np.float64)}
        ),
        "64x64x3 uint8 image": spaces.Box(0, 255, (3, 64, 64), np.uint8),
    }
    print("| observation | SequenceReplayBuffer (bytes/step) | SB3 ReplayBuffer (bytes/step) |")
    print("| --- | --- | --- |")
    for name, space in cases.items():
        action_space = spaces.Box(-1, 1, (1,), np.float32)
        ours = SequenceReplayBuffer(STEPS, space, action_space, device="cpu")
        fill(ours, space, 1)
        sb3_cls = DictReplayBuffer if isinstance(space, spaces.Dict) else ReplayBuffer
        theirs = sb3_cls(STEPS, space, action_space, device="cpu")
        fill(theirs, space, 1)
        print(f"| {name} | {ours.nbytes() / STEPS:.1f} | {sb3_bytes(theirs) / STEPS:.1f} |")


if __name__ == "__main__":
    main()
