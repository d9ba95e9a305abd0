"""Documented small configurations for CPU training (the defaults are the paper's GPU-sized ones).

Each preset is a dict of constructor keyword arguments, e.g. ``DCMPC("MlpPolicy", env, **DCMPC_PENDULUM_CPU)``.
How they were chosen and what they reach is recorded in ``BENCHMARKS.md``.
"""

from __future__ import annotations

from typing import Any

#: DC-MPC on Pendulum-v1 with a 2-core CPU: a 32-slot latent (64 code values), 128-unit MLPs, a lighter MPPI
#: (128 samples, 3 iterations) and a 5-episode exploration decay instead of 50 (Pendulum episodes are 200 steps).
DCMPC_PENDULUM_CPU: dict[str, Any] = dict(
    learning_starts=1000,
    pretrain_gradient_steps=500,
    batch_size=256,
    buffer_size=100_000,
    exploration_noise_episodes=5,
    num_samples=128,
    num_elites=16,
    num_policy_trajs=8,
    mppi_iterations=3,
    policy_kwargs=dict(latent_dim=32, net_arch=[128, 128], encoder_net_arch=[128]),
)
