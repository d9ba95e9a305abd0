"""DreamerV3's world model and its loss (arXiv 2301.04104v1, "world model learning"), in plain PyTorch.

``L = beta_pred L_pred + beta_dyn L_dyn + beta_rep L_rep`` with ``beta = (1, 0.5, 0.1)``: the prediction loss is minus
the log-likelihood of the observations (images: squared error; vectors: squared error in symlog space), of the rewards
(two-hot in symlog space) and of the continuation flags; the dynamics and representation losses are the balanced KL
terms with 1 free nat per step (:func:`~sb3_worldmodels.dreamer_v3.distributions.kl_balance_losses`). Each term is
averaged over the steps that belong to the sampled sequence's episode.

Sequences come as :class:`~sb3_worldmodels.common.buffers.SequenceSamples` lay them out: observations ``o_0..o_L``,
the action ``a_{t-1}`` that led to each ``o_t`` (zero where an episode starts), and per transition ``t`` the reward
``r_t`` and the termination flag that the state of ``o_{t+1}`` predicts.
"""

from __future__ import annotations

import torch as th
from torch import nn

from sb3_worldmodels.common.buffers import masked_mean
from sb3_worldmodels.dreamer_v3.distributions import kl_balance_losses, symexp
from sb3_worldmodels.dreamer_v3.encoders import ImageDecoder, ImageEncoder, VectorDecoder, VectorEncoder
from sb3_worldmodels.dreamer_v3.heads import BernoulliHead, TwoHotHead
from sb3_worldmodels.dreamer_v3.rssm import RSSM, RSSMState

#: The loss scales of the paper: prediction, dynamics, representation.
LOSS_SCALES = {"prediction": 1.0, "dynamics": 0.5, "representation": 0.1}


