"""Networks of Dreamer (V1): encoders, decoders, RSSM, reward / continuation heads, actor and value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space, preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_worldmodels.common.networks import mlp
from sb3_worldmodels.common.optim import make_optimizer
from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.common.spaces import as_contiguous, check_predict_inputs, to_env_actions
from sb3_worldmodels.dreamer.rssm import RSSM, RSSMState

IMAGE_SIZE = 64


def observation_parts(observation_space: spaces.Space) -> dict[str, spaces.Box]:
    """The observation as a dict of Boxes (key ``""`` for a plain Box)."""
    if isinstance(observation_space, spaces.Dict):
        return dict(observation_space.spaces)
    return {"": observation_space}


def is_image(space: spaces.Box) -> bool:
    return is_image_space(space, check_channels=False)


#: Adam's epsilon in Keras, which the official code uses (PyTorch's default is 1e-8).
KERAS_ADAM_EPS = 1e-7


@th.no_grad()
def preprocess_observations(
    obs: PyTorchObs, parts: dict[str, spaces.Space], image_keys: Sequence[str], normalize_images: bool, image_offset: float
) -> dict[str, th.Tensor]:
    """Observations (any leading shape) as a dict of float tensors: uint8 images scaled to [0, 1] minus
    ``image_offset`` (unless ``normalize_images`` is false), vectors flattened, discrete observations one-hot encoded
    (SB3's ``preprocess_obs``); a 0-d Box (dm_control walker's height) becomes one feature."""
    obs = obs if isinstance(obs, dict) else {"": obs}
    out = {}
    for key, value in obs.items():
        if key in image_keys:
            value = value.float()
            out[key] = value / 255.0 - image_offset if normalize_images else value
        else:
            space = parts[key]
            lead = value.shape[: value.dim() - len(space.shape)]
            out[key] = preprocess_obs(value.reshape(-1, *space.shape), space).float().reshape(*lead, -1)
    return out


def init_as_keras(module: nn.Module) -> None:
    """Initialise as the official (TF2 / Keras) code does, whose layers keep Keras' defaults: glorot-uniform weights and
    zero biases for dense and (transposed) convolution layers; for the GRU cell a glorot-uniform input kernel, an
    orthogonal recurrent kernel and zero biases. PyTorch's defaults differ (scaled uniform weights and biases)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.GRUCell):
            nn.init.xavier_uniform_(layer.weight_ih)
            nn.init.orthogonal_(layer.weight_hh)
            nn.init.zeros_(layer.bias_ih)
            nn.init.zeros_(layer.bias_hh)


