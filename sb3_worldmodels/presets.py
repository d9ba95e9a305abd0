"""Documented small configurations for CPU training (the defaults are the paper's GPU-sized ones).

Each preset is a dict of constructor keyword arguments, e.g. ``DCMPC("MlpPolicy", env, **DCMPC_PENDULUM_CPU)``.
How they were chosen and what they reach is recorded in ``BENCHMARKS.md``.
"""

from __future__ import annotations

from typing import Any


def _dcmpc_cpu_sizes() -> dict[str, Any]:
    """The network, batch and planner sizes of the DC-MPC CPU presets (a new dict each call)."""
    return dict(
        batch_size=256,
        num_samples=128,
        num_elites=16,
        num_policy_trajs=8,
        mppi_iterations=3,
        policy_kwargs=dict(latent_dim=32, net_arch=[128, 128], encoder_net_arch=[128]),
    )


#: DC-MPC on Pendulum-v1 with a 2-core CPU. Differences from the paper's defaults, and why:
#:
#: - smaller networks and planner: a 32-slot latent (64 code values), 128-unit MLPs, MPPI with 128 samples and
#:   3 iterations (about 20 ms per planning call and 60 ms per update on 2 cores instead of seconds);
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
    buffer_size=100_000,
    n_steps=3,
    exploration_noise_episodes=5,
    **_dcmpc_cpu_sizes(),
)

#: Env steps the quickstart trains for with :data:`DCMPC_PENDULUM_CPU`.
DCMPC_PENDULUM_CPU_STEPS = 4000

#: DC-MPC on Pendulum-v1 when env steps are what counts: :data:`DCMPC_PENDULUM_CPU` with 4 updates per env step and
#: 300 random steps. About four times the compute per env step (2000 env steps with 8 evaluations took 11 minutes on
#: 2 cores) for a swing-up within about 1000-1500 env steps; BENCHMARKS.md compares it with SAC.
DCMPC_PENDULUM_SAMPLE_EFFICIENT: dict[str, Any] = {**DCMPC_PENDULUM_CPU, "gradient_steps": 4, "learning_starts": 300}

#: DC-MPC on Pendulum-v1 when wall-clock on a 2-core CPU is what counts: :data:`DCMPC_PENDULUM_CPU` with one update
#: every 2 env steps on batches of 128 (22.7 env steps per second against 10.3 for the CPU preset, measured back to
#: back). It needs more env steps per swing-up: on 3 seeds the mean curve is -270 at 4000 env steps and stays between
#: -330 and -270 to 6000 (seeds first at -200 or above at 4500, 5500, 4000), where the CPU preset's mean curve
#: reaches -200 at 3500; in wall-clock it gets there sooner (BENCHMARKS.md, "CPU presets: env steps per second").
DCMPC_PENDULUM_FAST: dict[str, Any] = {**DCMPC_PENDULUM_CPU, "train_freq": 2, "batch_size": 128}

#: DC-MPC on the DeepMind Control Suite ids (``sb3_worldmodels/dmc-<task>-v0``) with a 2-core CPU: the sizes of
#: :data:`DCMPC_PENDULUM_CPU` (32 latent slots, 128-unit MLPs, MPPI with 128 samples, 16 elites, 8 policy sequences
#: and 3 iterations, batches of 256) with everything else the paper's: learning rates, 10 random episodes, one update
#: per agent step, 1-step TD targets. The task's own settings (n-step, exploration decay) come on top, from
#: ``hyperparams/dcmpc_dmc_cpu.yml``. Larger sizes cost more than the 2 cores give: 64 slots with 256-unit MLPs and
#: 256 samples ran 3.7 agent steps per second with evaluation against 10.2 for these (BENCHMARKS.md, "DC-MPC on the
#: DeepMind Control Suite").
DCMPC_DMC_CPU: dict[str, Any] = dict(buffer_size=1_000_000, **_dcmpc_cpu_sizes())

#: Dreamer on vector Pendulum-v1 with a 2-core CPU. Differences from the paper's defaults, and why:
#:
#: - smaller networks (GRU 100, 200-unit MLPs) and batches (16 sequences of 32 steps) so that an update takes tens
#:   of milliseconds instead of about a second;
#: - 1000 prefill steps and 25 updates every 100 env steps (the paper: 5000, and 100 every 1000);
#: - learning rates 1e-3 (model) and 3e-4 (actor, value): Pendulum's returns are in the hundreds, not in [0, 1000]
#:   with per-step rewards in [0, 1] as on DMC, and the paper's 8e-5 moves the value too slowly for a short run.
DREAMER_PENDULUM_CPU: dict[str, Any] = dict(
    learning_rate=1e-3,
    actor_learning_rate=3e-4,
    value_learning_rate=3e-4,
    learning_starts=1000,
    train_freq=100,
    gradient_steps=25,
    batch_size=16,
    batch_length=32,
    buffer_size=100_000,
    policy_kwargs=dict(
        stoch_dim=30,
        deter_dim=100,
        hidden_dim=100,
        mlp_net_arch=[200, 200],
        embed_dim=200,
        reward_net_arch=[200, 200],
        value_net_arch=[200, 200],
        actor_net_arch=[200, 200],
    ),
)