class WorldModel(nn.Module):
    """Encoders, RSSM, decoders, reward and continuation heads.

    :param vector_dims: Size of each flat vector observation, by key.
    :param image_shapes: ``(channels, size, size)`` of each image observation (values in [0, 1]), by key.
    :param action_dim: Size of the action input (one-hot for discrete actions).
    :param deter: Size of the GRU state.
    :param units: Width of the MLPs.
    :param layers: Hidden layers of the MLPs.
    :param cnn_depth: Channels of the first convolution.
    :param stoch: Number of categorical latents.
    :param classes: Classes per latent.
    :param free_bits: Free nats per step of the KL terms.
    """

    def __init__(
        self,
        vector_dims: dict[str, int],
        image_shapes: dict[str, tuple[int, int, int]],
        action_dim: int,
        deter: int = 512,
        units: int = 512,
        layers: int = 2,
        cnn_depth: int = 32,
        stoch: int = 32,
        classes: int = 32,
        free_bits: float = 1.0,
    ):
        super().__init__()
        if not vector_dims and not image_shapes:
            raise ValueError("the world model needs at least one observation")
        self.keys = [*vector_dims, *image_shapes]
        self.image_keys = set(image_shapes)
        self.free_bits = free_bits
        # As the official code: every vector observation goes, concatenated, through one MLP encoder and comes out of
        # one decoder with an output per key; image observations are stacked along their channels through one CNN
        # (one CNN per image size, where sizes differ).
        self.vector_keys, self.vector_sizes = list(vector_dims), list(vector_dims.values())
        by_size: dict[int, list[str]] = {}
        for key, (_, size, _) in image_shapes.items():
            by_size.setdefault(size, []).append(key)
        self.image_groups = [(f"image{size}", keys, [image_shapes[k][0] for k in keys]) for size, keys in by_size.items()]
        encoders: dict[str, nn.Module] = {}
        if vector_dims:
            encoders["vector"] = VectorEncoder(sum(self.vector_sizes), units, layers)
        for name, keys, channels in self.image_groups:
            encoders[name] = ImageEncoder(sum(channels), image_shapes[keys[0]][1], cnn_depth)
        self.encoders = nn.ModuleDict(encoders)
        embed_dim = sum(encoder.embed_dim for encoder in self.encoders.values())
        self.rssm = RSSM(embed_dim, action_dim, deter=deter, stoch=stoch, classes=classes, units=units)
        features = self.rssm.feature_dim
        decoders: dict[str, nn.Module] = {}
        if vector_dims:
            decoders["vector"] = VectorDecoder(features, sum(self.vector_sizes), units, layers)
        for name, keys, channels in self.image_groups:
            decoders[name] = ImageDecoder(features, sum(channels), image_shapes[keys[0]][1], cnn_depth)
        self.decoders = nn.ModuleDict(decoders)
        self.reward = TwoHotHead(features, units, layers)
        self.continuation = BernoulliHead(features, units, layers)

    def _grouped(self, obs: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        """The observations as the encoders and decoders take them: vectors concatenated, images stacked by size."""
        grouped = {}
        if self.vector_keys:
            grouped["vector"] = th.cat([obs[key] for key in self.vector_keys], dim=-1)
        for name, keys, _ in self.image_groups:
            grouped[name] = th.cat([obs[key] for key in keys], dim=-3)
        return grouped

    def embed(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        """The concatenated embeddings of observations with any leading shape."""
        embeds = []
        for name, value in self._grouped(obs).items():
            event = 1 if name == "vector" else 3
            lead = value.shape[: value.dim() - event]
            flat = value.reshape(-1, *value.shape[len(lead) :])
            embeds.append(self.encoders[name](flat).view(*lead, -1))
        return th.cat(embeds, dim=-1)

    def decode(self, features: th.Tensor) -> dict[str, th.Tensor]:
        """The predicted observations, in observation space (images in [0, 1], vectors through ``symexp``)."""
        out = {}
        if self.vector_keys:
            vectors = symexp(self.decoders["vector"](features)).split(self.vector_sizes, dim=-1)
            out.update(zip(self.vector_keys, vectors, strict=True))
        for name, keys, channels in self.image_groups:
            out.update(zip(keys, self.decoders[name](features).split(channels, dim=-3), strict=True))
        return {key: out[key] for key in self.keys}

    def observation_log_prob(self, features: th.Tensor, obs: dict[str, th.Tensor]) -> th.Tensor:
        """The log-likelihood of every observation, summed over the keys, with the shape of ``features[..., 0]``."""
        total = th.zeros(features.shape[:-1], device=features.device)
        for name, value in self._grouped(obs).items():
            decoder = self.decoders[name]
            total = total + decoder.log_prob(decoder(features), value)
        return total

    def loss(
        self,
        obs: dict[str, th.Tensor],
        previous_actions: th.Tensor,
        is_first: th.Tensor,
        rewards: th.Tensor,
        terminations: th.Tensor,
        mask: th.Tensor,
        generator: th.Generator | None = None,
        free_bits: float | None = None,
    ) -> tuple[th.Tensor, dict[str, th.Tensor], RSSMState]:
        """The world-model loss of a batch of sequences.

        :param obs: ``o_0..o_L`` by key, ``(B, L + 1, ...)``.
        :param previous_actions: ``a_{t-1}`` for each ``o_t``, ``(B, L + 1, action_dim)``.
        :param is_first: ``(B, L + 1)``, true where ``o_t`` starts an episode (the state restarts there).
        :param rewards: ``r_0..r_{L-1}``, ``(B, L)``.
        :param terminations: ``(B, L)``, 1 where transition ``t`` ended the episode.
        :param mask: ``(B, L)``, 1 for the transitions of the sequence's own episode.
        :param free_bits: Free nats per step of the KL terms (``None``: the model's ``free_bits``).
        :return: The loss, its terms for logging, and the posterior states ``(B, L + 1, ...)`` (detached).
        """
        posterior, prior = self.rssm.observe(self.embed(obs), previous_actions, is_first, generator=generator)
        features = self.rssm.features(posterior)
        observed = th.cat([th.ones_like(mask[:, :1]), mask], dim=1)
        observation = -masked_mean(self.observation_log_prob(features, obs), observed)
        reward = -masked_mean(self.reward.log_prob(features[:, 1:], rewards), mask)
        continuation = -masked_mean(self.continuation.log_prob(features[:, 1:], 1.0 - terminations), mask)
        dynamics, representation = kl_balance_losses(
            posterior.logits, prior.logits, self.free_bits if free_bits is None else free_bits
        )
        dynamics, representation = masked_mean(dynamics, observed), masked_mean(representation, observed)
        loss = (
            LOSS_SCALES["prediction"] * (observation + reward + continuation)
            + LOSS_SCALES["dynamics"] * dynamics
            + LOSS_SCALES["representation"] * representation
        )
        stats = {
            "world_model/loss": loss.detach(),
            "world_model/observation_loss": observation.detach(),
            "world_model/reward_loss": reward.detach(),
            "world_model/continuation_loss": continuation.detach(),
            "world_model/dynamics_loss": dynamics.detach(),
            "world_model/representation_loss": representation.detach(),
        }
        return loss, stats, RSSMState(*(part.detach() for part in posterior))