class ConvEncoder(nn.Module):
    """Dreamer's image encoder: 4 convolutions (kernel 4, stride 2, depths 32-64-128-256, ReLU); 64x64 to 1024."""

    def __init__(self, channels: int, depth: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        last = channels
        for mult in (1, 2, 4, 8):
            layers += [nn.Conv2d(last, depth * mult, 4, stride=2), nn.ReLU()]
            last = depth * mult
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.output_dim = depth * 8 * 2 * 2

    def forward(self, image: th.Tensor) -> th.Tensor:
        return self.net(image).float()  # float32 under mixed precision, as common.networks.MLP


class ConvDecoder(nn.Module):
    """Dreamer's image decoder: dense 1024, then transposed convolutions (kernels 5-5-6-6, stride 2) to 64x64."""

    def __init__(self, feature_dim: int, channels: int, depth: int = 32):
        super().__init__()
        self.embed_dim = depth * 32
        self.dense = nn.Linear(feature_dim, self.embed_dim)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(self.embed_dim, depth * 4, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(depth * 4, depth * 2, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(depth * 2, depth, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(depth, channels, 6, stride=2),
        )

    def forward(self, feature: th.Tensor) -> th.Tensor:
        x = self.dense(feature).view(-1, self.embed_dim, 1, 1)  # a 1x1 image of embed_dim channels
        # Standard layout (a fast path may compute channels-last), so that callers can view the images as they like.
        return self.net(x).float().contiguous()


class ActorOutput(NamedTuple):
    """A reparameterised action sample with its mode and an entropy estimate, all ``(batch, action_dim)`` / ``(batch,)``."""

    sample: th.Tensor
    mode: th.Tensor
    entropy: th.Tensor


class Actor(nn.Module):
    """Dreamer's action model.

    ``Box`` actions: a tanh-transformed diagonal Gaussian, ``mean = mean_scale * tanh(mean / mean_scale)``,
    ``std = softplus(std + softplus^-1(init_std)) + min_std``. ``Discrete`` actions: a one-hot categorical whose samples
    pass gradients straight through the probabilities.
    """

    def __init__(
        self,
        feature_dim: int,
        action_space: spaces.Space,
        net_arch: Sequence[int],
        activation_fn: type[nn.Module],
        init_std: float = 5.0,
        mean_scale: float = 5.0,
        min_std: float = 1e-4,
    ):
        super().__init__()
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        out = self.action_dim if self.discrete else 2 * self.action_dim
        self.net = mlp(feature_dim, net_arch, out, activation_fn, layer_norm=False)
        self.mean_scale, self.min_std = mean_scale, min_std
        self.raw_init_std = math.log(math.expm1(init_std))

    def _mode(self, out: th.Tensor) -> th.Tensor:
        if self.discrete:
            return F.one_hot(out.argmax(dim=-1), self.action_dim).to(out.dtype)
        return th.tanh(self._mean(out))

    def _mean(self, out: th.Tensor) -> th.Tensor:
        mean = out[..., : self.action_dim]
        return self.mean_scale * th.tanh(mean / self.mean_scale)

    def mode(self, feature: th.Tensor) -> th.Tensor:
        """The mode alone, without drawing random numbers: deterministic acting leaves the RNG streams untouched."""
        return self._mode(self.net(feature))

    def forward(self, feature: th.Tensor) -> ActorOutput:
        out = self.net(feature)
        if self.discrete:
            probs = th.softmax(out, dim=-1)
            index = th.multinomial(probs, 1).squeeze(-1)
            one_hot = F.one_hot(index, self.action_dim).to(probs.dtype)
            sample = one_hot + probs - probs.detach()  # straight-through
            entropy = -(probs * th.log_softmax(out, dim=-1)).sum(dim=-1)
            return ActorOutput(sample, self._mode(out), entropy)
        mean, std = self._mean(out), out[..., self.action_dim :]
        std = F.softplus(std + self.raw_init_std) + self.min_std
        pre_tanh = mean + std * th.randn_like(std)
        sample = th.tanh(pre_tanh)
        # Entropy of the tanh-Gaussian estimated from the sample, as Dreamer does: -log p(sample).
        normal_log_prob = -0.5 * ((pre_tanh - mean) / std) ** 2 - th.log(std) - 0.5 * math.log(2 * math.pi)
        log_det = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))  # log(1 - tanh(x)^2), stable
        entropy = -(normal_log_prob - log_det).sum(dim=-1)
        return ActorOutput(sample, th.tanh(mean), entropy)


class DreamerPolicy(BasePolicy):
    """World model (encoders, RSSM, decoders, reward and continuation heads), actor and value of Dreamer.

    Each observation key gets its own encoder and decoder: the CNN pair for 64x64 images (stored as uint8,
    scaled to [-0.5, 0.5]), MLPs for vectors; embeddings are concatenated.

    :param observation_space: Observation space.
    :param action_space: ``Box`` or ``Discrete`` action space.
    :param lr_schedule: Learning-rate schedule of the world model.
    :param stoch_dim: RSSM stochastic state size (paper: 30).
    :param deter_dim: RSSM deterministic (GRU) state size (paper: 200).
    :param hidden_dim: RSSM hidden layer size (paper: 200).
    :param cnn_depth: Base depth of the image encoder and decoder (paper: 32).
    :param mlp_net_arch: Hidden layers of the vector encoders and decoders (paper setting for vectors: 3 x 400).
    :param embed_dim: Output size of a vector encoder (400).
    :param reward_net_arch: Hidden layers of the reward head (paper: 2 x 400).
    :param value_net_arch: Hidden layers of the value network (paper: 3 x 400).
    :param actor_net_arch: Hidden layers of the actor (paper: 4 x 400).
    :param continuation_net_arch: Hidden layers of the continuation head (paper: 3 x 400).
    :param net_arch: SB3's way to size the MLPs, applied on top of the ``*_net_arch`` arguments: a list sizes every
        MLP (vector encoders and decoders, reward, value, actor, continuation), a dict sizes those it names, with the
        keys ``mlp``, ``reward``, ``value``, ``actor``, ``continuation``.
    :param use_continuation: Predict episode continuation (for tasks with terminations).
    :param activation_fn: Activation of the MLPs and RSSM (paper: ELU).
    :param init_std: Initial std of the actor (paper: 5).
    :param mean_scale: Scale of the actor mean (paper: 5).
    :param min_std: Minimum std of the actor (paper: 1e-4).
    :param actor_learning_rate: Actor learning rate (paper: 8e-5).
    :param value_learning_rate: Value learning rate (paper: 8e-5).
    :param optimizer_class: Optimizer of all three parts (paper: Adam).
    :param optimizer_kwargs: Extra optimizer arguments.
    :param normalize_images: Scale uint8 images to [-0.5, 0.5] (paper); ``False`` feeds them as floats unchanged.
    """

    #: ``None`` (float32), ``"bf16"`` or ``"fp16"``: autocast while planning / acting (set by the algorithm).
    mixed_precision: str | None = None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        stoch_dim: int = 30,
        deter_dim: int = 200,
        hidden_dim: int = 200,
        cnn_depth: int = 32,
        mlp_net_arch: Sequence[int] = (400, 400, 400),
        embed_dim: int = 400,
        reward_net_arch: Sequence[int] = (400, 400),
        value_net_arch: Sequence[int] = (400, 400, 400),
        actor_net_arch: Sequence[int] = (400, 400, 400, 400),
        continuation_net_arch: Sequence[int] = (400, 400, 400),
        net_arch: Sequence[int] | dict[str, Sequence[int]] | None = None,
        use_continuation: bool = False,
        activation_fn: type[nn.Module] = nn.ELU,
        init_std: float = 5.0,
        mean_scale: float = 5.0,
        min_std: float = 1e-4,
        actor_learning_rate: float = 8e-5,
        value_learning_rate: float = 8e-5,
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
        if net_arch is not None:
            heads = ("mlp", "reward", "value", "actor", "continuation")
            sizes = dict(net_arch) if isinstance(net_arch, dict) else dict.fromkeys(heads, net_arch)
            unknown = sorted(set(sizes) - set(heads))
            if unknown:
                raise ValueError(f"Dreamer's net_arch dict names its MLPs {', '.join(heads)}; got {', '.join(unknown)}.")
            mlp_net_arch = sizes.get("mlp", mlp_net_arch)
            reward_net_arch = sizes.get("reward", reward_net_arch)
            value_net_arch = sizes.get("value", value_net_arch)
            actor_net_arch = sizes.get("actor", actor_net_arch)
            continuation_net_arch = sizes.get("continuation", continuation_net_arch)
        self.stoch_dim, self.deter_dim, self.hidden_dim = stoch_dim, deter_dim, hidden_dim
        self.cnn_depth, self.embed_dim = cnn_depth, embed_dim
        self.mlp_net_arch, self.reward_net_arch = list(mlp_net_arch), list(reward_net_arch)
        self.value_net_arch, self.actor_net_arch = list(value_net_arch), list(actor_net_arch)
        self.continuation_net_arch = list(continuation_net_arch)
        self.activation_fn = activation_fn
        self.init_std, self.mean_scale, self.min_std = init_std, mean_scale, min_std
        self.actor_learning_rate, self.value_learning_rate = actor_learning_rate, value_learning_rate
        self.use_continuation = use_continuation
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        act = self.activation_fn
        self.parts = observation_parts(self.observation_space)
        self.image_keys = [key for key, space in self.parts.items() if is_image(space)]
        encoders, embed_dim = {}, 0
        for key, space in self.parts.items():
            if key in self.image_keys:
                encoders[key] = ConvEncoder(space.shape[0], self.cnn_depth)
                embed_dim += encoders[key].output_dim
            else:
                encoders[key] = mlp(get_flattened_obs_dim(space), self.mlp_net_arch, self.embed_dim, act, layer_norm=False)
                embed_dim += self.embed_dim
        # ModuleDict keys must be non-empty: "obs" stands for a plain Box observation.
        self.encoders = nn.ModuleDict({self._module_key(k): m for k, m in encoders.items()})
        self.action_dim = (
            int(self.action_space.n)
            if isinstance(self.action_space, spaces.Discrete)
            else int(np.prod(self.action_space.shape))
        )
        self.rssm = RSSM(self.action_dim, embed_dim, self.stoch_dim, self.deter_dim, self.hidden_dim, activation_fn=act)
        feature_dim = self.rssm.feature_dim
        decoders = {}
        for key, space in self.parts.items():
            if key in self.image_keys:
                decoders[key] = ConvDecoder(feature_dim, space.shape[0], self.cnn_depth)
            else:
                decoders[key] = mlp(feature_dim, self.mlp_net_arch, get_flattened_obs_dim(space), act, layer_norm=False)
        self.decoders = nn.ModuleDict({self._module_key(k): m for k, m in decoders.items()})
        self.reward = mlp(feature_dim, self.reward_net_arch, 1, act, layer_norm=False)
        self.continuation = (
            mlp(feature_dim, self.continuation_net_arch, 1, act, layer_norm=False) if self.use_continuation else None
        )
        self.actor = Actor(
            feature_dim, self.action_space, self.actor_net_arch, act, self.init_std, self.mean_scale, self.min_std
        )
        self.value = mlp(feature_dim, self.value_net_arch, 1, act, layer_norm=False)
        init_as_keras(self)

        cls, kwargs = self.optimizer_class, dict(self.optimizer_kwargs)
        if issubclass(cls, (th.optim.Adam, th.optim.AdamW)):
            kwargs.setdefault("eps", KERAS_ADAM_EPS)
        self.world_model_optimizer = make_optimizer(cls, self.world_model_parameters(), lr_schedule(1), **kwargs)
        self.actor_optimizer = make_optimizer(cls, self.actor.parameters(), self.actor_learning_rate, **kwargs)
        self.value_optimizer = make_optimizer(cls, self.value.parameters(), self.value_learning_rate, **kwargs)

    @staticmethod
    def _module_key(key: str) -> str:
        return key or "obs"

    def world_model_parameters(self) -> list[nn.Parameter]:
        modules = [self.encoders, self.rssm, self.decoders, self.reward]
        if self.continuation is not None:
            modules.append(self.continuation)
        return [p for module in modules for p in module.parameters()]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            stoch_dim=self.stoch_dim,
            deter_dim=self.deter_dim,
            hidden_dim=self.hidden_dim,
            cnn_depth=self.cnn_depth,
            mlp_net_arch=self.mlp_net_arch,
            embed_dim=self.embed_dim,
            reward_net_arch=self.reward_net_arch,
            value_net_arch=self.value_net_arch,
            actor_net_arch=self.actor_net_arch,
            continuation_net_arch=self.continuation_net_arch,
            use_continuation=self.use_continuation,
            activation_fn=self.activation_fn,
            init_std=self.init_std,
            mean_scale=self.mean_scale,
            min_std=self.min_std,
            actor_learning_rate=self.actor_learning_rate,
            value_learning_rate=self.value_learning_rate,
            lr_schedule=self._dummy_schedule,
            normalize_images=self.normalize_images,
        )
        return data

    # -------------------------------------------------------------- observations
    def preprocess(self, obs: PyTorchObs) -> dict[str, th.Tensor]:
        """Observations as a dict of float tensors: images in [-0.5, 0.5], vectors flattened."""
        return preprocess_observations(obs, self.parts, self.image_keys, self.normalize_images, image_offset=0.5)

    def embed(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        """Concatenated embeddings of preprocessed observations of any leading shape ``(..., *obs_shape)``."""
        embeds = []
        for key, value in obs.items():
            lead = value.shape[: value.dim() - (3 if key in self.image_keys else 1)]
            flat = value.reshape(-1, *value.shape[len(lead) :])
            embeds.append(self.encoders[self._module_key(key)](flat).view(*lead, -1))
        return th.cat(embeds, dim=-1)

    def reconstruction_log_likelihood(
        self, feature: th.Tensor, obs: dict[str, th.Tensor]
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """``log N(o | decoder(feature), 1)`` summed over every observation dimension, shape ``feature.shape[:-1]``,
        and the mean squared error of each observation key (detached, for logging: one decoder pass serves both)."""
        lead = feature.shape[:-1]
        flat_feature = feature.reshape(-1, feature.shape[-1])
        total = th.zeros(flat_feature.shape[0], device=feature.device)
        errors = {}
        for key, value in obs.items():
            prediction = self.decoders[self._module_key(key)](flat_feature)
            squared = (prediction - value.reshape(prediction.shape)) ** 2
            # log N(target | prediction, 1) = -0.5 (target - prediction)^2 - 0.5 log(2 pi), per dimension.
            total = total - 0.5 * squared.flatten(1).sum(dim=1) - 0.5 * math.log(2 * math.pi) * squared[0].numel()
            errors[key] = squared.detach().mean()
        return total.view(lead), errors

    def decode(self, feature: th.Tensor) -> dict[str, th.Tensor]:
        """Predicted (preprocessed) observations for features ``(batch, feature_dim)``."""
        return {key: self.decoders[self._module_key(key)](feature).view(-1, *self.parts[key].shape) for key in self.parts}

    # ------------------------------------------------------------------- acting
    def action_to_input(self, action: th.Tensor) -> th.Tensor:
        """Buffer / env actions to the RSSM's input: one-hot for discrete actions, [-1, 1] floats for Box."""
        if isinstance(self.action_space, spaces.Discrete):
            return F.one_hot(action.long().squeeze(-1), self.action_dim).float()
        return action.float()

    def initial_state(self, n_envs: int) -> tuple[np.ndarray, ...]:
        """The acting state ``(deter, stoch, prev_action)`` at an episode start, as numpy arrays."""
        return (
            np.zeros((n_envs, self.rssm.deter_dim), np.float32),
            np.zeros((n_envs, self.rssm.stoch_dim), np.float32),
            np.zeros((n_envs, self.action_dim), np.float32),
        )

    def step(
        self,
        obs: PyTorchObs,
        state: tuple[np.ndarray, ...] | None,
        episode_start: np.ndarray | None,
        deterministic: bool,
        exploration: float = 0.0,
    ) -> tuple[th.Tensor, tuple[np.ndarray, ...]]:
        """One posterior step and one action for a batch of envs.

        :return: The action as the actor outputs it (``[-1, 1]`` for Box, one-hot for Discrete) and the new state.
        """
        obs = self.preprocess(obs)
        n_envs = next(iter(obs.values())).shape[0]
        state = self.initial_state(n_envs) if state is None else state
        deter, stoch, prev_action = (th.as_tensor(x, device=self.device).float() for x in state)
        if episode_start is not None:
            keep = th.as_tensor(~np.asarray(episode_start, dtype=bool), device=self.device).float().unsqueeze(-1)
            deter, stoch, prev_action = deter * keep, stoch * keep, prev_action * keep
        with th.no_grad(), autocast(self.device, self.mixed_precision):
            prev = RSSMState(stoch, th.ones_like(stoch), stoch, deter)
            # Deterministic acting uses the posterior mean and the actor's mode, so it is repeatable.
            posterior, _ = self.rssm.observe_step(prev, prev_action, self.embed(obs), sample=not deterministic)
            action = self.actor.mode(posterior.feature) if deterministic else self.actor(posterior.feature).sample
            if exploration > 0 and not deterministic:
                if self.actor.discrete:
                    random = F.one_hot(th.randint(self.action_dim, (n_envs,), device=self.device), self.action_dim)
                    explore = th.rand(n_envs, 1, device=self.device) < exploration
                    action = th.where(explore, random.to(action.dtype), action)
                else:
                    action = (action + exploration * th.randn_like(action)).clamp(-1, 1)
        new_state = (posterior.deter.cpu().numpy(), posterior.stoch.cpu().numpy(), action.cpu().numpy())
        return action, new_state

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        action, _ = self.step(observation, None, None, deterministic)
        return action.argmax(dim=-1) if self.actor.discrete else action

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act (SB3 signature). ``state`` is the recurrent state ``(deter, stoch, prev_action)`` returned by the previous
        call, as with SB3's recurrent policies; ``None`` or ``episode_start`` starts from the zero state."""
        self.set_training_mode(False)
        obs_tensor, vectorized_env = self.obs_to_tensor(as_contiguous(observation))
        check_predict_inputs(obs_tensor, state, episode_start)
        action, new_state = self.step(obs_tensor, state, episode_start, deterministic)
        actions = (action.argmax(dim=-1) if self.actor.discrete else action).cpu().numpy()
        return to_env_actions(self.action_space, actions, vectorized_env, self.unscale_action), new_state


class MlpPolicy(DreamerPolicy):
    """Dreamer for vector observations (MLP encoder and decoder)."""


class CnnPolicy(DreamerPolicy):
    """Dreamer for 64x64 image observations (CNN encoder and decoder)."""


class MultiInputPolicy(DreamerPolicy):
    """Dreamer for Dict observations: a CNN pair per image key, an MLP pair per vector key."""
