"""CUDA: the same code runs on a GPU, never waits for it inside the hot paths, and its checkpoints move between devices.

Skipped without a GPU (CI has none). On a machine with one, the rest of the suite runs on CUDA too: SB3's
``device="auto"``, which the tests leave as is, picks the GPU, so the mixed-precision and compiled-planner tests of
``test_conformance.py`` run there in bf16, fp16 and CUDA-graph mode (``compile_planner`` uses "reduce-overhead").
``benchmarks/gpu_check.sh`` runs both on a GPU machine.

The host-sync tests of ``test_host_sync.py`` see Python-level calls (``.item()``, branches on tensors) on any device.
Here ``torch.cuda.set_sync_debug_mode("error")`` also catches the synchronisations that happen inside PyTorch (a
device-to-host copy, a data-dependent output shape).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_worldmodels import DCMPC, Dreamer

pytestmark = pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")


class SyncsRaise:
    """Within the block, any CUDA call that makes the host wait for the device raises ``RuntimeError``."""

    def __enter__(self) -> SyncsRaise:
        th.cuda.synchronize()  # work queued before the block may finish; nothing inside may wait for it
        th.cuda.set_sync_debug_mode("error")
        return self

    def __exit__(self, *exc) -> None:
        th.cuda.set_sync_debug_mode("default")


def test_the_sync_check_catches_a_device_to_host_read():
    x = th.randn(3, device="cuda")
    with pytest.raises(RuntimeError, match="synchroniz"), SyncsRaise():
        x.sum().item()


@pytest.mark.parametrize("mixed_precision", [None, "bf16"])
def test_dcmpc_planning_and_updates_do_not_wait_for_the_gpu(tiny_dcmpc_kwargs, mixed_precision):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, device="cuda", mixed_precision=mixed_precision, **tiny_dcmpc_kwargs)
    model.learn(60)
    policy = model.policy
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(3)]), device="cuda")
    data = model.replay_buffer.sample_sequences(16, model.sequence_length)
    previous = policy.plan(obs).mean
    starts = th.tensor([False, True, False], device="cuda")
    with SyncsRaise():
        policy.plan(obs, previous, starts, exploration_std=0.1)
        policy.plan(obs, deterministic=True)
        model._update_world_model(data)
        _, codes = model._update_critics(data)
        model._update_actor(codes)
    assert all(p.is_cuda for p in policy.parameters())


@pytest.mark.parametrize("compile_planner, mixed_precision", [(False, None), (True, None), (False, "bf16")])
def test_cuda_graph_planner_replays_the_eager_plan(tiny_dcmpc_kwargs, compile_planner, mixed_precision):
    model = DCMPC(
        "MlpPolicy", "Pendulum-v1", seed=0, device="cuda", cuda_graph_planner=True, compile_planner=compile_planner,
        mixed_precision=mixed_precision, **tiny_dcmpc_kwargs,
    )  # fmt: skip
    model.learn(70)
    policy = model.policy
    assert len(policy._plan_graphs) == 1  # the training steps (one env) replayed one graph
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(3)]), device="cuda")
    previous = policy.plan(obs).mean  # captures the graph of 3 states
    starts = th.tensor([False, True, False], device="cuda")
    with SyncsRaise():
        policy.plan(obs, previous, starts, exploration_std=0.1)

    def graphed_and_eager():
        results = []
        for graph in (True, False):
            policy.cuda_graph_planner = graph
            th.manual_seed(5)  # a replay draws the noise the eager call draws after the same seed
            results.append(policy.plan(obs, previous, starts, exploration_std=0.3))
        policy.cuda_graph_planner = True
        return results

    graphed, eager = graphed_and_eager()
    for a, b in zip(graphed, eager, strict=True):
        assert th.allclose(a, b, atol=1e-4), (a, b)
    # Parameters changed in place (as the optimizers change them) reach the graph.
    with th.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * th.randn_like(p))
    graphed_after, eager_after = graphed_and_eager()
    assert not th.allclose(graphed_after.elite_value, graphed.elite_value)
    for a, b in zip(graphed_after, eager_after, strict=True):
        assert th.allclose(a, b, atol=1e-4), (a, b)
    assert len(policy._plan_graphs) == 2


@pytest.mark.parametrize("mixed_precision", [None, "bf16"])
def test_dreamer_updates_and_acting_do_not_wait_for_the_gpu(tiny_dreamer_kwargs, mixed_precision):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, device="cuda", mixed_precision=mixed_precision, **tiny_dreamer_kwargs)
    model.learn(110)
    data = model.replay_buffer.sample_sequences(4, model.sequence_length)
    _, posterior = model._update_world_model(data)
    with SyncsRaise():
        model._update_world_model(data)
        model._update_behaviour(posterior)


@pytest.mark.parametrize("algo, kwargs_fixture", [(DCMPC, "tiny_dcmpc_kwargs"), (Dreamer, "tiny_dreamer_kwargs")])
def test_trained_on_cuda_with_two_envs_then_loaded_on_the_cpu(algo, kwargs_fixture, request, tmp_path):
    tiny = request.getfixturevalue(kwargs_fixture)
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = algo("MlpPolicy", env, seed=0, device="cuda", **tiny)
    model.learn(tiny["learning_starts"] + 60)
    assert model._n_updates > 0 and model.device.type == "cuda"
    assert all(p.is_cuda for p in model.policy.parameters())
    obs = np.random.default_rng(3).uniform(-1, 1, (5, 3)).astype(np.float32)
    on_cuda = _deterministic_outputs(model, obs)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    on_cpu = algo.load(tmp_path / "model", device="cpu")
    assert all(not p.is_cuda for p in on_cpu.policy.parameters())
    # Same weights; only the two devices' float rounding differs.
    for a, b in zip(_deterministic_outputs(on_cpu, obs), on_cuda, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    # Training resumes on the CPU from the buffer written on the GPU.
    on_cpu.set_env(make_vec_env("Pendulum-v1", n_envs=2, seed=1))
    on_cpu.load_replay_buffer(tmp_path / "buffer")
    updates = on_cpu._n_updates
    on_cpu.learn(100, reset_num_timesteps=False)
    assert on_cpu._n_updates > updates


def _deterministic_outputs(model: DCMPC | Dreamer, obs: np.ndarray) -> list[np.ndarray]:
    """Dreamer's deterministic actions; DC-MPC's actor actions and predicted next codes and rewards.

    DC-MPC's deterministic planner draws its noise from a generator with a fixed seed on the model's device, and the
    CPU and CUDA generators draw different numbers from the same seed: its planned actions may differ between devices
    (an undertrained model's plan flips between the bounds with the noise), while the networks must agree.
    """
    if isinstance(model, Dreamer):
        return [model.predict(obs, deterministic=True)[0]]
    policy = model.policy
    with th.no_grad():
        codes = policy.encode(th.as_tensor(obs, device=model.device))
        action = policy.act(codes)
        next_codes, reward = policy.imagine_step(codes, action)
    return [t.cpu().numpy() for t in (action, next_codes, reward)]
