"""Dreamer (V1): learning behaviours by latent imagination (Hafner et al., "Dream to Control", ICLR 2020)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from sb3_worldmodels.common.wrappers import action_repeat_of
from sb3_worldmodels.dreamer.losses import actor_loss, imagined_returns, value_loss, world_model_loss
from sb3_worldmodels.dreamer.policies import CnnPolicy, DreamerPolicy, MlpPolicy, MultiInputPolicy, is_image, observation_parts
from sb3_worldmodels.dreamer.rssm import RSSMState

SelfDreamer = TypeVar("SelfDreamer", bound="Dreamer")


#: Dreamer's schedule in env frames (the official code's prefill and train_every): 5000 random frames first, then
#: ``gradient_steps`` updates every 1000 frames.
PAPER_PREFILL_FRAMES = 5000
PAPER_TRAIN_EVERY_FRAMES = 1000


def previous_actions(data: SequenceSamples, action_to_input: Callable[[th.Tensor], th.Tensor]) -> th.Tensor:
    """``a_{t-1}`` for every observation ``o_t`` of the sequences, as the RSSM's input ``(B, L + 1, ...)``: o_t is
    observed after a_{t-1}; before ``o_0``, the stored action that led to it, zero at an episode start (as the
    official code)."""
    first = action_to_input(data.previous_actions.unsqueeze(1)) * (1 - data.episode_starts).view(-1, 1, 1)
    return th.cat([first, action_to_input(data.actions)], dim=1)


def actions_to_take(
    algo: WorldModelAlgorithm, action: th.Tensor, discrete: bool, action_noise: ActionNoise | None, n_envs: int
) -> tuple[np.ndarray, np.ndarray]:
    """The env's and the buffer's actions from a Dreamer actor's (one-hot, or [-1, 1] for ``Box``), with SB3's extra
    ``action_noise``; the noisy action is the one the acting state carries to the next step."""
    if discrete:
        index = action.argmax(dim=-1).cpu().numpy()
        return index, index
    scaled_action = action.float().cpu().numpy()  # (n_envs, action_dim)
    if action_noise is not None:
        scaled_action = np.clip(scaled_action + np.reshape(action_noise(), (1, -1)), -1, 1).astype(np.float32)
        algo._acting_state = (*algo._acting_state[:2], scaled_action)
    # In the action space's own shape (a multi-dimensional Box, as SB3's algorithms take).
    scaled_action = scaled_action.reshape(n_envs, *algo.action_space.shape)
    return algo.policy.unscale_action(scaled_action), scaled_action


def open_loop_errors(
    truth: dict[str, th.Tensor], prediction: dict[str, th.Tensor], rewards: dict[str, th.Tensor]
) -> dict[str, th.Tensor]:
    """Mean squared errors of an open-loop prediction per predicted step, ``(horizon,)`` each: ``observation_mse``
    (averaged over the observation keys) and ``reward_mse``, over the steps inside each sequence's episode."""
    mask = rewards["mask"]
    count = mask.sum(dim=0).clamp(min=1)
    observation_mse = sum(((prediction[k] - truth[k]) ** 2).flatten(2).mean(dim=2).mul(mask).sum(0) for k in truth) / count
    reward_mse = ((rewards["predicted"] - rewards["true"]) ** 2).mul(mask).sum(dim=0) / count
    return {"observation_mse": observation_mse / len(truth), "reward_mse": reward_mse}


