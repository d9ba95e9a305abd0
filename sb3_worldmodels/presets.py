"""Documented small configurations for CPU training (the defaults are the paper's GPU-sized ones).

Each preset is a dict of constructor keyword arguments, e.g. ``DCMPC("MlpPolicy", env, **DCMPC_PENDULUM_CPU)``.
How they were chosen and what they reach is recorded in ``BENCHMARKS.md``.
"""

from __future__ import annotations

from typing import Any

#: DC-MPC on Pendulum-v1 with a 2-core CPU. Differences from the paper's defaults, and why:
#:
#: - smaller networks and planner: a 32-slot latent (64 code values), 128-unit MLPs, MPPI with 128 samples and
#:   3 iterations (about 20 ms per planning call and 70 ms per update on 2 cores instead of seconds);
#: - 500 random steps and 500 pretraining updates instead of 10 episodes (Pendulum episodes are 200 steps);
#: - learning rates 1e-3 and 3-step TD targets: Pendulum's returns reach -1000, and with the paper's 1e-4 / 3e-4
#:   and 1-step targets the critics take several thousand updates to reach that scale;
#: - exploration noise decays over 5 episodes instead of 50.
DCMPC_PENDULUM_CPU: dict[str, Any] = dict(
    learning_rate=1e-3,
    actor_learning_rate=1e-3,
    critic_learning_rate=1e-3,
    learning_starts=500,
    pretrain_gradient_steps=500,
    batch_size=256,
    buffer_size=100_000,
    n_steps=3,
    exploration_noise_episodes=5,
    num_samples=128,
    num_elites=16,
    num_policy_trajs=8,
    mppi_iterations=3,
    policy_kwargs=dict(latent_dim=32, net_arch=[128, 128], encoder_net_arch=[128]),
)

#: Env steps the quickstart trains for with :data:`DCMPC_PENDULUM_CPU`.
DCMPC_PENDULUM_CPU_STEPS = 4000
