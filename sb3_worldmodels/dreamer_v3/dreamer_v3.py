"""DreamerV3 as an SB3 algorithm (Hafner et al., *Mastering Diverse Domains through World Models*, arXiv 2301.04104v1)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from sb3_worldmodels.common.base import WorldModelAlgorithm, check_at_least
from sb3_worldmodels.common.buffers import SequenceReplayBuffer, SequenceSamples, observed_mask
from sb3_worldmodels.common.spaces import DISCRETE_OBSERVATIONS, check_box_action_space, check_not_empty
from sb3_worldmodels.dreamer.dreamer import actions_to_take, open_loop_errors, previous_actions
from sb3_worldmodels.dreamer.policies import is_image, observation_parts
from sb3_worldmodels.dreamer_v3.behavior import (
    Trajectory,
    actor_loss,
    critic_loss,
    imagine,
    imagined_weights,
    returns_and_values,
    update_slow_critic,
)
from sb3_worldmodels.dreamer_v3.policies import CnnPolicy, DreamerV3Policy, MlpPolicy, MultiInputPolicy
from sb3_worldmodels.dreamer_v3.rssm import RSSMState

SelfDreamerV3 = TypeVar("SelfDreamerV3", bound="DreamerV3")

#: The longest period, in vec env steps, searched for a schedule that carries out a replay ratio exactly (the paper's
#: ratios, 32 to 1024 with its 16 x 64 batches, need periods of 1 to 32); a ratio with none gets the closest such
#: schedule, or one update every ``round(1 / updates per vec env step)`` steps when that is longer (and a warning when
#: it is 1% or more off).
MAX_REPLAY_PERIOD = 64


class DreamerV3(WorldModelAlgorithm):
    """DreamerV3: a world model with categorical latents trained on replayed sequences, and an actor-critic trained on
    imagined trajectories with normalised returns, one set of hyperparameters for every domain.

    Defaults are the paper's (its DMC settings: model size S, replay ratio 512).

    :param policy: ``"MlpPolicy"`` (vectors), ``"CnnPolicy"`` (square images), ``"MultiInputPolicy"`` (Dict) or a class.
    :param env: The environment (or its Gymnasium id).
    :param learning_rate: World-model learning rate (1e-4).
    :param actor_learning_rate: Actor learning rate (3e-5).
    :param critic_learning_rate: Critic learning rate (3e-5).
    :param buffer_size: Replay buffer size (1e6).
    :param learning_starts: Agent steps of random actions before learning (the paper starts at once; 1024 fills one
        batch's worth of steps).
    :param batch_size: Sequences per update (16).
    :param batch_length: Observations per sequence (64).
    :param replay_ratio: Replayed steps per env step (paper, DMC: 512): one update replays ``batch_size *
        batch_length`` steps, so the algorithm updates every ``batch_size * batch_length / replay_ratio`` steps of
        all envs together. Sets SB3's ``train_freq`` and ``gradient_steps`` unless they are given: the shortest
        period (in vec env steps) that gives the ratio exactly (:meth:`replay_schedule`), derived again for the
        number of envs of the env a model is loaded with.
    :param train_freq: SB3's schedule instead of ``replay_ratio``: train every ``train_freq`` steps of the vec env.
    :param gradient_steps: With ``train_freq``: updates per training call (``-1``: one per collected transition).
    :param gamma: Discount (``1 - 1/333``).
    :param lambda_: Lambda of the lambda-returns (0.95).
    :param imagination_horizon: Length of imagined trajectories (15).
    :param entropy_scale: Weight of the actor's entropy (3e-4).
    :param slow_critic_fraction: Share of the critic mixed into its slow copy after each update (0.02).
    :param free_bits: Nats per step below which the KL terms give no gradient (1). Observations that carry little
        information (a few state values) can need less than that per step, and then the prior gets no KL gradient.
    :param model_max_grad_norm: Gradient-norm clip of the world model (1000).
    :param actor_critic_max_grad_norm: Gradient-norm clip of the actor and the critic (100).
    :param mixed_precision: ``None`` (float32), ``"bf16"`` or ``"fp16"``.
    :param accel: Fast paths (``sb3_worldmodels.accel``): ``"auto"`` (all), ``"none"`` or a list of names; they
        compute DreamerV3's linear and convolution layers faster on a CPU, with the same values.
    :param replay_buffer_class: Must derive from :class:`SequenceReplayBuffer`.
    :param replay_buffer_kwargs: Its keyword arguments.
    :param policy_kwargs: Options of :class:`DreamerV3Policy` (``size``, layer sizes).
    :param stats_window_size: Window of the rollout statistics (SB3).
    :param tensorboard_log: TensorBoard log folder (SB3).
    :param verbose: Verbosity (SB3).
    :param seed: Random seed (SB3).
    :param device: Device (SB3).
    :param _init_setup_model: Build the networks at construction (SB3).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DreamerV3Policy
    unsupported_policy_kwargs: ClassVar[dict[str, str]] = {
        "features_extractor_class": "DreamerV3's encoders are part of its world model; size them with size, units, "
        "layers and cnn_depth.",
        "features_extractor_kwargs": "see features_extractor_class.",
        "net_arch": "DreamerV3 sizes every MLP alike: use size (XS, S, M, L, XL), units and layers.",
    }

    def __init__(
        self,
        policy: str | type[DreamerV3Policy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        actor_learning_rate: float = 3e-5,
        critic_learning_rate: float = 3e-5,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1024,
        batch_size: int = 16,
        batch_length: int = 64,
        replay_ratio: float = 512.0,
        train_freq: int | tuple[int, str] | None = None,
        gradient_steps: int | None = None,
        gamma: float = 1 - 1 / 333,
        lambda_: float = 0.95,
        imagination_horizon: int = 15,
        entropy_scale: float = 3e-4,
        slow_critic_fraction: float = 0.02,
        free_bits: float = 1.0,
        model_max_grad_norm: float = 1000.0,
        actor_critic_max_grad_norm: float = 100.0,
        action_noise: ActionNoise | None = None,
        mixed_precision: str | None = None,
        accel: str | Sequence[str] = "auto",
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
        if not (replay_ratio > 0 and math.isfinite(replay_ratio)):
            raise ValueError(f"replay_ratio must be a finite number > 0, got {replay_ratio}")
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            0.0,  # tau: the slow critic is mixed by slow_critic_fraction
            gamma,
            1 if train_freq is None else train_freq,
            1 if gradient_steps is None else gradient_steps,
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
        self.actor_learning_rate, self.critic_learning_rate = actor_learning_rate, critic_learning_rate
        self.batch_length, self.replay_ratio = batch_length, replay_ratio
        self.lambda_, self.imagination_horizon = lambda_, imagination_horizon
        self.entropy_scale, self.slow_critic_fraction = entropy_scale, slow_critic_fraction
        if not (free_bits >= 0 and math.isfinite(free_bits)):
            raise ValueError(f"free_bits must be a finite number >= 0, got {free_bits}")
        self.free_bits = free_bits
        self.model_max_grad_norm, self.actor_critic_max_grad_norm = model_max_grad_norm, actor_critic_max_grad_norm
        #: Whether ``train_freq`` and ``gradient_steps`` come from ``replay_ratio`` (derived for the number of envs at
        #: set-up, so also when a model is loaded with another number of envs) rather than being SB3's, as given.
        self.schedule_from_replay_ratio = train_freq is None and gradient_steps is None
        if _init_setup_model:
            self._setup_model()

    @staticmethod
    def replay_schedule(
        replay_ratio: float, batch_size: int, batch_length: int, n_envs: int, max_period: int = MAX_REPLAY_PERIOD
    ) -> tuple[int, int]:
        """SB3's ``(train_freq, gradient_steps)`` for ``replay_ratio`` replayed steps per env step: every
        ``train_freq`` steps of the vec env (``n_envs`` env steps each), ``gradient_steps`` updates of
        ``batch_size * batch_length`` replayed steps. The shortest period up to ``max_period`` vec env steps that
        gives the ratio exactly, or else the closest; below one update per ``max_period`` steps, one update every
        ``round(1 / updates per vec env step)`` steps."""
        updates_per_vec_step = Fraction(float(replay_ratio)) * n_envs / (batch_size * batch_length)
        if updates_per_vec_step * max_period < 1:  # less than one update per period: one every so many steps
            return max(round(1 / updates_per_vec_step), 1), 1
        best: tuple[float, int, int] | None = None
        for period in range(1, max_period + 1):
            updates = max(round(updates_per_vec_step * period), 1)
            error = abs(updates / period - updates_per_vec_step) / updates_per_vec_step
            if best is None or error < best[0]:
                best = (error, period, updates)
            if error == 0:
                break
        _, period, updates = best
        return period, updates

    def _derived_schedule(self, n_envs: int) -> tuple[int, int] | None:
        if not getattr(self, "schedule_from_replay_ratio", False):  # False in checkpoints saved before it existed
            return None
        train_freq, gradient_steps = self.replay_schedule(self.replay_ratio, self.batch_size, self.batch_length, n_envs)
        actual = gradient_steps * self.batch_size * self.batch_length / (train_freq * n_envs)
        if abs(actual - self.replay_ratio) >= 0.01 * self.replay_ratio:
            warnings.warn(
                f"DreamerV3: replay_ratio={self.replay_ratio} with batches of {self.batch_size} x {self.batch_length} and "
                f"{n_envs} env(s) has no exact schedule; it replays {actual:.4g} steps per env step ({gradient_steps} "
                f"update(s) every {train_freq} vec env steps).",
                stacklevel=2,
            )
        return train_freq, gradient_steps

    # ----------------------------------------------------------------- set-up
    @classmethod
    def _check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not isinstance(action_space, spaces.Discrete):
            if not isinstance(action_space, spaces.Box):
                raise ValueError(f"DreamerV3 supports Box and Discrete action spaces, got {action_space}.")
            check_box_action_space(action_space, cls.__name__)
        supported = (
            "a vector Box, a square image Box (uint8, a power of 2 in size), a Discrete, MultiDiscrete or MultiBinary "
            "(one-hot encoded), or a Dict of those"
        )
        if not isinstance(observation_space, (spaces.Box, spaces.Dict, *DISCRETE_OBSERVATIONS)):
            raise ValueError(f"DreamerV3 supports observations that are {supported}; got {observation_space}.")
        for key, space in observation_parts(observation_space).items():
            name = f"observation '{key}'" if key else "observation space"
            if isinstance(space, DISCRETE_OBSERVATIONS):
                continue
            if not isinstance(space, spaces.Box):
                raise ValueError(f"DreamerV3 supports observations that are {supported}; the {name} is {space}.")
            check_not_empty(space, name, cls.__name__, top_level=not key)
            if not is_image(space) and len(space.shape) > 1:
                raise ValueError(f"DreamerV3 supports observations that are {supported}; the {name} has shape {space.shape}.")

    def _setup_model(self) -> None:
        check_at_least("DreamerV3", 1, imagination_horizon=self.imagination_horizon)
        check_at_least("DreamerV3", 2, batch_length=self.batch_length)
        self.policy_kwargs = dict(self.policy_kwargs)
        self.policy_kwargs.update(actor_learning_rate=self.actor_learning_rate, critic_learning_rate=self.critic_learning_rate)
        super()._setup_model()

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        optimizers = ["world_model_optimizer", "actor_optimizer", "critic_optimizer"]
        return ["policy", *(f"policy.{name}" for name in optimizers)], []

    def learn(
        self: SelfDreamerV3,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DreamerV3",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDreamerV3:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    # ------------------------------------------------------------------- acting
    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        # One posterior step per env step with the action actually taken; the state restarts at episode starts.
        obs_tensor, _ = self.policy.obs_to_tensor(self._last_obs)
        action, self._acting_state = self.policy.step(
            obs_tensor, self._acting_state, self._episode_starts, deterministic=False
        )
        return actions_to_take(self, action, self.policy.discrete, action_noise, n_envs)

    # ------------------------------------------------------------------ training
    @property
    def sequence_length(self) -> int:
        return self.batch_length - 1

    def train(self, gradient_steps: int, batch_size: int = 16) -> None:
        if not self._ready_to_train():
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.world_model_optimizer)
        stats: dict[str, list[th.Tensor]] = {}
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample_sequences(batch_size, self.sequence_length, env=self._vec_normalize_env)
            with self._autocast():
                step_stats, posterior = self._update_world_model(data)
                step_stats.update(self._update_behaviour(data, posterior))
            for key, value in step_stats.items():
                stats.setdefault(key, []).append(value.detach())
        self._n_updates += gradient_steps
        self._record_means(stats)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _previous_actions(self, data: SequenceSamples) -> th.Tensor:
        return previous_actions(data, self.policy.action_to_input)

    def _update_world_model(self, data: SequenceSamples) -> tuple[dict[str, th.Tensor], RSSMState]:
        policy = self.policy
        obs = policy.preprocess(data.observations)
        is_first = th.zeros(data.mask.shape[0], data.mask.shape[1] + 1, dtype=th.bool, device=data.mask.device)
        is_first[:, 0] = data.episode_starts.bool()
        loss, stats, posterior = policy.world_model.loss(
            obs, self._previous_actions(data), is_first, data.rewards, data.terminations, data.mask,
            free_bits=getattr(self, "free_bits", 1.0),  # 1.0: checkpoints saved before the option
        )  # fmt: skip
        stats["world_model/grad_norm"] = self._clip_and_step(policy.world_model_optimizer, loss, self.model_max_grad_norm)
        return stats, posterior

    def _update_behaviour(self, data: SequenceSamples, posterior: RSSMState) -> dict[str, th.Tensor]:
        """Actor and critic on trajectories imagined from every posterior state of the batch."""
        policy = self.policy
        start = RSSMState(*(part.flatten(0, 1) for part in posterior))
        # A start state after its episode's termination does not continue; padding states get no weight.
        terminal = th.cat([th.zeros_like(data.terminations[:, :1]), data.terminations], dim=1).flatten()
        valid = observed_mask(data).flatten()
        frozen = [*policy.world_model.parameters(), *policy.critic.parameters()]
        for p in frozen:  # the actor's loss flows through the model and the critic, but only the actor learns from it
            p.requires_grad_(False)
        try:
            trajectory = imagine(
                policy.world_model.rssm, policy.actor, policy.world_model.continuation, start, 1.0 - terminal,
                self.imagination_horizon,
            )  # fmt: skip
            weights = imagined_weights(trajectory.continues, self.gamma) * valid
            returns, values = returns_and_values(
                trajectory, policy.world_model.reward, policy.critic, self.gamma, self.lambda_
            )
            loss, stats = actor_loss(
                trajectory, returns, values, policy.return_normalizer, weights, self.entropy_scale, policy.discrete, valid
            )
            stats["train/actor_grad_norm"] = self._clip_and_step(policy.actor_optimizer, loss, self.actor_critic_max_grad_norm)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        detached = Trajectory(*(part.detach() for part in trajectory))
        loss, critic_stats = critic_loss(policy.critic, policy.slow_critic, detached, returns.detach(), weights)
        stats.update(critic_stats)
        stats["train/critic_grad_norm"] = self._clip_and_step(policy.critic_optimizer, loss, self.actor_critic_max_grad_norm)
        update_slow_critic(policy.critic, policy.slow_critic, self.slow_critic_fraction)
        return stats

    # ---------------------------------------------------------------- diagnostics
    #: Observations the world model sees before an open-loop prediction (the world-model callbacks' default).
    prediction_context: ClassVar[int] = 5

    @th.no_grad()
    def open_loop_prediction(self, n_sequences: int, context: int, horizon: int) -> tuple[dict[str, th.Tensor], ...]:
        """Observe ``context`` observations, then predict the next ``horizon`` from the stored actions alone, with the
        most likely code at each step.

        :return: ``(truth, prediction, rewards)`` as :meth:`sb3_worldmodels.Dreamer.open_loop_prediction` gives them:
            observations ``(B, horizon, ...)`` by key (images in [-0.5, 0.5]), and the true and predicted rewards with
            the mask of the steps inside each sequence's episode.
        """
        policy, world_model = self.policy, self.policy.world_model
        data = self.replay_buffer.sample_sequences(n_sequences, context + horizon - 1, env=self._vec_normalize_env)
        obs = policy.preprocess(data.observations)
        previous_actions = self._previous_actions(data)
        is_first = th.zeros(n_sequences, context, dtype=th.bool, device=data.mask.device)
        is_first[:, 0] = data.episode_starts.bool()
        context_obs = {key: value[:, :context] for key, value in obs.items()}
        posterior, _ = world_model.rssm.observe(world_model.embed(context_obs), previous_actions[:, :context], is_first)
        state = RSSMState(*(part[:, -1] for part in posterior))
        features = []
        for t in range(context, context + horizon):
            state = world_model.rssm.img_step(state, previous_actions[:, t], deterministic=True)
            features.append(world_model.rssm.features(state))
        feature = th.stack(features, dim=1)
        shift = {key: 0.5 if key in world_model.image_keys else 0.0 for key in obs}
        prediction = {key: value - shift[key] for key, value in world_model.decode(feature).items()}
        truth = {key: value[:, context:] - shift[key] for key, value in obs.items()}
        rewards = {
            "true": data.rewards[:, context - 1 :],
            "predicted": world_model.reward.mean(feature),
            "mask": data.mask[:, context - 1 :],
        }
        return truth, prediction, rewards

    def prediction_errors(self, n_sequences: int, horizon: int, context: int | None = None) -> dict[str, th.Tensor]:
        """Open-loop prediction error against the horizon: ``observation_mse`` and ``reward_mse``, each ``(horizon,)``."""
        context = self.prediction_context if context is None else context
        return open_loop_errors(*self.open_loop_prediction(n_sequences, context, horizon))
