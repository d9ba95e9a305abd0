from __future__ import annotations

import os

import pytest
import torch as th

os.environ.setdefault("MUJOCO_GL", "egl")
# Tiny test networks gain nothing from intra-op threads, and extra threads only contend with other processes.
th.set_num_threads(1)

#: A DC-MPC small enough for unit tests: every size and schedule is passed explicitly.
TINY_DCMPC = dict(
    learning_starts=50,
    pretrain_gradient_steps=5,
    batch_size=16,
    buffer_size=2000,
    horizon=3,
    plan_horizon=2,
    num_samples=32,
    num_elites=4,
    num_policy_trajs=4,
    mppi_iterations=2,
    policy_kwargs=dict(latent_dim=8, net_arch=[32, 32], encoder_net_arch=[32]),
)


@pytest.fixture
def tiny_dcmpc_kwargs() -> dict:
    return {**TINY_DCMPC, "policy_kwargs": dict(TINY_DCMPC["policy_kwargs"])}
