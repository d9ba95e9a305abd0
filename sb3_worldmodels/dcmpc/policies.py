"""Networks of DC-MPC: encoder, FSQ quantizer, codebook dynamics, reward, critic ensemble and actor."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_worldmodels.common.networks import EnsembleMLP, mlp
from sb3_worldmodels.common.optim import make_optimizer
from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.common.spaces import as_contiguous, check_predict_inputs, to_env_actions
from sb3_worldmodels.dcmpc.fsq import FSQ
from sb3_worldmodels.dcmpc.latent import PaperLatent, critic_subset
from sb3_worldmodels.dcmpc.planner import MPPIPlanner, PlanResult, noise_is_drawn

# Seed of the planner's noise when predict(deterministic=True): the same input then gives the same action.
DETERMINISTIC_PLANNER_SEED = 0


class DCMPCPolicy(BasePolicy):
    """World model, critics and actor of DC-MPC, and the MPPI planner that acts with them.

    The latent state is the flattened FSQ code of the encoder output, ``latent_dim * len(fsq_levels)``
    values. All heads take it as input; the dynamics predict, for each of the ``latent_dim`` slots, a
    categorical over the ``prod(fsq_levels)`` codes of the codebook.

    :param observation_space: Observation space.
    :param action_space: Box action space.
    :param lr_schedule: Learning-rate schedule of the world model (encoder, dynamics, reward).
    :param net_arch: Hidden layers of dynamics, reward, critics and actor (paper: ``[512, 512]``).
    :param encoder_net_arch: Hidden layers of the encoder (paper: ``[256]``).
    :param activation_fn: Activation of hidden layers (paper: Mish, after LayerNorm).
    :param latent_dim: Number of FSQ latent slots ``d`` (paper: 512; 1024 for dog / humanoid).
    :param fsq_levels: Quantization levels per FSQ channel (paper: ``[5, 3]``).
    :param n_critics: Size of the REDQ critic ensemble (paper: 5).
    :param actor_learning_rate: Adam learning rate of the actor (paper: 3e-4).
    :param critic_learning_rate: Adam learning rate of the critics (paper: 3e-4).
    :param world_model_weight_decay: AdamW weight decay of the world model (PyTorch default 0.01, as the official code).
    :param reward_bounds: ``(low, high)``: the reward head's output mapped into this range by a tanh, as the official
        code does (``(0, 2)`` on DMC at action repeat 2); ``None`` (the paper's text) leaves it unbounded.
    :param planner_kwargs: Arguments of :class:`MPPIPlanner` (set by the algorithm from its own arguments).
    :param features_extractor_class: Features extractor applied to observations before the encoder.
    :param features_extractor_kwargs: Its keyword arguments.
    :param normalize_images: Unused (images are not supported), kept for SB3 compatibility.
    :param optimizer_class: Optimizer of actor and critics (paper: Adam).
    :param optimizer_kwargs: Extra optimizer arguments of actor and critics.
    """

    #: ``None`` (float32), ``"bf16"`` or ``"fp16"``: autocast while planning / acting (set by the algorithm).
    mixed_precision: str | None = None
    #: On CUDA, replay each non-deterministic planning call from a CUDA graph of the whole call (set by the algorithm's
    #: ``cuda_graph_planner``), with this class (``sb3_worldmodels.accel.cuda_graph.PlanGraph``, set by the algorithm).
    cuda_graph_planner: bool = False
    plan_graph_class: type | None = None
    #: The planning output layer (:meth:`planning_head`) while :meth:`plan` runs: one copy serves all its steps.
    _planning_head: tuple[th.Tensor, th.Tensor] | None = None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: Sequence[int] | None = None,
        encoder_net_arch: Sequence[int] = (256,),
        activation_fn: type[nn.Module] = nn.Mish,
        latent_dim: int = 512,
        fsq_levels: Sequence[int] = (5, 3),
        n_critics: int = 5,
        actor_learning_rate: float = 3e-4,
        critic_learning_rate: float = 3e-4,
        world_model_weight_decay: float = 0.01,
        reward_bounds: tuple[float, float] | None = None,
        planner_kwargs: dict[str, Any] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
        )
        if isinstance(net_arch, dict):
            raise ValueError(
                "DCMPC takes net_arch as one list of hidden layer sizes, used by each of its MLP heads (dynamics, reward, "
                f"critics, actor; the encoder's is encoder_net_arch); SB3's dict form does not apply. Got {net_arch}."
            )
        self.net_arch = list(net_arch) if net_arch is not None else [512, 512]
        self.encoder_net_arch = list(encoder_net_arch)
        self.activation_fn = activation_fn
        self.latent_dim = latent_dim
        self.fsq_levels = list(fsq_levels)
        self.n_critics = n_critics
        self.actor_learning_rate = actor_learning_rate
        self.critic_learning_rate = critic_learning_rate
        self.world_model_weight_decay = world_model_weight_decay
        if reward_bounds is not None and not reward_bounds[0] < reward_bounds[1]:
            raise ValueError(f"reward_bounds must be (low, high) with low < high, got {reward_bounds}")
        self.reward_bounds = None if reward_bounds is None else (float(reward_bounds[0]), float(reward_bounds[1]))
        self.planner_kwargs = dict(planner_kwargs or {})
        self._plan_graphs: dict[tuple, Any] = {}  # process state: graphs are captured again after loading
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        action_dim = int(np.prod(self.action_space.shape))
        self.features_extractor = self.make_features_extractor()
        self.quantizer = FSQ(self.fsq_levels)
        #: The latent computations (dcmpc/latent.py); ``sb3_worldmodels.accel`` may put a faster layout in its place.
        self.latent = PaperLatent(self.quantizer, self.latent_dim)
        code_dim = self.latent_dim * self.quantizer.num_channels  # flattened latent fed to every head
        self.code_dim = code_dim
        act = self.activation_fn
        self.encoder = mlp(self.features_extractor.features_dim, self.encoder_net_arch, code_dim, act)
        self.dynamics = mlp(code_dim + action_dim, self.net_arch, self.latent_dim * self.quantizer.codebook_size, act)
        self.reward = mlp(code_dim + action_dim, self.net_arch, 1, act)
        self.critics = EnsembleMLP(self.n_critics, code_dim + action_dim, self.net_arch, 1, act)
        self.actor = mlp(code_dim, self.net_arch, action_dim, act)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target.train(False)
        self.actor_target.train(False)

        world_model = [*self.features_extractor.parameters(), *self.encoder.parameters(), *self.dynamics.parameters()]
        world_model += list(self.reward.parameters())
        self.world_model_optimizer = make_optimizer(
            th.optim.AdamW, world_model, lr_schedule(1), weight_decay=self.world_model_weight_decay
        )
        self.critic_optimizer = make_optimizer(
            self.optimizer_class, self.critics.parameters(), self.critic_learning_rate, **self.optimizer_kwargs
        )
        self.actor_optimizer = make_optimizer(
            self.optimizer_class, self.actor.parameters(), self.actor_learning_rate, **self.optimizer_kwargs
        )
        self.planner = MPPIPlanner(action_dim, **self.planner_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            encoder_net_arch=self.encoder_net_arch,
            activation_fn=self.activation_fn,
            latent_dim=self.latent_dim,
            fsq_levels=self.fsq_levels,
            n_critics=self.n_critics,
            actor_learning_rate=self.actor_learning_rate,
            critic_learning_rate=self.critic_learning_rate,
            world_model_weight_decay=self.world_model_weight_decay,
            reward_bounds=self.reward_bounds,
            planner_kwargs=self.planner_kwargs,
            lr_schedule=self._dummy_schedule,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
        )
        return data

    # ------------------------------------------------------------------ world model
    def encode(self, obs: PyTorchObs) -> th.Tensor:
        """Flattened FSQ codes ``(batch, latent_dim * channels)`` of observations; straight-through gradients."""
        z = self.encoder(self.extract_features(obs, self.features_extractor))
        return self.quantizer(z.view(z.shape[0], self.latent_dim, self.quantizer.num_channels)).flatten(1)

    def code_indices(self, codes: th.Tensor) -> th.Tensor:
        """Codebook index of every latent slot, ``(batch, latent_dim)``."""
        return self.quantizer.codes_to_indices(codes.view(codes.shape[0], self.latent_dim, self.quantizer.num_channels))

    def dynamics_logits(
        self, codes: th.Tensor, action: th.Tensor, head: tuple[th.Tensor, th.Tensor] | None = None
    ) -> th.Tensor:
        """Logits of the next code of every slot (DC-MPC eq. 2), in the layout of :attr:`latent`.

        :param head: The output layer as :attr:`latent` uses it (``latent.output_layer``), computed once for several
            calls; computed here when not given.
        """
        hidden = th.cat([codes, action], dim=-1)
        for layer in list(self.dynamics)[:-1]:
            hidden = layer(hidden)
        return self.latent.logits(hidden, self.latent.output_layer(self.dynamics[-1]) if head is None else head)

    def planning_head(self) -> tuple[th.Tensor, th.Tensor]:
        """The dynamics' output layer as planning uses it (``latent.output_layer(planning=True)``), once per call."""
        return self.latent.output_layer(self.dynamics[-1], planning=True)

    def predict_reward(self, codes: th.Tensor, action: th.Tensor) -> th.Tensor:
        """Predicted reward ``(batch,)``; with ``reward_bounds`` ``low + (high - low) * (tanh(x) + 1) / 2``."""
        reward = self.reward(th.cat([codes, action], dim=-1)).squeeze(-1)
        if self.reward_bounds is not None:
            low, high = self.reward_bounds
            reward = low + (high - low) * (th.tanh(reward) + 1) / 2
        return reward

    def q_values(
        self, codes: th.Tensor, action: th.Tensor, target: bool = False, members: th.Tensor | None = None
    ) -> th.Tensor:
        """Q-values of every critic of the ensemble (or of ``members`` only), ``(n_members, batch)``."""
        critics = self.critics_target if target else self.critics
        return critics(th.cat([codes, action], dim=-1), members).squeeze(-1)

    def act(self, codes: th.Tensor, target: bool = False) -> th.Tensor:
        """Deterministic action of the actor (policy prior) in [-1, 1]."""
        return th.tanh((self.actor_target if target else self.actor)(codes))

    # ---------------------------------------------------------- planner interface
    def imagine_step(self, latent: th.Tensor, action: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Expected next code ``softmax(logits) @ codebook`` and predicted reward (planning does not sample)."""
        head = self._planning_head if self._planning_head is not None else self.planning_head()
        return self._imagine_step(latent, action, *head)

    def _imagine_step(
        self, latent: th.Tensor, action: th.Tensor, head_weight: th.Tensor, head_bias: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        logits = self.dynamics_logits(latent, action, (head_weight, head_bias))
        return self.latent.planning_expected_code(logits), self.predict_reward(latent, action)

    def policy_prior(self, latent: th.Tensor) -> th.Tensor:
        return self.act(latent)

    def terminal_value(
        self, latent: th.Tensor, generator: th.Generator | None = None, action_noise: th.Tensor | None = None
    ) -> th.Tensor:
        """Average Q of two randomly chosen critics at the actor's action (DC-MPC / REDQ), plus ``action_noise``
        (clipped to the bounds) where given."""
        chosen = critic_subset(self.n_critics, 2, latent.device, generator)
        action = self.act(latent)
        if action_noise is not None:
            action = (action + action_noise).clamp(-1, 1)
        return self.q_values(latent, action, members=chosen).mean(dim=0)

    def compile_planner(self) -> None:
        """Compile the latent steps MPPI calls in its loops with ``torch.compile`` (same results, fewer kernel launches).

        On CUDA the mode is ``"reduce-overhead"``: the compiled steps are captured and replayed as CUDA graphs.
        The compiled functions belong to this process; they are not saved (``DCMPC(compile_planner=True)`` compiles
        again after loading).
        """
        cuda = self.device.type == "cuda"
        # Inside a CUDA graph of the whole call (cuda_graph_planner) the steps are plain compiled kernels.
        mode = "reduce-overhead" if cuda and not self.cuda_graph_planner else None
        imagine = th.compile(type(self)._imagine_step.__get__(self), mode=mode, dynamic=False)
        prior = th.compile(type(self).policy_prior.__get__(self), mode=mode, dynamic=False)
        if mode == "reduce-overhead":
            # A CUDA graph writes the outputs of every replay into the same memory, so a latent kept from one step
            # would be overwritten by the next replay (PyTorch raises when it is read): each step's outputs are copied.
            imagine, prior = _copying_outputs(imagine), _copying_outputs(prior)
        # Instance attributes shadow the methods of the same name for the planner's calls.
        self._imagine_step, self.policy_prior = imagine, prior

    # ------------------------------------------------------------------- acting
    def plan(
        self,
        obs: PyTorchObs,
        previous_mean: th.Tensor | None = None,
        episode_start: th.Tensor | None = None,
        deterministic: bool = False,
        exploration_std: float = 0.0,
    ) -> PlanResult:
        """Plan actions for a batch of observations; returns actions in [-1, 1] and the MPPI statistics.

        With ``deterministic=True`` the planner's noise comes from a generator seeded with a constant, so the same
        observation and warm start always give the same action, and no exploration noise is added.
        """
        if self.cuda_graph_planner and self.plan_graph_class is not None and self.device.type == "cuda" and not deterministic:
            return self._graphed_plan(obs, previous_mean, episode_start, exploration_std)
        generator = None
        if deterministic:
            generator = th.Generator(device=self.device).manual_seed(DETERMINISTIC_PLANNER_SEED)
        with th.inference_mode(), autocast(self.device, self.mixed_precision):
            return self._plan(obs, previous_mean, episode_start, 0.0 if deterministic else exploration_std, generator)

    def _plan(
        self,
        obs: PyTorchObs,
        previous_mean: th.Tensor | None,
        episode_start: th.Tensor | None,
        noise_std: float | th.Tensor,
        generator: th.Generator | None = None,
    ) -> PlanResult:
        """The planning call of :meth:`plan`, run eagerly or captured in a CUDA graph (:attr:`plan_graph_class`).

        :param noise_std: Std of the exploration noise, on the policy prior's actions and on the action chosen (drawn
            as :func:`~sb3_worldmodels.dcmpc.planner.noise_is_drawn` says).
        """
        latent = self.encode(obs)
        mean = self.planner.warm_start(previous_mean, episode_start, latent.shape[0], latent.device)
        # The reordered copy is not a parameter, so autocast would cast it again in every step: cast it once here.
        dtype = th.get_autocast_dtype(self.device.type) if self.mixed_precision else th.float32
        self._planning_head = tuple(t.to(dtype) for t in self.planning_head())
        try:
            result = self.planner.plan(self, latent, mean, policy_noise_std=noise_std, generator=generator)
        finally:
            self._planning_head = None
        action = result.action
        if noise_is_drawn(noise_std):
            action = (action + noise_std * th.randn_like(action)).clamp(-1, 1)
        return result._replace(action=action)

    def _graphed_plan(
        self, obs: PyTorchObs, previous_mean: th.Tensor | None, episode_start: th.Tensor | None, exploration_std: float
    ) -> PlanResult:
        """:meth:`plan` by replaying a CUDA graph of the whole call, captured at the first call for each shape of
        ``obs`` (and again if the parameters were moved to new memory)."""
        key = (self.mixed_precision, *((k, v.shape, v.dtype) for k, v in _tensor_items(obs)))
        graph = self._plan_graphs.get(key)
        if graph is None or graph.addresses != self.plan_graph_class.addresses_of(self):
            graph = self._plan_graphs[key] = self.plan_graph_class(self, obs)
        return graph(obs, previous_mean, episode_start, exploration_std)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.plan(observation, deterministic=deterministic).action

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Plan an action (SB3 signature).

        ``state`` is the planner's warm start, returned by the previous call, as SB3's recurrent policies return their
        hidden state: pass it back with ``episode_start`` to warm-start MPPI from the shifted previous plan, or pass
        ``None`` to plan from scratch. ``evaluate_policy`` does this for you.
        """
        self.set_training_mode(False)
        obs_tensor, vectorized_env = self.obs_to_tensor(as_contiguous(observation))
        check_predict_inputs(obs_tensor, state, episode_start)
        previous_mean = None if state is None else th.as_tensor(state[0], device=self.device)
        starts = None if episode_start is None else th.as_tensor(np.asarray(episode_start, dtype=bool), device=self.device)
        # As with SB3's TD3, exploration noise is added while learning (DCMPC._sample_action), not here.
        result = self.plan(obs_tensor, previous_mean, starts, deterministic, exploration_std=0.0)
        actions = to_env_actions(self.action_space, result.action.cpu().numpy(), vectorized_env, self.unscale_action)
        return actions, (result.mean.cpu().numpy(),)


MlpPolicy = DCMPCPolicy


def _tensor_items(obs: PyTorchObs) -> list[tuple[str, th.Tensor]]:
    """``(key, tensor)`` pairs of a Dict observation, ``[("", obs)]`` for a tensor."""
    return list(obs.items()) if isinstance(obs, dict) else [("", obs)]


def _copying_outputs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` whose tensor output, or tuple of tensors, is cloned (out of a CUDA graph's reused output memory)."""

    def copying(*args: Any) -> Any:
        out = fn(*args)
        return tuple(t.clone() for t in out) if isinstance(out, tuple) else out.clone()

    return copying


class DictVectorExtractor(BaseFeaturesExtractor):
    """The Box entries of a Dict observation, each flattened, concatenated in the Dict's key order.

    As SB3's ``CombinedExtractor`` for vectors, and a 0-d Box (dm_control walker's ``height``) is one feature: SB3's
    batched observation of a 0-d Box has no feature dimension, which ``nn.Flatten`` cannot flatten.
    """

    def __init__(self, observation_space: spaces.Dict):
        # Sizes after SB3's preprocessing (discrete observations one-hot encoded).
        sizes = {key: get_flattened_obs_dim(space) for key, space in observation_space.spaces.items()}
        super().__init__(observation_space, features_dim=sum(sizes.values()))
        self.keys = list(sizes)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        return th.cat([observations[key].reshape(observations[key].shape[0], -1) for key in self.keys], dim=1)


class MultiInputPolicy(DCMPCPolicy):
    """DC-MPC policy for Dict observation spaces (e.g. dm_control through shimmy): keys are flattened and concatenated."""

    def __init__(self, *args, features_extractor_class: type[BaseFeaturesExtractor] = DictVectorExtractor, **kwargs):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
