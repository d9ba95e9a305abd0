"""MPPI planning in a learned latent space (DC-MPC Sec. 3.3, following TD-MPC / TD-MPC2)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch as th

from sb3_worldmodels.common.precision import no_autocast


class LatentModel(Protocol):
    """What the planner needs from a world model; every call is batched over the leading dimension."""

    def imagine_step(self, latent: th.Tensor, action: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Next latent and predicted reward ``(batch,)``."""

    def policy_prior(self, latent: th.Tensor) -> th.Tensor:
        """Action of the policy prior in [-1, 1]."""

    def terminal_value(
        self, latent: th.Tensor, generator: th.Generator | None, action_noise: th.Tensor | None = None
    ) -> th.Tensor:
        """Value ``(batch,)`` of a latent at the end of the planning horizon; ``action_noise`` (broadcast to the
        actions) is added to the policy's action there."""


def noise_is_drawn(std: float | th.Tensor) -> bool:
    """Whether noise of std ``std`` is drawn: a float only above 0; a 0-d tensor (an input of a CUDA graph of the
    planning call, whose value changes between replays) always."""
    return isinstance(std, th.Tensor) or std > 0


class PlanResult(NamedTuple):
    """Output of one planning call for ``E`` states.

    :param action: First action of the chosen plan, ``(E, A)`` in [-1, 1].
    :param mean: Final MPPI mean, ``(E, horizon, A)``: the warm start of the next step once shifted.
    :param std: Final MPPI standard deviation, ``(E, horizon, A)``.
    :param elite_value: Mean value of the elites at the last iteration, ``(E,)``.
    """

    action: th.Tensor
    mean: th.Tensor
    std: th.Tensor
    elite_value: th.Tensor


