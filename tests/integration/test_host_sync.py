"""The hot paths never read a tensor's value on the host.

On CUDA, ``.item()``, ``.cpu()``, ``bool(tensor)`` (a Python branch on a tensor value), ``nonzero`` and the like wait
for the device to finish: one in the planning loop or in an update stalls the GPU at every call. The same calls
are visible on the CPU through a ``TorchFunctionMode``, so CI checks the planner and every update without a GPU.
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch as th
from torch.overrides import TorchFunctionMode

from sb3_worldmodels import DCMPC, Dreamer

# Tensor methods and functions that need the value of a tensor on the host (or a data-dependent output shape).
HOST_SYNCS = frozenset(
    {
        "item",
        "cpu",
        "tolist",
        "numpy",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "nonzero",
        "argwhere",
        "masked_select",
        "unique",
    }
)


class HostSyncRecorder(TorchFunctionMode):
    """Records every host-syncing call made while active, with the line of this package that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_SYNCS:
            frames = [f for f in traceback.extract_stack() if "sb3_worldmodels" in f.filename]
            where = f"{frames[-1].filename.split('sb3_worldmodels')[-1]}:{frames[-1].lineno}" if frames else "?"
            self.calls.append(f"{name} at {where}")
        return func(*args, **(kwargs or {}))


def test_the_recorder_sees_host_syncs():
    x = th.randn(3)
    with HostSyncRecorder() as recorder:
        x.sum().item()
        if x.sum() > 0:
            pass
        x.cpu()
    assert [c.split(" ")[0] for c in recorder.calls] == ["item", "__bool__", "cpu"]


def test_dcmpc_planning_and_updates_do_not_sync(tiny_dcmpc_kwargs):
    # On the CPU (tests/integration/test_cuda.py checks the same calls on a GPU, with PyTorch's own sync detection).
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", **tiny_dcmpc_kwargs)
    model.learn(60)
    policy = model.policy
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(3)]))
    data = model.replay_buffer.sample_sequences(16, model.sequence_length)
    previous = policy.plan(obs).mean
    starts = th.tensor([False, True, False])
    with HostSyncRecorder() as recorder:
        policy.plan(obs, previous, starts, exploration_std=0.1)  # acting while learning: warm start and noise
        policy.plan(obs, deterministic=True)  # predict(deterministic=True): the seeded generator
        model._update_world_model(data)
        _, codes = model._update_critics(data)
        model._update_actor(codes)
    assert recorder.calls == []


@pytest.mark.parametrize("imagination_starts", [None, 5])
def test_dreamer_updates_do_not_sync(tiny_dreamer_kwargs, imagination_starts):
    # imagination_starts=5: the random subset of start states is drawn on the device as well.
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, imagination_starts=imagination_starts, **tiny_dreamer_kwargs)
    model.learn(110)
    data = model.replay_buffer.sample_sequences(4, model.sequence_length)
    _, posterior = model._update_world_model(data)
    with HostSyncRecorder() as recorder:
        model._update_world_model(data)
        model._update_behaviour(posterior)
    assert recorder.calls == []


@pytest.mark.parametrize("algo", ["dcmpc", "dreamer"])
def test_a_syncing_update_would_be_caught(algo, tiny_dcmpc_kwargs, tiny_dreamer_kwargs, monkeypatch):
    # The recorder is not blind inside the updates: an update that logs with .item() is reported.
    if algo == "dcmpc":
        model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dcmpc_kwargs)
        model.learn(60)
    else:
        model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
        model.learn(110)
    data = model.replay_buffer.sample_sequences(4, model.sequence_length)
    original = model._backward_and_clip  # every update's optimizer steps go through it
    monkeypatch.setattr(model, "_backward_and_clip", lambda *args: th.tensor(original(*args).item()))
    with HostSyncRecorder() as recorder:
        model._update_world_model(data)
    assert recorder.calls and recorder.calls[0].startswith("item at ")
