"""DC-MPC: Discrete Codebook Model Predictive Control (Scannell et al., ICLR 2025, arXiv 2503.00653)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from sb3_worldmodels.accel.cuda_graph import PlanGraph
from sb3_worldmodels.common.base import WorldModelAlgorithm, check_at_least
from sb3_worldmodels.common.buffers import SequenceReplayBuffer, SequenceSamples
from sb3_worldmodels.common.optim import polyak_update
from sb3_worldmodels.common.returns import n_step_targets
from sb3_worldmodels.common.spaces import check_box_action_space, check_vector_observation_space
from sb3_worldmodels.dcmpc.latent import critic_subset
from sb3_worldmodels.dcmpc.policies import DCMPCPolicy, MlpPolicy, MultiInputPolicy

SelfDCMPC = TypeVar("SelfDCMPC", bound="DCMPC")


def _flatten_time(obs: th.Tensor | dict[str, th.Tensor]) -> th.Tensor | dict[str, th.Tensor]:
    """``(B, T, ...) -> (B * T, ...)`` for a tensor or a dict of tensors."""
    if isinstance(obs, dict):
        return {key: value.flatten(0, 1) for key, value in obs.items()}
    return obs.flatten(0, 1)


def _select_time(obs: th.Tensor | dict[str, th.Tensor], index: slice | int):
    """The steps ``index`` of ``(B, T, ...)`` observations. A slice or an int gives a view; a list of indices would
    copy itself to the device first, which makes the host wait for a CUDA device."""
    if isinstance(obs, dict):
        return {key: value[:, index] for key, value in obs.items()}
    return obs[:, index]


class DCMPC(WorldModelAlgorithm):
    """Discrete Codebook Model Predictive Control.

    A world model whose latent state is a discrete FSQ code (a fixed codebook of ``prod(fsq_levels)`` codes
    per latent slot) is trained with a cross-entropy consistency loss on multi-step latent rollouts that
    sample codes with straight-through Gumbel-softmax, plus reward regression. A REDQ ensemble of critics and
    a TD3-style actor are trained on the (detached) codes, and actions come from MPPI planning over expected
    codes with the actor as policy prior.

    Defaults are those of the paper and its official code (DMC "easy" tasks).

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` (Dict observations) or a :class:`DCMPCPolicy` subclass.
    :param env: The environment (or its Gymnasium id).
    :param learning_rate: World-model (encoder, dynamics, reward) learning rate, AdamW (paper: 1e-4).
    :param actor_learning_rate: Actor learning rate, Adam (paper: 3e-4).
    :param critic_learning_rate: Critic learning rate, Adam (paper: 3e-4).
    :param buffer_size: Replay buffer size (paper: 10M).
    :param learning_starts: Random-action steps before learning (paper: 10 episodes, 5000 steps at action repeat 2).
    :param batch_size: Sequences per gradient step (paper: 512).
    :param tau: Polyak coefficient of the target actor and critics (paper: 0.005).
    :param gamma: Discount factor (paper: 0.99).
    :param train_freq: Update the model every ``train_freq`` steps (SB3 semantics).
    :param gradient_steps: Gradient steps per update (paper: UTD 1).
    :param pretrain_gradient_steps: Extra gradient steps at the first update, after the random phase
        (paper: one per seed step; ``None`` means ``learning_starts``).
    :param horizon: World-model training rollout horizon H (paper: 5).
    :param rho: Per-step weight ``rho^t`` of the world-model losses along the rollout (paper: 0.9).
    :param consistency_coef: Weight of the cross-entropy latent consistency loss (paper: 1).
    :param reward_coef: Weight of the reward regression loss (paper: 1).
    :param n_steps: Number of steps of the TD target (paper: 1).
    :param n_critics: Critics in the REDQ ensemble (paper: 5).
    :param n_target_critics: Critics sampled for the target minimum and the actor loss (paper: 2).
    :param policy_delay: The actor is updated every ``policy_delay`` critic updates (paper: 2).
    :param target_policy_noise: Std of the target policy smoothing noise (paper: 0.2).
    :param target_noise_clip: Clip of the target policy smoothing noise (paper: 0.3).
    :param max_grad_norm: Gradient-norm clip of every optimizer (paper: 20).
    :param exploration_noise_start: Initial std of the Gaussian exploration noise (paper: 1.0).
    :param exploration_noise_end: Final std of the exploration noise (paper: 0.1).
    :param exploration_noise_episodes: Episodes over which the std decays linearly (paper: 50 easy, 150 medium, 500 hard).
    :param plan_horizon: MPPI horizon (paper: 3).
    :param mppi_iterations: MPPI iterations (paper: 6).
    :param num_samples: Action sequences per MPPI iteration (paper: 512).
    :param num_elites: MPPI elites (paper: 64).
    :param num_policy_trajs: Sequences from the policy prior (paper: 24).
    :param mppi_temperature: MPPI temperature (paper: 0.5).
    :param min_plan_std: Minimum MPPI std (paper: 0.05).
    :param max_plan_std: Maximum and initial MPPI std (paper: 2).
    :param plan_discount: Discount of rewards along the plan; ``None`` uses ``gamma``. The official code uses ``rho``.
    :param undiscounted_one_step_target: With ``n_steps=1``, bootstrap the TD target without discount,
        ``r + min Q'``, as the official code's n-step helper does (its critics are undiscounted on 18 of its 30 DMC
        tasks); the paper's text and the default discount it, ``r + gamma min Q'``.
    :param reward_bounds: ``(low, high)``: bound the reward head by a tanh onto this range, as the official code does
        (``(0, 2)`` on DMC at action repeat 2); ``None`` (default, the paper's text): unbounded.
    :param shared_prior_noise: Draw the exploration noise of the policy prior's sequences in MPPI once per state and
        step for all of them, as the official code does (they are then copies); by default each has its own draw.
    :param terminal_action_noise: Add that noise to the policy's action valued at the end of each planned sequence,
        as the official code does; by default that action is noise-free.
    :param use_planner: Act with MPPI (``True``) or with the actor alone (``False``, an ablation).
    :param compile_planner: ``torch.compile`` the latent steps MPPI evaluates (dynamics, reward, policy prior); on
        CUDA with ``mode="reduce-overhead"``, which captures them in CUDA graphs (with ``cuda_graph_planner``, mode
        ``"default"`` inside the call's graph). The first planning calls compile.
    :param cuda_graph_planner: On CUDA, capture each non-deterministic planning call whole (encoder, MPPI,
        exploration noise) in a CUDA graph, one per observation batch shape, and replay it
        (:class:`~sb3_worldmodels.dcmpc.policies.PlanGraph`); with ``compile_planner`` the steps inside are compiled
        without graphs of their own. Deterministic planning (evaluation) and planning on the CPU run eagerly.
    :param accel: Fast paths (``sb3_worldmodels.accel``): ``"auto"`` (all), ``"none"`` (the plain code of
        ``dcmpc/latent.py`` and ``common/networks.py``) or a list of names out of ``accel.FAST_PATHS``. The same values
        either way, to float32 rounding; docs/performance.md has what each gives.
    :param action_noise: Extra SB3 action noise added on top (not used by the paper).
    :param mixed_precision: ``None`` (float32, the papers' setting), ``"bf16"`` or ``"fp16"``: autocast for planning /
        acting and for updates (``sb3_worldmodels/common/precision.py``; fp16 adds a gradient scaler).
    :param replay_buffer_class: Replay buffer class; must derive from :class:`SequenceReplayBuffer`.
    :param replay_buffer_kwargs: Its keyword arguments.
    :param policy_kwargs: Keyword arguments of the policy (``latent_dim``, ``fsq_levels``, ``net_arch``, ...).
    :param stats_window_size: Window of the rollout statistics (SB3).
    :param tensorboard_log: TensorBoard log folder (SB3).
    :param verbose: Verbosity (SB3).
    :param seed: Random seed (SB3).
    :param device: Device (SB3).
    :param _init_setup_model: Build the networks at construction (SB3).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DCMPCPolicy
    replay_buffer: SequenceReplayBuffer

    def __init__(
        self,
        policy: str | type[DCMPCPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        actor_learning_rate: float = 3e-4,
        critic_learning_rate: float = 3e-4,
        buffer_size: int = 10_000_000,
        learning_starts: int = 5000,
        batch_size: int = 512,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        pretrain_gradient_steps: int | None = None,
        horizon: int = 5,
        rho: float = 0.9,
        consistency_coef: float = 1.0,
        reward_coef: float = 1.0,
        n_steps: int = 1,
        n_critics: int = 5,
        n_target_critics: int = 2,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.3,
        max_grad_norm: float = 20.0,
        exploration_noise_start: float = 1.0,
        exploration_noise_end: float = 0.1,
        exploration_noise_episodes: int = 50,
        plan_horizon: int = 3,
        mppi_iterations: int = 6,
        num_samples: int = 512,
        num_elites: int = 64,
        num_policy_trajs: int = 24,
        mppi_temperature: float = 0.5,
        min_plan_std: float = 0.05,
        max_plan_std: float = 2.0,
        plan_discount: float | None = None,
        undiscounted_one_step_target: bool = False,
        reward_bounds: tuple[float, float] | None = None,
        shared_prior_noise: bool = False,
        terminal_action_noise: bool = False,
        use_planner: bool = True,
        compile_planner: bool = False,
        cuda_graph_planner: bool = False,
        accel: str | Sequence[str] = "auto",
        action_noise: ActionNoise | None = None,
        mixed_precision: str | None = None,
        replay_buffer_class: type[SequenceReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=action_noise,
            mixed_precision=mixed_precision,
            accel=accel,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
        )
        self.actor_learning_rate = actor_learning_rate
        self.critic_learning_rate = critic_learning_rate
        self.pretrain_gradient_steps = pretrain_gradient_steps
        self.horizon = horizon
        self.rho = rho
        self.consistency_coef = consistency_coef
        self.reward_coef = reward_coef
        self.n_steps = n_steps
        self.n_critics = n_critics
        self.n_target_critics = n_target_critics
        self.policy_delay = policy_delay
        self.target_policy_noise = target_policy_noise
        self.target_noise_clip = target_noise_clip
        self.max_grad_norm = max_grad_norm
        self.exploration_noise_start = exploration_noise_start
        self.exploration_noise_end = exploration_noise_end
        self.exploration_noise_episodes = exploration_noise_episodes
        self.plan_horizon = plan_horizon
        self.mppi_iterations = mppi_iterations
        self.num_samples = num_samples
        self.num_elites = num_elites
        self.num_policy_trajs = num_policy_trajs
        self.mppi_temperature = mppi_temperature
        self.min_plan_std = min_plan_std
        self.max_plan_std = max_plan_std
        self.plan_discount = plan_discount
        self.undiscounted_one_step_target = undiscounted_one_step_target
        self.reward_bounds = reward_bounds
        self.shared_prior_noise = shared_prior_noise
        self.terminal_action_noise = terminal_action_noise
        self.use_planner = use_planner
        self.compile_planner = compile_planner
        self.cuda_graph_planner = cuda_graph_planner
        if _init_setup_model:
            self._setup_model()

    # ----------------------------------------------------------------- set-up
    @classmethod
    def _check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        check_box_action_space(action_space, cls.__name__)
        check_vector_observation_space(observation_space, cls.__name__)

    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        if policy_name == "CnnPolicy":
            raise ValueError(
                "DC-MPC takes vector observations (a Box, or a Dict of them with MultiInputPolicy), as in its paper; "
                'it has no CnnPolicy. For images use Dreamer("CnnPolicy", ...).'
            )
        return super()._get_policy_from_name(policy_name)

    def _setup_model(self) -> None:
        check_at_least(
            "DCMPC", 1, horizon=self.horizon, n_steps=self.n_steps, plan_horizon=self.plan_horizon,
            mppi_iterations=self.mppi_iterations, n_critics=self.n_critics, policy_delay=self.policy_delay,
        )  # fmt: skip
        if self.n_target_critics > self.n_critics:
            raise ValueError(f"n_target_critics ({self.n_target_critics}) must not exceed n_critics ({self.n_critics})")
        self.policy_kwargs = dict(self.policy_kwargs)
        self.policy_kwargs.update(
            n_critics=self.n_critics,
            # getattr: checkpoints saved before these options existed
            reward_bounds=getattr(self, "reward_bounds", None),
            actor_learning_rate=self.actor_learning_rate,
            critic_learning_rate=self.critic_learning_rate,
            planner_kwargs=dict(
                plan_horizon=self.plan_horizon,
                mppi_iterations=self.mppi_iterations,
                num_samples=self.num_samples,
                num_elites=self.num_elites,
                num_policy_trajs=self.num_policy_trajs,
                mppi_temperature=self.mppi_temperature,
                min_plan_std=self.min_plan_std,
                max_plan_std=self.max_plan_std,
                plan_discount=self.gamma if self.plan_discount is None else self.plan_discount,
                shared_prior_noise=getattr(self, "shared_prior_noise", False),
                terminal_action_noise=getattr(self, "terminal_action_noise", False),
            ),
        )
        # SB3 reads `n_steps` to build its own n-step buffer; DC-MPC computes n-step targets from sequences instead.
        n_steps, self.n_steps = self.n_steps, 1
        super()._setup_model()
        self.n_steps = n_steps
        # getattr: checkpoints saved before the option existed
        self.policy.cuda_graph_planner = bool(getattr(self, "cuda_graph_planner", False))
        self.policy.plan_graph_class = PlanGraph
        if self.compile_planner:
            self.policy.compile_planner()
        self._n_critic_updates = getattr(self, "_n_critic_updates", 0)
        self._pretrained = getattr(self, "_pretrained", False)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.world_model_optimizer", "policy.critic_optimizer", "policy.actor_optimizer"]
        return state_dicts, []

    def learn(
        self: SelfDCMPC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DCMPC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDCMPC:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    # -------------------------------------------------------------- exploration
    @property
    def exploration_std(self) -> float:
        """Std of the Gaussian exploration noise: linear decay over ``exploration_noise_episodes`` (DC-MPC Sec. 4)."""
        fraction = min(self._learning_episodes / max(self.exploration_noise_episodes, 1), 1.0)
        return self.exploration_noise_start + fraction * (self.exploration_noise_end - self.exploration_noise_start)

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        obs_tensor, _ = self.policy.obs_to_tensor(self._last_obs)
        if self.use_planner:
            previous = None if self._acting_state is None else th.as_tensor(self._acting_state[0], device=self.device)
            starts = None if self._episode_starts is None else th.as_tensor(self._episode_starts, device=self.device)
            result = self.policy.plan(obs_tensor, previous, starts, deterministic=False, exploration_std=self.exploration_std)
            self._acting_state = (result.mean.cpu().numpy(),)
            self._acting_stats = {
                "planner/elite_value": result.elite_value.mean(),
                "planner/std": result.std.mean(),
                "planner/std_first_action": result.std[:, 0].mean(),
            }
            scaled_action = result.action.cpu().numpy()
        else:
            with th.no_grad():
                action = self.policy.act(self.policy.encode(obs_tensor))
                action = (action + self.exploration_std * th.randn_like(action)).clamp(-1, 1)
            scaled_action = action.cpu().numpy()
        if action_noise is not None:
            scaled_action = np.clip(scaled_action + np.reshape(action_noise(), (1, -1)), -1, 1)
        # In the action space's own shape (a multi-dimensional Box, as SB3's algorithms take).
        scaled_action = scaled_action.reshape(n_envs, *self.action_space.shape)
        return self.policy.unscale_action(scaled_action), scaled_action

    # ------------------------------------------------------------------ training
    @property
    def sequence_length(self) -> int:
        # The world model is rolled out `horizon` steps; the TD targets look `n_steps` ahead.
        return max(self.horizon, self.n_steps)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if not self._ready_to_train():
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.world_model_optimizer)
        if not self._pretrained:
            # DC-MPC pretrains on the seed data: one update per random step before the first regular update.
            pretrain = self.learning_starts if self.pretrain_gradient_steps is None else self.pretrain_gradient_steps
            gradient_steps += pretrain
            self._pretrained = True
        seq_len = self.sequence_length
        stats: dict[str, list[th.Tensor]] = {}
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample_sequences(batch_size, seq_len, env=self._vec_normalize_env)
            with self._autocast():
                step_stats = self._update_world_model(data)
                critic_stats, codes = self._update_critics(data)
                step_stats.update(critic_stats)
                self._n_critic_updates += 1
                actor_updated = self._n_critic_updates % self.policy_delay == 0
                if actor_updated:
                    step_stats.update(self._update_actor(codes))
            # The target critics follow every critic update, the target actor only the (delayed) actor updates, as
            # in TD3 and the official DC-MPC; one fused call either way.
            policy = self.policy
            online, target = [*policy.critics.parameters()], [*policy.critics_target.parameters()]
            if actor_updated:
                online += policy.actor.parameters()
                target += policy.actor_target.parameters()
            polyak_update(online, target, self.tau)
            for key, value in step_stats.items():
                stats.setdefault(key, []).append(value.detach())
        self._n_updates += gradient_steps
        self._record_means(stats)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/exploration_std", self.exploration_std)

    def _update_world_model(self, data: SequenceSamples) -> dict[str, th.Tensor]:
        """Cross-entropy latent consistency + reward regression over an H-step latent rollout (DC-MPC eq. 5)."""
        policy, latent, H = self.policy, self.policy.latent, self.horizon
        batch_size = data.actions.shape[0]
        codes = policy.encode(_select_time(data.observations, 0))
        with th.no_grad():
            # Targets: FSQ indices of the next observations under the same (online) encoder.
            next_obs = _flatten_time(_select_time(data.observations, slice(1, H + 1)))
            target_idx = policy.code_indices(policy.encode(next_obs)).view(batch_size, H, policy.latent_dim)
            # Transitions after the end of the first one's episode (padding) do not count.
            alive = data.mask[:, :H]
            # Gumbel noise for the whole rollout at once (the last step samples nothing).
            gumbel = latent.gumbel_noise(latent.noise_shape(max(H - 1, 1), batch_size), self.device)
        head = latent.output_layer(policy.dynamics[-1])  # computed once for the whole rollout
        first_codes = codes
        consistency_loss = reward_loss = th.zeros((), device=self.device)
        for t in range(H):
            action = data.actions[:, t]
            log_probs = latent.log_probs(policy.dynamics_logits(codes, action, head))
            ce = latent.consistency_loss(log_probs, target_idx[:, t])  # eq. 3
            reward_error = (policy.predict_reward(codes, action) - data.rewards[:, t]) ** 2
            weight = self.rho**t
            consistency_loss = consistency_loss + weight * (alive[:, t] * ce).mean()
            reward_loss = reward_loss + weight * (alive[:, t] * reward_error).mean()
            if t < H - 1:
                codes = latent.sample(log_probs, gumbel[t])  # straight-through Gumbel-softmax, temperature 1
        consistency_loss, reward_loss = consistency_loss / H, reward_loss / H
        loss = self.consistency_coef * consistency_loss + self.reward_coef * reward_loss
        grad_norm = self._clip_and_step(policy.world_model_optimizer, loss, self.max_grad_norm)
        with th.no_grad():
            idx = policy.code_indices(first_codes.detach()).flatten()
            # A histogram of the codes (a one-hot matrix of 262,144 x 15 at the paper's sizes took 5% of an update).
            counts = th.zeros(policy.quantizer.codebook_size, device=idx.device).scatter_add_(
                0, idx, th.ones_like(idx, dtype=th.float32)
            )
            probs = counts / counts.sum()
            perplexity = th.exp(-(probs * th.log(probs.clamp(min=1e-12))).sum())
        return {
            "world_model/consistency_loss": consistency_loss.detach(),
            "world_model/reward_loss": reward_loss.detach(),
            "world_model/loss": loss.detach(),
            "world_model/grad_norm": grad_norm,
            "world_model/codebook_usage": (counts > 0).float().mean(),
            "world_model/codebook_perplexity": perplexity,
        }

    def _random_critics(self) -> th.Tensor:
        return critic_subset(self.n_critics, self.n_target_critics, self.device)

    def _update_critics(self, data: SequenceSamples) -> tuple[dict[str, th.Tensor], th.Tensor]:
        """REDQ TD learning on the code of the first step with an n-step target (DC-MPC Sec. 3.2)."""
        policy, n = self.policy, self.n_steps
        with th.no_grad():
            both = _flatten_time(_select_time(data.observations, slice(0, n + 1, n)))  # steps 0 and n
            codes, next_codes = policy.encode(both).view(-1, 2, policy.code_dim).unbind(dim=1)
            noise = (self.target_policy_noise * th.randn_like(data.actions[:, 0])).clamp(
                -self.target_noise_clip, self.target_noise_clip
            )
            next_action = (policy.act(next_codes, target=True) + noise).clamp(-1, 1)
            next_q = policy.q_values(next_codes, next_action, target=True, members=self._random_critics()).min(dim=0).values
            undiscounted = n == 1 and getattr(self, "undiscounted_one_step_target", False)
            # A sequence whose episode ends within n steps bootstraps from its true last next observation, which
            # the padding repeats at step n.
            target_q = n_step_targets(
                data.rewards[:, :n],
                data.terminations[:, :n],
                next_q,
                self.gamma,
                1.0 if undiscounted else None,
                mask=data.mask[:, :n],
            )
        q_values = policy.q_values(codes, data.actions[:, 0])
        critic_loss = F.mse_loss(q_values, target_q.unsqueeze(0).expand_as(q_values))
        grad_norm = self._clip_and_step(policy.critic_optimizer, critic_loss, self.max_grad_norm)
        stats = {
            "train/critic_loss": critic_loss.detach(),
            "train/q_mean": q_values.detach().mean(),
            "train/critic_grad_norm": grad_norm,
        }
        return stats, codes

    def _update_actor(self, codes: th.Tensor) -> dict[str, th.Tensor]:
        """TD3-style deterministic policy gradient through the average of two random critics, on detached codes."""
        policy = self.policy
        policy.critics.requires_grad_(False)
        q_values = policy.q_values(codes, policy.act(codes), members=self._random_critics())
        actor_loss = -q_values.mean()
        self._clip_and_step(policy.actor_optimizer, actor_loss, self.max_grad_norm)
        policy.critics.requires_grad_(True)
        return {"train/actor_loss": actor_loss.detach()}

    # ---------------------------------------------------------------- diagnostics
    @th.no_grad()
    def prediction_errors(self, n_sequences: int, horizon: int) -> dict[str, th.Tensor]:
        """Open-loop prediction error of the world model against the horizon, on sequences from the replay buffer.

        From the code of ``o_0`` the dynamics are rolled out with the stored actions and expected codes (as when
        planning); step ``k`` is compared with the code of ``o_k``.

        :return: ``code_accuracy`` (fraction of latent slots whose most likely code is the true one), ``latent_mse``
            (expected code against the true code) and ``reward_mse``, each of shape ``(horizon,)``; steps after the end
            of a sequence's episode are left out.
        """
        policy = self.policy
        data = self.replay_buffer.sample_sequences(n_sequences, horizon, env=self._vec_normalize_env)
        true_codes = policy.encode(_flatten_time(data.observations)).view(n_sequences, horizon + 1, -1)
        codes = true_codes[:, 0]
        accuracy, latent_mse, reward_mse = [], [], []
        latent, head = policy.latent, policy.latent.output_layer(policy.dynamics[-1])

        def mean(values: th.Tensor, t: int) -> th.Tensor:
            return (values * data.mask[:, t]).sum() / data.mask[:, t].sum().clamp(min=1)

        for t in range(horizon):
            logits = policy.dynamics_logits(codes, data.actions[:, t], head)
            reward_mse.append(mean((policy.predict_reward(codes, data.actions[:, t]) - data.rewards[:, t]) ** 2, t))
            codes = latent.expected_code(logits)
            target = true_codes[:, t + 1]
            accuracy.append(mean((latent.most_likely_code(logits) == policy.code_indices(target)).float().mean(1), t))
            latent_mse.append(mean(((codes - target) ** 2).mean(1), t))
        return {"code_accuracy": th.stack(accuracy), "latent_mse": th.stack(latent_mse), "reward_mse": th.stack(reward_mse)}
