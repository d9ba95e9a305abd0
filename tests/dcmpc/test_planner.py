"""MPPI on toy problems: optimum, batches, policy prior, warm start, seeded repeatability, elite draws."""

from __future__ import annotations

import math

import torch as th

from sb3_worldmodels.dcmpc.planner import MPPIPlanner


# ----------------------------------------------------------------------------------------- MPPI
class PointMass:
    """Toy latent model: x' = x + a, reward -|x' - goal|^2; the best plan walks to the goal."""

    def __init__(self, goal: th.Tensor, prior_action: th.Tensor | None = None):
        self.goal = goal
        self.prior_action = prior_action

    def imagine_step(self, latent, action):
        nxt = latent + action
        return nxt, -((nxt - self.goal) ** 2).sum(-1)

    def policy_prior(self, latent):
        if self.prior_action is None:
            return th.zeros_like(latent)
        return self.prior_action.expand_as(latent)

    def terminal_value(self, latent, generator, action_noise=None):
        return -((latent - self.goal) ** 2).sum(-1)


def test_mppi_finds_the_optimum_of_a_toy_problem():
    th.manual_seed(0)
    goal = th.tensor([0.7, -0.4])
    planner = MPPIPlanner(action_dim=2, plan_horizon=3, mppi_iterations=6, num_samples=512, num_elites=64, num_policy_trajs=24)
    start = th.zeros(1, 2)
    result = planner.plan(PointMass(goal), start, planner.warm_start(None, None, 1, start.device))
    # Reaching the goal in the first step and staying there is optimal: a_0 = goal, a_1 = a_2 = 0.
    assert th.allclose(result.mean[0, 0], goal, atol=0.05)
    assert th.allclose(result.mean[0, 1:], th.zeros(2, 2), atol=0.1)
    assert th.allclose(result.action[0], goal, atol=0.15)
    assert th.all(result.std <= 2.0) and th.all(result.std >= 0.05)


def test_mppi_plans_every_state_of_a_batch_independently():
    th.manual_seed(0)
    goal = th.tensor([0.5])
    planner = MPPIPlanner(action_dim=1, num_samples=256, num_elites=32, num_policy_trajs=8)
    start = th.tensor([[0.0], [0.3], [-0.3]])
    result = planner.plan(PointMass(goal), start, planner.warm_start(None, None, 3, start.device))
    assert th.allclose(result.mean[:, 0, 0], goal - start[:, 0], atol=0.05)


def test_mppi_uses_the_policy_prior():
    th.manual_seed(0)
    goal = th.tensor([0.9])
    planner = MPPIPlanner(
        action_dim=1, plan_horizon=1, mppi_iterations=1, num_samples=16, num_elites=1, num_policy_trajs=1, max_plan_std=0.1
    )
    start = th.zeros(1, 1)
    # The Gaussian samples stay near 0 (std 0.1): only the prior's trajectory reaches the goal.
    result = planner.plan(PointMass(goal, prior_action=goal), start, planner.warm_start(None, None, 1, start.device))
    assert th.allclose(result.action, goal.view(1, 1))


def test_mppi_warm_start_shifts_and_resets():
    planner = MPPIPlanner(action_dim=1, plan_horizon=3)
    previous = th.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    mean = planner.warm_start(previous, th.tensor([False, True]), 2, previous.device)
    assert mean[:, :, 0].tolist() == [[2.0, 3.0, 0.0], [0.0, 0.0, 0.0]]


def test_mppi_is_repeatable_with_a_seeded_generator():
    goal = th.tensor([0.2, 0.1])
    planner = MPPIPlanner(action_dim=2, num_samples=64, num_elites=8, num_policy_trajs=4)
    start = th.zeros(2, 2)
    mean = planner.warm_start(None, None, 2, start.device)
    a = planner.plan(PointMass(goal), start, mean, generator=th.Generator().manual_seed(3))
    b = planner.plan(PointMass(goal), start, mean, generator=th.Generator().manual_seed(3))
    assert th.equal(a.action, b.action) and th.equal(a.mean, b.mean)


def test_mppi_with_a_generator_plans_a_state_as_if_it_were_alone():
    goal = th.tensor([0.4])
    planner = MPPIPlanner(action_dim=1, num_samples=64, num_elites=8, num_policy_trajs=4)
    batch = th.tensor([[0.1], [-0.5], [0.9]])
    together = planner.plan(
        PointMass(goal), batch, planner.warm_start(None, None, 3, batch.device), generator=th.Generator().manual_seed(5)
    )
    for i in range(3):
        alone = planner.plan(
            PointMass(goal),
            batch[i : i + 1],
            planner.warm_start(None, None, 1, batch.device),
            generator=th.Generator().manual_seed(5),
        )
        assert th.allclose(alone.action, together.action[i : i + 1], atol=1e-6)
        assert th.allclose(alone.mean, together.mean[i : i + 1], atol=1e-6)
    # The actions are inside the bounds but not saturated, so the comparison above is not trivially true.
    assert (together.action.abs() < 0.99).all()


def test_mppi_draws_the_acting_elite_by_its_score():
    # The prior's action (1.0) earns 2 ln 3, the Gaussian samples around -0.5 earn 0. With 4 elites and temperature
    # 0.5 the prior's score is 3 / (3 + 1 + 1 + 1) = 0.5: the acting elite is the prior's half of the time.
    class Bandit:
        def imagine_step(self, latent, action):
            return latent, 2 * math.log(3) * (action[:, 0] > 0.9).float()

        def policy_prior(self, latent):
            return th.ones(latent.shape[0], 1)

        def terminal_value(self, latent, generator, action_noise=None):
            return th.zeros(latent.shape[0])

    th.manual_seed(0)
    planner = MPPIPlanner(
        action_dim=1, plan_horizon=1, mppi_iterations=1, num_samples=8, num_elites=4, num_policy_trajs=1, max_plan_std=0.01
    )
    actions = th.cat([planner.plan(Bandit(), th.zeros(1, 1), th.full((1, 1, 1), -0.5)).action for _ in range(1000)])
    frequency = (actions == 1.0).float().mean().item()
    assert abs(frequency - 0.5) < 0.05, frequency