#: Dreamer on vector Pendulum-v1 when env steps are what counts: :data:`DREAMER_PENDULUM_CPU` with 10 updates every
#: 25 env steps on 16 sequences of 16 steps, imagining from 64 of their 256 posterior states, 500 random steps, and
#: two changes to the objectives:
#:
#: - ``free_nats=0``: with Pendulum's 3 observation values the posterior needs well under 3 nats per step, so the
#:   paper's 3 free nats leave the prior untrained once it is within 3 nats (the KL then sits near 3) and imagination
#:   drifts; with 0 the KL falls to about 0.55 nats;
#: - ``actor_entropy_scale=0.3`` (as DreamerV2; V1 has none): keeps the tanh-Gaussian actor from saturating at the
#:   torque bounds, where its gradient vanishes (entropy estimate about -3.5 instead of -10 to -90).
#:
#: Every seed of 5 reaches -200 over 10 evaluation episodes within 5000 env steps (mean -142 at 5000, -184 at 10,000;
#: BENCHMARKS.md, "Dreamer vs SAC on Pendulum-v1"); the swing-up is not always held at once: two seeds dip to about
#: -600 for one evaluation before they recover.
DREAMER_PENDULUM_SAMPLE_EFFICIENT: dict[str, Any] = {
    **DREAMER_PENDULUM_CPU,
    "learning_starts": 500,
    "train_freq": 25,
    "gradient_steps": 10,
    "batch_length": 16,
    "imagination_starts": 64,
    "free_nats": 0.0,
    "actor_entropy_scale": 0.3,
}

#: Dreamer on vector Pendulum-v1 when wall-clock on a 2-core CPU is what counts: :data:`DREAMER_PENDULUM_SAMPLE_EFFICIENT`
#: with 10 updates every 50 env steps instead of every 25 (67 env steps per second on 2 cores), the shipped RL Zoo
#: entry. It needs about twice the env steps to get as far: 3 seeds of 5 reach -200 within 10,000 env steps (first at
#: 7000-9000), seed 0 -208 at 9000, and seed 2 loses its swing-up after 6000 (-228, then -679 to -1162; BENCHMARKS.md,
#: "Dreamer vs SAC on Pendulum-v1").
DREAMER_PENDULUM_FAST: dict[str, Any] = {**DREAMER_PENDULUM_SAMPLE_EFFICIENT, "train_freq": 50}

#: Dreamer from 64x64 pixels (dm_control, action repeat 2) on a 2-core CPU. Differences from the paper's defaults:
#:
#: - half-width CNNs (depth 16), GRU 100, reward, value and actor MLPs of two 200-unit layers (the paper: 2, 3 and 4
#:   layers of 400), batches of 16 sequences of 32 steps: an update takes about 1.3 s instead of about 28 s on 2
#:   cores (BENCHMARKS.md, "Dreamer speed");
#: - 1000 prefill agent steps and 10 updates every 100 agent steps (the paper: 5000 env frames, 2500 agent steps, and
#:   100 updates every 1000 frames, twice this rate); by 100k frames it replays about a tenth of the paper's sequence
#:   steps;
#: - actor and value learning rates of 3e-4 as :data:`DREAMER_PENDULUM_CPU` (the paper: 8e-5); DMC rewards are in
#:   [0, 1] as in the paper.
#:
#: On cartpole-swingup (one seed) it stalls at 75 from 35k to 50k frames, climbs to 165-247 at 65k-95k and ends at 10
#: at 100k (the published Dreamer: 326 at 100k). BENCHMARKS.md, "Dreamer from pixels", has the diagnosis: the
#: open-loop reward prediction is no better than the mean, and the KL sits under the free nats, so the prior gets no
#: gradient.
DREAMER_PIXELS_CPU: dict[str, Any] = dict(
    learning_rate=6e-4,
    actor_learning_rate=3e-4,
    value_learning_rate=3e-4,
    learning_starts=1000,
    train_freq=100,
    gradient_steps=10,
    batch_size=16,
    batch_length=32,
    buffer_size=100_000,
    policy_kwargs=dict(
        stoch_dim=30,
        deter_dim=100,
        hidden_dim=100,
        cnn_depth=16,
        reward_net_arch=[200, 200],
        value_net_arch=[200, 200],
        actor_net_arch=[200, 200],
    ),
)

#: DreamerV3 on a 2-core CPU, the same for every task (vector or pixel observations, ``Box`` or ``Discrete`` actions):
#: the paper's hyperparameters (learning rates, KL balancing, free bits, return normalisation, horizon, discount) with
#: the sizes made smaller, because the paper's ``S`` update (16 x 64 replayed steps, GRU 512, 32 x 32 latents) takes
#: over 10 s on one core and even ``XS`` about 5 s:
#:
#: - the model: GRU 128, one layer of 128 units in every MLP, 16 x 16 categorical latents, CNN depth 16;
#: - batches of 8 sequences of 16 steps (imagination starts from all 128 posterior states, as in the paper);
#: - a replay ratio of 128 replayed steps per env step (the paper's DMC setting: 512), so one update per env step.
#:
#: What sets the compute is the replay ratio times the cost of a replayed step (about 1.4 ms on one core at these
#: widths), not the batch; with the paper's learning rates the actor needs many updates, so small batches and one
#: update per env step learn in fewer env steps than larger batches less often (16 x 32 batches at a ratio of 64,
#: one update every 8 env steps and half this compute, were still at a random policy's return after 5000 env steps on
#: Pendulum-v1; these settings evaluated -188 at 4000).
DREAMER_V3_CPU: dict[str, Any] = dict(
    batch_size=8,
    batch_length=16,
    replay_ratio=128,
    buffer_size=100_000,
    policy_kwargs=dict(size="XS", deter=128, units=128, layers=1, cnn_depth=16, stoch=16, classes=16),
)