class MPPIPlanner:
    """Model Predictive Path Integral control with a policy prior.

    Each iteration evaluates ``num_samples`` action sequences (``num_policy_trajs`` of them rolled out by
    the policy prior, the rest drawn from a Gaussian), keeps the ``num_elites`` best, and refits the
    Gaussian to them with weights ``exp(temperature * (value - max value))``.

    :param action_dim: Dimension of the action space.
    :param plan_horizon: Planning horizon (DC-MPC: 3).
    :param mppi_iterations: MPPI iterations (6).
    :param num_samples: Action sequences evaluated per iteration, policy ones included (512).
    :param num_elites: Elites kept per iteration (64).
    :param num_policy_trajs: Sequences rolled out by the policy prior (24).
    :param mppi_temperature: Temperature of the elite weights (0.5).
    :param min_plan_std: Lower bound of the sampling std (0.05).
    :param max_plan_std: Upper bound and initial value of the sampling std (2.0).
    :param plan_discount: Discount of predicted rewards along the plan (DC-MPC's official code uses rho = 0.9; the
        algorithm passes gamma by default).
    :param shared_prior_noise: Draw the policy prior's noise once per state and step for all its sequences, as the
        official DC-MPC code does (its sequences are then copies of one another); by default each sequence has its own.
    :param terminal_action_noise: Add the policy prior's noise to the policy's action at the end of the horizon too,
        one draw per state shared by all sequences, as the official code does; by default that action is noise-free.
    """

    def __init__(
        self,
        action_dim: int,
        plan_horizon: int = 3,
        mppi_iterations: int = 6,
        num_samples: int = 512,
        num_elites: int = 64,
        num_policy_trajs: int = 24,
        mppi_temperature: float = 0.5,
        min_plan_std: float = 0.05,
        max_plan_std: float = 2.0,
        plan_discount: float = 0.99,
        shared_prior_noise: bool = False,
        terminal_action_noise: bool = False,
    ):
        if not 0 < num_elites <= num_samples:
            raise ValueError(f"num_elites must be in (0, num_samples={num_samples}], got {num_elites}")
        if not 0 <= num_policy_trajs < num_samples:
            raise ValueError(f"num_policy_trajs must be in [0, num_samples={num_samples}), got {num_policy_trajs}")
        self.action_dim = action_dim
        self.plan_horizon = plan_horizon
        self.mppi_iterations = mppi_iterations
        self.num_samples = num_samples
        self.num_elites = num_elites
        self.num_policy_trajs = num_policy_trajs
        self.mppi_temperature = mppi_temperature
        self.min_plan_std = min_plan_std
        self.max_plan_std = max_plan_std
        self.plan_discount = plan_discount
        self.shared_prior_noise = shared_prior_noise
        self.terminal_action_noise = terminal_action_noise

    def warm_start(
        self, previous_mean: th.Tensor | None, episode_start: th.Tensor | None, n_states: int, device: th.device
    ) -> th.Tensor:
        """Initial mean: the previous mean shifted by one step, zero for new episodes (or without a previous mean)."""
        mean = th.zeros(n_states, self.plan_horizon, self.action_dim, device=device)
        if previous_mean is not None:
            mean[:, :-1] = previous_mean[:, 1:]
            if episode_start is not None:
                mean = mean * (~episode_start).to(mean.dtype).view(-1, 1, 1)
        return mean

    def rollout(self, model: LatentModel, latent: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, float]:
        """Final latents, discounted predicted returns and the discount of the terminal value of action sequences.

        :param latent: Start latents, one per sequence, ``(batch, D)``.
        :param actions: Action sequences ``(batch, horizon, A)``.
        :return: Latents after ``horizon`` steps ``(batch, D)``, returns ``(batch,)`` and ``discount ** horizon``.
        """
        returns = th.zeros(latent.shape[0], device=latent.device)
        discount = 1.0
        for t in range(self.plan_horizon):
            latent, reward = model.imagine_step(latent, actions[:, t])
            returns = returns + discount * reward
            discount *= self.plan_discount
        return latent, returns, discount

    @th.no_grad()
    def plan(
        self,
        model: LatentModel,
        latent: th.Tensor,
        mean: th.Tensor,
        policy_noise_std: float | th.Tensor = 0.0,
        generator: th.Generator | None = None,
    ) -> PlanResult:
        """Plan from ``E`` start latents ``(E, D)`` with initial mean ``(E, horizon, A)``.

        :param policy_noise_std: Std of the Gaussian noise on the policy prior's actions (drawn as :func:`noise_is_drawn`
            says).
        """
        n_states, device = latent.shape[0], latent.device
        H, N, P, K, A = self.plan_horizon, self.num_samples, self.num_policy_trajs, self.num_elites, self.action_dim
        actions = th.empty(n_states, N, H, A, device=device)
        # The policy prior's sequences: the actor rolled out in the model (with exploration noise while training).
        z = latent.repeat_interleave(P, dim=0)
        noisy = noise_is_drawn(policy_noise_std)
        for t in range(H if P > 0 else 0):
            prior = model.policy_prior(z)
            if noisy:
                shape = (n_states, 1, A) if self.shared_prior_noise else (n_states, P, A)
                noise = th.randn(shape, device=device, generator=generator).expand(n_states, P, A).reshape(-1, A)
                prior = prior + policy_noise_std * noise
            prior = prior.clamp(-1, 1)
            actions[:, :P, t] = prior.view(n_states, P, A)
            if t < H - 1:
                z, _ = model.imagine_step(z, prior)
        flat_latent = latent.repeat_interleave(N, dim=0)  # samples of a state are contiguous
        std = th.full_like(mean, self.max_plan_std)
        rows = th.arange(n_states, device=device).unsqueeze(1)
        # With a generator (repeatable planning) every state of the batch gets the same noise, so that a state's plan
        # does not depend on the other states of the batch; otherwise the states are planned with independent noise.
        noise_rows = 1 if generator is not None else n_states
        for _ in range(self.mppi_iterations):
            noise = th.randn((noise_rows, N - P, H, A), device=device, generator=generator)
            actions[:, P:] = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
            final, returns, discount = self.rollout(model, flat_latent, actions.reshape(-1, H, A))
            terminal_noise = None
            if self.terminal_action_noise and noisy:  # one draw per state, for all its sequences
                terminal_noise = policy_noise_std * th.randn((n_states, 1, A), device=device, generator=generator)
                terminal_noise = terminal_noise.expand(n_states, N, A).reshape(-1, A)
            value = (returns + discount * model.terminal_value(final, generator, terminal_noise)).view(n_states, N)
            value = th.nan_to_num(value, nan=0.0)
            elite_value, elite_idx = th.topk(value, K, dim=1)
            elite_actions = actions[rows, elite_idx]  # (E, K, H, A)
            score = th.softmax(self.mppi_temperature * elite_value, dim=1)  # = exp(T (v - max)) normalised
            with no_autocast(device):  # the sampling distribution stays in float32 under mixed precision
                mean = th.einsum("ek,ekha->eha", score, elite_actions)
                variance = th.einsum("ek,ekha->eha", score, (elite_actions - mean.unsqueeze(1)) ** 2)
            std = variance.sqrt().clamp(self.min_plan_std, self.max_plan_std)
        # Act with one elite drawn by its score (DC-MPC, TD-MPC2), not with the mean.
        # Inverse-CDF draw, with one uniform shared by the batch when a generator is given (as the noise above).
        uniform = th.rand((noise_rows, 1), device=device, generator=generator)
        chosen = (score.cumsum(dim=1) < uniform).sum(dim=1).clamp_(max=K - 1)
        action = elite_actions[th.arange(n_states, device=device), chosen, 0]
        return PlanResult(action=action, mean=mean, std=std, elite_value=elite_value.mean(dim=1))
