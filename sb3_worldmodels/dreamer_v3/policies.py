"""DreamerV3's policy: the world model, the actor, the critic and its slow copy, and their optimisers."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from sb3_worldmodels.common.optim import make_optimizer
from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.common.spaces import as_contiguous, check_predict_inputs, to_env_actions
from sb3_worldmodels.dreamer.policies import is_image, observation_parts, preprocess_observations
from sb3_worldmodels.dreamer_v3.distributions import ReturnNormalizer
from sb3_worldmodels.dreamer_v3.heads import Actor, TwoHotHead
from sb3_worldmodels.dreamer_v3.rssm import RSSMState
from sb3_worldmodels.dreamer_v3.world_model import WorldModel

#: The paper's model sizes: GRU units, MLP units, MLP layers and CNN depth (arXiv 2301.04104v1, appendix).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "XS": dict(deter=256, units=256, layers=1, cnn_depth=24),
    "S": dict(deter=512, units=512, layers=2, cnn_depth=32),
    "M": dict(deter=1024, units=640, layers=3, cnn_depth=48),
    "L": dict(deter=2048, units=768, layers=4, cnn_depth=64),
    "XL": dict(deter=4096, units=1024, layers=5, cnn_depth=96),
}


class DreamerV3Policy(BasePolicy):
    """World model, actor, critic (with a slow copy) and return normaliser of DreamerV3.

    :param observation_space: Vector ``Box`` and discrete spaces, square images (uint8), or a ``Dict`` of them.
    :param action_space: ``Box`` (bounded) or ``Discrete``.
    :param lr_schedule: Learning-rate schedule of the world model (paper: 1e-4).
    :param size: One of :data:`MODEL_SIZES` (paper, DMC: ``"S"``).
    :param deter: GRU units, instead of the size's.
    :param units: MLP units, instead of the size's.
    :param layers: MLP hidden layers, instead of the size's.
    :param cnn_depth: Channels of the first convolution, instead of the size's.
    :param stoch: Categorical latents (32).
    :param classes: Classes per latent (32).
    :param actor_learning_rate: Actor learning rate (3e-5).
    :param critic_learning_rate: Critic learning rate (3e-5).
    :param model_eps: Adam epsilon of the world model (1e-8).
    :param actor_critic_eps: Adam epsilon of the actor and the critic (1e-5).
    :param optimizer_class: Optimizer of the three parts (Adam).
    :param optimizer_kwargs: Its extra arguments (they override the epsilons).
    :param normalize_images: Scale uint8 images to [0, 1]; ``False`` feeds them as floats unchanged.
    """

    #: ``None`` (float32), ``"bf16"`` or ``"fp16"``: autocast while acting (set by the algorithm).
    mixed_precision: str | None = None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        size: str = "S",
        deter: int | None = None,
        units: int | None = None,
        layers: int | None = None,
        cnn_depth: int | None = None,
        stoch: int = 32,
        classes: int = 32,
        actor_learning_rate: float = 3e-5,
        critic_learning_rate: float = 3e-5,
        model_eps: float = 1e-8,
        actor_critic_eps: float = 1e-5,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
    ):
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
            squash_output=isinstance(action_space, spaces.Box),
        )
        if size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}, got {size!r}")
        overrides = dict(deter=deter, units=units, layers=layers, cnn_depth=cnn_depth)
        chosen = {**MODEL_SIZES[size], **{key: value for key, value in overrides.items() if value is not None}}
        self.size, self.deter, self.units, self.layers, self.cnn_depth = size, deter, units, layers, cnn_depth
        self.stoch, self.classes = stoch, classes
        self.actor_learning_rate, self.critic_learning_rate = actor_learning_rate, critic_learning_rate
        self.model_eps, self.actor_critic_eps = model_eps, actor_critic_eps
        self.parts = observation_parts(observation_space)
        self.image_keys = [key for key, space in self.parts.items() if is_image(space)]
        vector_dims = {k: get_flattened_obs_dim(s) for k, s in self.parts.items() if k not in self.image_keys}
        image_shapes = {k: self.parts[k].shape for k in self.image_keys}
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.world_model = WorldModel(
            vector_dims, image_shapes, self.action_dim, deter=chosen["deter"], units=chosen["units"],
            layers=chosen["layers"], cnn_depth=chosen["cnn_depth"], stoch=stoch, classes=classes,
        )  # fmt: skip
        features = self.world_model.rssm.feature_dim
        self.actor = Actor(features, self.action_dim, self.discrete, chosen["units"], chosen["layers"])
        self.critic = TwoHotHead(features, chosen["units"], chosen["layers"])
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_normalizer = ReturnNormalizer()
        # The paper's epsilons apply to Adam-like optimizers; optimizer_kwargs (SB3's option) override them.
        cls = self.optimizer_class
        eps = issubclass(cls, (th.optim.Adam, th.optim.AdamW))
        model_kwargs = {**({"eps": model_eps} if eps else {}), **self.optimizer_kwargs}
        actor_critic_kwargs = {**({"eps": actor_critic_eps} if eps else {}), **self.optimizer_kwargs}
        self.world_model_optimizer = make_optimizer(cls, self.world_model.parameters(), lr_schedule(1), **model_kwargs)
        self.actor_optimizer = make_optimizer(cls, self.actor.parameters(), actor_learning_rate, **actor_critic_kwargs)
        self.critic_optimizer = make_optimizer(cls, self.critic.parameters(), critic_learning_rate, **actor_critic_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            size=self.size, deter=self.deter, units=self.units, layers=self.layers, cnn_depth=self.cnn_depth,
            stoch=self.stoch, classes=self.classes, actor_learning_rate=self.actor_learning_rate,
            critic_learning_rate=self.critic_learning_rate, model_eps=self.model_eps,
            actor_critic_eps=self.actor_critic_eps, lr_schedule=self._dummy_schedule,
            normalize_images=self.normalize_images,
        )  # fmt: skip
        return data

    # -------------------------------------------------------------- observations
    def preprocess(self, obs: PyTorchObs) -> dict[str, th.Tensor]:
        """Observations as a dict of float tensors: images in [0, 1], vectors flattened (discrete ones one-hot)."""
        return preprocess_observations(obs, self.parts, self.image_keys, self.normalize_images, image_offset=0.0)

    def action_to_input(self, action: th.Tensor) -> th.Tensor:
        """Buffer / env actions to the model's input: one-hot for discrete actions, [-1, 1] floats for ``Box``."""
        if self.discrete:
            return F.one_hot(action.long().squeeze(-1), self.action_dim).float()
        return action.float()

    # ------------------------------------------------------------------- acting
    def initial_state(self, n_envs: int) -> tuple[np.ndarray, ...]:
        """The acting state ``(deter, stoch, previous action)`` before an episode (the model replaces it by its
        learned initial state, as ``is_first`` is set then)."""
        rssm = self.world_model.rssm
        return (
            np.zeros((n_envs, rssm.deter_dim), np.float32),
            np.zeros((n_envs, rssm.stoch_dim, rssm.classes), np.float32),
            np.zeros((n_envs, self.action_dim), np.float32),
        )

    def step(
        self, obs: PyTorchObs, state: tuple[np.ndarray, ...] | None, episode_start: np.ndarray | None, deterministic: bool
    ) -> tuple[th.Tensor, tuple[np.ndarray, ...]]:
        """One posterior step and one action for a batch of envs; the action as the actor gives it ([-1, 1] for
        ``Box``, one-hot for ``Discrete``) and the new state."""
        obs = self.preprocess(obs)
        n_envs = next(iter(obs.values())).shape[0]
        if state is None:
            is_first = np.ones(n_envs, bool)
        else:
            is_first = np.zeros(n_envs, bool) if episode_start is None else np.asarray(episode_start, bool)
        state = self.initial_state(n_envs) if state is None else state
        deter, stoch, previous_action = (th.as_tensor(x, device=self.device).float() for x in state)
        rssm = self.world_model.rssm
        with th.no_grad(), autocast(self.device, self.mixed_precision):
            previous = RSSMState(deter, th.zeros_like(stoch), stoch)
            posterior, _ = rssm.obs_step(
                previous, previous_action, self.world_model.embed(obs), th.as_tensor(is_first, device=self.device),
                deterministic=deterministic,
            )  # fmt: skip
            features = rssm.features(posterior)
            action = self.actor.mode(features) if deterministic else self.actor(features).sample()
            if not self.discrete:
                action = action.clamp(-1, 1)
        new_state = tuple(x.float().cpu().numpy() for x in (posterior.deter, posterior.stoch, action))
        return action, new_state

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        action, _ = self.step(observation, None, None, deterministic)
        return action.argmax(dim=-1) if self.discrete else action

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act (SB3 signature). ``state`` is the recurrent state returned by the previous call, as with SB3's
        recurrent policies; ``None`` or ``episode_start`` starts from the model's learned initial state."""
        self.set_training_mode(False)
        obs_tensor, vectorized_env = self.obs_to_tensor(as_contiguous(observation))
        check_predict_inputs(obs_tensor, state, episode_start)
        action, new_state = self.step(obs_tensor, state, episode_start, deterministic)
        actions = (action.argmax(dim=-1) if self.discrete else action.float()).cpu().numpy()
        return to_env_actions(self.action_space, actions, vectorized_env, self.unscale_action), new_state


class MlpPolicy(DreamerV3Policy):
    """DreamerV3 for vector observations."""


class CnnPolicy(DreamerV3Policy):
    """DreamerV3 for image observations (square, a power of 2 in size)."""


class MultiInputPolicy(DreamerV3Policy):
    """DreamerV3 for Dict observations: a CNN per image key, an MLP per vector key."""