class Dreamer(WorldModelAlgorithm):
    """Dreamer V1.

    A recurrent state-space model (RSSM) is trained on sequences by maximising the ELBO (observation
    reconstruction, reward likelihood, KL between posterior and prior with free nats). An actor and a value
    network are trained on imagined rollouts of the RSSM: the actor by backpropagating lambda-returns through
    the learned dynamics, the value by regression onto them.

    Defaults are those of the paper and its official code.

    :param policy: ``"MlpPolicy"`` (vectors), ``"CnnPolicy"`` (64x64 images), ``"MultiInputPolicy"`` (Dict) or a class.
    :param env: The environment (or its Gymnasium id).
    :param learning_rate: World-model learning rate (paper: 6e-4).
    :param actor_learning_rate: Actor learning rate (paper: 8e-5).
    :param value_learning_rate: Value learning rate (paper: 8e-5).
    :param buffer_size: Replay buffer size.
    :param learning_starts: Random steps before learning. ``None`` (default): the paper's prefill of 5000 env frames,
        ``5000 // action_repeat`` steps (the env's :class:`~sb3_worldmodels.common.wrappers.ActionRepeat`, 1 without).
    :param batch_size: Sequences per update (paper: 50).
    :param batch_length: Observations per sequence (paper: 50).
    :param gamma: Discount of imagined rewards (paper: 0.99).
    :param lambda_: Lambda of the lambda-returns (paper: 0.95).
    :param train_freq: Train every ``train_freq`` steps of the vec env (SB3 semantics). ``None`` (default): the paper's
        once every 1000 env frames, ``1000 // (action_repeat * n_envs)``. The paper counts env frames: for an env that
        repeats each action k times by other means, with n envs, pass ``learning_starts=5000 // k`` and
        ``train_freq=1000 // (k * n)``.
    :param gradient_steps: Updates per training call (paper: 100).
    :param imagination_horizon: Length of imagined rollouts (paper: 15).
    :param imagination_starts: Number of posterior states, drawn at random without replacement from the batch, that
        imaginations start from; ``None`` (the paper) starts from every one (``batch_size * batch_length``). Fewer
        starts make the behaviour update, most of an update's cost, proportionally cheaper.
    :param free_nats: KL below this many nats (batch mean) is not penalised (paper: 3).
    :param kl_scale: Weight of the KL term (paper: 1).
    :param continuation_coef: Weight of the continuation loss when ``policy_kwargs["use_continuation"]`` (paper: 10).
    :param actor_entropy_scale: Weight of the actor's entropy estimate in its objective (paper: 0, Dreamer V1 has
        none; DreamerV2 uses one). It counteracts the tanh-Gaussian's saturation at the action bounds.
    :param max_grad_norm: Gradient-norm clip of each optimizer (paper: 100).
    :param exploration_noise: Std of Gaussian action noise (Box) or epsilon of epsilon-greedy (Discrete) (paper: 0.3).
    :param action_noise: Extra SB3 action noise (Box only; not used by the paper).
    :param mixed_precision: ``None`` (float32, the papers' setting), ``"bf16"`` or ``"fp16"``: autocast for planning /
        acting and for updates (``sb3_worldmodels/common/precision.py``; fp16 adds a gradient scaler).
    :param accel: Fast paths (``sb3_worldmodels.accel``): ``"auto"`` (all), ``"none"`` (the plain modules of
        ``common/networks.py`` and ``dreamer/``) or a list of names out of ``accel.FAST_PATHS``. The same values either
        way, to float32 rounding; docs/performance.md has what each gives.
    :param replay_buffer_class: Must derive from :class:`SequenceReplayBuffer`.
    :param replay_buffer_kwargs: Its keyword arguments.
    :param policy_kwargs: Network sizes and options of :class:`DreamerPolicy`.
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
    policy: DreamerPolicy
    unsupported_policy_kwargs: ClassVar[dict[str, str]] = {
        "features_extractor_class": "Dreamer's encoders are part of its world model (the CNN for 64x64 images, an MLP "
        "for vectors) and are trained by reconstruction; size them with cnn_depth, mlp_net_arch and embed_dim.",
        "features_extractor_kwargs": "see features_extractor_class: size the encoders with cnn_depth, mlp_net_arch "
        "and embed_dim.",
    }

    def __init__(
        self,
        policy: str | type[DreamerPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 6e-4,
        actor_learning_rate: float = 8e-5,
        value_learning_rate: float = 8e-5,
        buffer_size: int = 1_000_000,
        learning_starts: int | None = None,
        batch_size: int = 50,
        batch_length: int = 50,
        gamma: float = 0.99,
        lambda_: float = 0.95,
        train_freq: int | tuple[int, str] | None = None,
        gradient_steps: int = 100,
        imagination_horizon: int = 15,
        imagination_starts: int | None = None,
        free_nats: float = 3.0,
        kl_scale: float = 1.0,
        continuation_coef: float = 10.0,
        actor_entropy_scale: float = 0.0,
        max_grad_norm: float = 100.0,
        exploration_noise: float = 0.3,
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
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            PAPER_PREFILL_FRAMES if learning_starts is None else learning_starts,
            batch_size,
            0.0,  # tau: Dreamer has no target networks
            gamma,
            PAPER_TRAIN_EVERY_FRAMES if train_freq is None else train_freq,
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
        # The paper's schedule counts env frames; SB3 counts agent steps (learning_starts) and vec env steps (train_freq).
        repeat = action_repeat_of(self.env)
        if learning_starts is None:
            self.learning_starts = PAPER_PREFILL_FRAMES // repeat
        #: The env's action repeat, and the env frames between training calls when the paper's schedule is used (None:
        #: SB3's ``train_freq`` as given); ``train_freq`` is derived from them for the number of envs at set-up.
        self.action_repeat = repeat
        self.train_every_frames = PAPER_TRAIN_EVERY_FRAMES if train_freq is None else None
        self.actor_learning_rate = actor_learning_rate
        self.value_learning_rate = value_learning_rate
        self.batch_length = batch_length
        self.lambda_ = lambda_
        self.imagination_horizon = imagination_horizon
        if imagination_starts is not None and imagination_starts < 1:
            raise ValueError(f"imagination_starts must be None (every posterior state) or >= 1, got {imagination_starts}.")
        self.imagination_starts = imagination_starts
        self.free_nats = free_nats
        self.kl_scale = kl_scale
        self.continuation_coef = continuation_coef
        self.actor_entropy_scale = actor_entropy_scale
        self.max_grad_norm = max_grad_norm
        self.exploration_noise = exploration_noise
        if _init_setup_model:
            self._setup_model()

    # ----------------------------------------------------------------- set-up
    @classmethod
    def _check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not isinstance(action_space, spaces.Discrete):
            if not isinstance(action_space, spaces.Box):
                raise ValueError(f"Dreamer supports Box and Discrete action spaces, got {action_space}.")
            check_box_action_space(action_space, cls.__name__)
        supported = (
            "a vector Box, a 64x64 image Box (uint8, HWC or CHW), a Discrete, MultiDiscrete or MultiBinary (one-hot "
            "encoded), or a Dict of those"
        )
        if not isinstance(observation_space, (spaces.Box, spaces.Dict, *DISCRETE_OBSERVATIONS)):
            raise ValueError(f"Dreamer supports observations that are {supported}; got {observation_space}.")
        for key, space in observation_parts(observation_space).items():
            name = f"observation '{key}'" if key else "observation space"
            if isinstance(space, DISCRETE_OBSERVATIONS):  # one-hot encoded, as SB3 does
                continue
            if not isinstance(space, spaces.Box):
                raise ValueError(f"Dreamer supports observations that are {supported}; the {name} is {space}.")
            check_not_empty(space, name, cls.__name__, top_level=not key)
            if is_image(space):
                if sorted(space.shape)[1:] != [64, 64]:
                    raise ValueError(f"Dreamer's CNN takes 64x64 images; the {name} is {space.shape}. Resize the images.")
            elif len(space.shape) > 1:  # a vector, or a 0-d Box (one feature)
                raise ValueError(f"Dreamer supports observations that are {supported}; the {name} has shape {space.shape}.")

    def _setup_model(self) -> None:
        self._pending_steps: list[tuple[th.optim.Optimizer, th.Tensor]] = []  # see _optimize
        check_at_least("Dreamer", 1, imagination_horizon=self.imagination_horizon)
        # batch_length counts observations: two make the shortest sequence, one transition.
        check_at_least("Dreamer", 2, batch_length=self.batch_length)
        self.policy_kwargs = dict(self.policy_kwargs)
        self.policy_kwargs.update(actor_learning_rate=self.actor_learning_rate, value_learning_rate=self.value_learning_rate)
        super()._setup_model()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_pending_steps"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.world_model_optimizer", "policy.actor_optimizer", "policy.value_optimizer"], []

    def learn(
        self: SelfDreamer,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "Dreamer",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDreamer:
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    # ------------------------------------------------------------------- acting
    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        # One posterior step per env step with the action actually taken; the latent is zeroed at episode starts.
        obs_tensor, _ = self.policy.obs_to_tensor(self._last_obs)
        action, self._acting_state = self.policy.step(
            obs_tensor, self._acting_state, self._episode_starts, deterministic=False, exploration=self.exploration_noise
        )
        return actions_to_take(self, action, self.policy.actor.discrete, action_noise, n_envs)

    def _derived_schedule(self, n_envs: int) -> tuple[int, int] | None:
        every_frames = getattr(self, "train_every_frames", None)  # None in checkpoints saved before it existed
        if every_frames is None:
            return None
        if self.env is not None:  # on load, the saved repeat gives way to that of the env given
            self.action_repeat = action_repeat_of(self.env)
        return max(every_frames // (self.action_repeat * n_envs), 1), self.gradient_steps

    # ------------------------------------------------------------------ training
    @property
    def sequence_length(self) -> int:
        # batch_length counts observations; a sequence of L transitions holds L + 1 of them.
        return self.batch_length - 1

    def train(self, gradient_steps: int, batch_size: int = 50) -> None:
        if not self._ready_to_train():
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.world_model_optimizer)
        stats: dict[str, list[th.Tensor]] = {}
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample_sequences(batch_size, self.sequence_length, env=self._vec_normalize_env)
            # As the official code: the three losses and their gradients from the same parameters, then the three steps
            # (world model, actor, value); imagination sees the world model before its step.
            with self._autocast():
                step_stats, posterior = self._update_world_model(data, apply=False)
                step_stats.update(self._update_behaviour(posterior, observed_mask(data), apply=False))
            self._apply_pending_steps()
            for key, value in step_stats.items():
                stats.setdefault(key, []).append(value.detach())
        self._n_updates += gradient_steps
        self._record_means(stats)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _previous_actions(self, data: SequenceSamples) -> th.Tensor:
        return previous_actions(data, self.policy.action_to_input)

    def _observe(self, data: SequenceSamples) -> tuple[dict[str, th.Tensor], RSSMState, RSSMState]:
        """Posterior and prior states of every observation of the sequences, ``(B, T, ...)``."""
        policy = self.policy
        obs = policy.preprocess(data.observations)
        posterior, prior = policy.rssm.observe(policy.embed(obs), self._previous_actions(data))
        return obs, posterior, prior

    def _optimize(self, optimizer: th.optim.Optimizer, loss: th.Tensor, apply: bool) -> th.Tensor:
        """Gradients of ``loss``, clipped (the norm before clipping is returned), applied now or, with ``apply=False``,
        by the next :meth:`_apply_pending_steps`."""
        grad_norm = self._backward_and_clip(optimizer, loss, self.max_grad_norm)
        if apply:
            self._step(optimizer, grad_norm)
        else:
            self._pending_steps.append((optimizer, grad_norm))
        return grad_norm

    def _apply_pending_steps(self) -> None:
        for optimizer, grad_norm in self._pending_steps:
            self._step(optimizer, grad_norm)
        self._pending_steps.clear()

    def _update_world_model(self, data: SequenceSamples, apply: bool = True) -> tuple[dict[str, th.Tensor], RSSMState]:
        """The world model's step on :func:`~sb3_worldmodels.dreamer.losses.world_model_loss` (Dreamer eq. 10).

        :param apply: Step the optimizer now; ``False`` leaves the step to :meth:`_apply_pending_steps`.
        """
        policy = self.policy
        obs, posterior, prior = self._observe(data)
        feature = posterior.feature
        log_likelihood, squared_errors = policy.reconstruction_log_likelihood(feature, obs)
        continuation_logits = None
        if policy.continuation is not None:
            continuation_logits = policy.continuation(feature[:, 1:]).squeeze(-1)
        loss, stats = world_model_loss(
            reconstruction_log_likelihood=log_likelihood,
            # the state of o_{t+1} predicts r_t, the reward into it
            reward_prediction=policy.reward(feature[:, 1:]).squeeze(-1),
            rewards=data.rewards,
            posterior=posterior,
            prior=prior,
            observed=observed_mask(data),
            transitions=data.mask,
            free_nats=self.free_nats,
            kl_scale=self.kl_scale,
            continuation_logits=continuation_logits,
            terminations=data.terminations,
            continuation_coef=self.continuation_coef,
        )
        stats["world_model/grad_norm"] = self._optimize(policy.world_model_optimizer, loss, apply)
        stats["world_model/prior_std"] = prior.std.detach().mean()
        stats["world_model/posterior_std"] = posterior.std.detach().mean()
        image_keys = policy.image_keys
        if image_keys:
            stats["world_model/image_mse"] = squared_errors[image_keys[0]]
        return stats, posterior.detach()

    def imagine(self, start: RSSMState) -> tuple[th.Tensor, th.Tensor]:
        """Roll the actor out in the RSSM for ``imagination_horizon`` steps from each start state.

        :return: Features of the imagined states ``(H, N, F)`` (the start states excluded) and the actor's entropy ``(H, N)``.
        """
        state, features, entropies = start, [], []
        for _ in range(self.imagination_horizon):
            # The actor sees a stopped-gradient feature; the return's gradient reaches it through its action.
            out = self.policy.actor(state.feature.detach())
            state = self.policy.rssm.imagine(state, out.sample)
            features.append(state.feature)
            entropies.append(out.entropy)
        return th.stack(features), th.stack(entropies)

    def _start_index(self, n: int, device: th.device) -> th.Tensor | None:
        """Indices of ``imagination_starts`` of ``n`` flattened posterior states, or ``None`` for all of them."""
        if self.imagination_starts is None or self.imagination_starts >= n:
            return None
        # Random keys' top-k: a uniform subset without replacement, drawn on the device without a host sync.
        return th.rand(n, device=device).topk(self.imagination_starts, sorted=False).indices

    def imagination_start_states(self, posterior: RSSMState) -> RSSMState:
        """The posterior states of the batch, flattened, or ``imagination_starts`` of them drawn without replacement."""
        start = posterior.flatten()
        index = self._start_index(start.deter.shape[0], start.deter.device)
        return start if index is None else RSSMState(*(x[index] for x in start))

    def imagined_discounts(self, features: th.Tensor) -> th.Tensor:
        """``gamma`` per imagined step, times the predicted continuation probability when that head exists."""
        discount = th.full(features.shape[:-1], self.gamma, device=features.device)
        if self.policy.continuation is not None:
            discount = discount * th.sigmoid(self.policy.continuation(features).squeeze(-1))
        return discount

    def _update_behaviour(
        self, posterior: RSSMState, observed: th.Tensor | None = None, apply: bool = True
    ) -> dict[str, th.Tensor]:
        """Actor and value steps on imagined trajectories (Dreamer eqs. 7-8, :mod:`sb3_worldmodels.dreamer.losses`).

        :param posterior: Posterior states ``(B, T, ...)``, the imagination's start states.
        :param observed: ``(B, T)``, 1.0 for the states of true observations (:func:`observed_mask`); imaginations from
            padding states are left out of the losses. All are true by default.
        :param apply: Step the optimizers now; ``False`` leaves the steps to :meth:`_apply_pending_steps`.
        """
        policy = self.policy
        world_model = policy.world_model_parameters()
        # Gradients flow through the world model and the value to the actor, but only the actor's weights get them.
        for p in (*world_model, *policy.value.parameters()):
            p.requires_grad_(False)
        try:
            start = posterior.flatten()
            index = self._start_index(start.deter.shape[0], start.deter.device)
            valid = th.ones_like(start.deter[:, 0]) if observed is None else observed.flatten().to(start.deter.dtype)
            if index is not None:
                start, valid = RSSMState(*(x[index] for x in start)), valid[index]
            features, entropy = self.imagine(start)
            rewards = policy.reward(features).squeeze(-1)
            values = policy.value(features).squeeze(-1)
            returns, weights = imagined_returns(rewards, values, self.imagined_discounts(features), self.lambda_)
            # entropy[t] belongs to the action taken in the state of returns[t - 1]; the last action has no return.
            actor = actor_loss(returns, weights, valid, entropy[:-1], self.actor_entropy_scale)
            actor_grad_norm = self._optimize(policy.actor_optimizer, actor, apply)
        finally:
            for p in (*world_model, *policy.value.parameters()):
                p.requires_grad_(True)
        value = value_loss(policy.value(features[:-1].detach()).squeeze(-1), returns, weights, valid)
        value_grad_norm = self._optimize(policy.value_optimizer, value, apply)
        return {
            "train/actor_loss": actor.detach(),
            "train/value_loss": value.detach(),
            "train/imagined_return": returns.detach().mean(),
            "train/imagined_reward": rewards.detach().mean(),
            "train/value_mean": values.detach().mean(),
            "train/actor_entropy": entropy.detach().mean(),
            "train/actor_grad_norm": actor_grad_norm,
            "train/value_grad_norm": value_grad_norm,
        }

    # ---------------------------------------------------------------- diagnostics
    @th.no_grad()
    def open_loop_prediction(self, n_sequences: int, context: int, horizon: int) -> tuple[dict[str, th.Tensor], ...]:
        """Observe ``context`` observations, then predict the next ``horizon`` from the stored actions alone.

        :return: ``(truth, prediction, rewards)``: preprocessed true and predicted observations of the predicted steps
            (dicts of ``(B, horizon, ...)``) and ``{"true": ..., "predicted": ..., "mask": ...}`` rewards
            ``(B, horizon)``, where ``mask`` is 0 for the steps after the end of a sequence's episode (padding).
        """
        policy = self.policy
        data = self.replay_buffer.sample_sequences(n_sequences, context + horizon - 1, env=self._vec_normalize_env)
        obs = policy.preprocess(data.observations)
        prev_actions = self._previous_actions(data)
        context_obs = {key: value[:, :context] for key, value in obs.items()}
        posterior, _ = policy.rssm.observe(policy.embed(context_obs), prev_actions[:, :context])
        state = RSSMState(*(x[:, -1] for x in posterior))
        features = []
        for t in range(context, context + horizon):
            state = policy.rssm.imagine(state, prev_actions[:, t], sample=False)
            features.append(state.feature)
        feature = th.stack(features, dim=1)
        prediction = {
            key: value.view(n_sequences, horizon, *value.shape[1:])
            for key, value in policy.decode(feature.flatten(0, 1)).items()
        }
        truth = {key: value[:, context:] for key, value in obs.items()}
        rewards = {
            "true": data.rewards[:, context - 1 :],
            "predicted": policy.reward(feature).squeeze(-1),
            "mask": data.mask[:, context - 1 :],
        }
        return truth, prediction, rewards

    #: Observations :meth:`prediction_errors` filters before it predicts.
    prediction_context: ClassVar[int] = 5

    def prediction_errors(self, n_sequences: int, horizon: int, context: int | None = None) -> dict[str, th.Tensor]:
        """Open-loop prediction error against the horizon: ``observation_mse`` and ``reward_mse``, each ``(horizon,)``."""
        context = self.prediction_context if context is None else context
        return open_loop_errors(*self.open_loop_prediction(n_sequences, context, horizon))
