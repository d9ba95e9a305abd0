"""Learning tests: small explicit configurations must beat what a random policy reaches, on CPU, in minutes."""

from __future__ import annotations

import gymnasium as gym
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_worldmodels import DCMPC, Dreamer
from sb3_worldmodels.presets import DCMPC_PENDULUM_SAMPLE_EFFICIENT, DREAMER_PENDULUM_SAMPLE_EFFICIENT

# A uniformly random policy scores about -1200 on Pendulum-v1 (-1100 to -1450 over 5 episodes).
RANDOM_POLICY_RETURN = -1200.0


# Like every test these run with one thread (conftest.py): pytest-xdist runs two tests at a time on CI's 2 cores, and
# at these network sizes a second thread made a run no faster (BENCHMARKS.md, "Quickstart and test suite wall-clock").


@pytest.mark.slow
def test_dcmpc_learns_pendulum():
    # The sample-efficient preset (4 updates per env step) swings up within about 1000-1250 env steps on every seed
    # measured (BENCHMARKS.md, "DC-MPC vs SAC on Pendulum-v1"): at 1250 steps its evaluations were -120 to -189 on
    # seven runs, far from the threshold. The CPU preset's 2500-step test it replaces sat at the edge of its learning
    # curve (-163 to -571 over three seeds there), so that a change of float rounding alone could fail it.
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **DCMPC_PENDULUM_SAMPLE_EFFICIENT)
    model.learn(1250)
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=123)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    assert mean > -400.0, f"mean evaluation return {mean:.0f} after 1250 steps (random policy: {RANDOM_POLICY_RETURN:.0f})"


@pytest.mark.slow
def test_dreamer_reconstruction_loss_falls_on_pixel_dm_control():
    from conftest import make_pixel_cartpole

    from sb3_worldmodels import Dreamer

    kwargs = dict(
        learning_starts=150,
        train_freq=150,
        gradient_steps=0,  # collect only; the updates are made below
        batch_size=8,
        batch_length=10,
        policy_kwargs=dict(stoch_dim=8, deter_dim=32, hidden_dim=32, cnn_depth=8, reward_net_arch=[32]),
    )
    model = Dreamer("CnnPolicy", make_pixel_cartpole(), seed=0, **kwargs)
    model.learn(150)
    losses = []
    for _ in range(60):
        stats, _ = model._update_world_model(model.replay_buffer.sample_sequences(8, 9))
        # The squared error of the reconstruction: the Gaussian log-likelihood without its constant.
        losses.append(stats["world_model/image_mse"].item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"reconstruction squared error {first:.4f} -> {last:.4f}"


@pytest.mark.slow
def test_dreamer_swings_up_pendulum_and_holds_it():
    # The sample-efficient preset (10 updates every 25 env steps, free nats 0 and an entropy term; presets.py says why).
    # Other float rounding (another CPU) gives another run, like another seed, so the budget sits where every seed of
    # the benchmark holds a swing-up: at 7000 env steps all 5 were at -85 to -211 over 10 episodes, and at 8000 and
    # 10,000 too, while one seed dipped below -400 at 6000 and another at 9000 (BENCHMARKS.md, "Dreamer vs SAC on
    # Pendulum-v1"). The fast preset, at half the updates per env step, had only 4 seeds of 5 past -400 at 10,000
    # steps. Uniformly random actions score -1240 to -1360 here.
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=3, **DREAMER_PENDULUM_SAMPLE_EFFICIENT)
    model.learn(7000)
    eval_env = gym.make("Pendulum-v1")
    eval_env.reset(seed=123)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    assert mean > -400.0, f"mean evaluation return {mean:.0f} after 7000 steps: no swing-up that holds"
