"""DC-MPC's discrete latent, as the paper writes it (Scannell et al., 2025, Sec. 3.1-3.2 and eq. 2-5).

The latent state is ``d`` slots, each one code of a fixed FSQ codebook of ``K`` vectors
(:class:`~sb3_worldmodels.dcmpc.fsq.FSQ`). The dynamics output, for every slot, logits over the ``K`` codes: here
``(batch, slots, K)``, the layout of the stored output layer and of the official code. Every function below is the
paper's equation in plain PyTorch; :class:`PaperLatent` gathers them for the algorithm. ``sb3_worldmodels.accel``
holds a faster layout of the same computations (``accel="none"`` runs these).
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.dcmpc.fsq import FSQ


def code_log_probs(logits: th.Tensor) -> th.Tensor:
    """``log p(k)`` of every code of every slot, ``log_softmax`` over the last (code) dimension (eq. 2)."""
    return F.log_softmax(logits, dim=-1)


def consistency_loss(log_probs: th.Tensor, target_indices: th.Tensor) -> th.Tensor:
    """Cross-entropy of the target codes, averaged over the slots, ``(batch,)`` (eq. 3).

    :param log_probs: :func:`code_log_probs`, ``(batch, slots, K)``.
    :param target_indices: Codebook indices of the encoded next observation, ``(batch, slots)``.
    """
    return -log_probs.gather(-1, target_indices.unsqueeze(-1)).squeeze(-1).mean(dim=-1)


def gumbel_noise(shape: tuple[int, ...], device: th.device | str, generator: th.Generator | None = None) -> th.Tensor:
    """Standard Gumbel samples ``-log(-log(U))``, ``U ~ Uniform(0, 1)`` kept away from 0."""
    uniform = th.rand(shape, device=device, generator=generator)
    return -th.log(-th.log(uniform.clamp(min=1e-20)))


def straight_through_sample(log_probs: th.Tensor, gumbel: th.Tensor, codebook: th.Tensor) -> th.Tensor:
    """Straight-through Gumbel-softmax sample of every slot's code (temperature 1), flattened ``(batch, slots * channels)``.

    Forward: the code of ``argmax(log p + g)``; backward: the gradient of the expected code under ``softmax(log p + g)``.

    :param log_probs: :func:`code_log_probs`, ``(batch, slots, K)``.
    :param gumbel: :func:`gumbel_noise` of the same shape.
    :param codebook: ``(K, channels)``.
    """
    perturbed = log_probs + gumbel
    soft = th.softmax(perturbed, dim=-1) @ codebook
    hard = codebook[perturbed.argmax(dim=-1)]
    return (hard + soft - soft.detach()).flatten(1)


def expected_code(logits: th.Tensor, codebook: th.Tensor) -> th.Tensor:
    """Expected code ``softmax(logits) @ codebook`` of every slot, flattened: the latent that planning rolls forward."""
    return (th.softmax(logits, dim=-1) @ codebook.to(logits.dtype)).flatten(1).float()


def most_likely_code(logits: th.Tensor) -> th.Tensor:
    """Index of the most likely code of every slot, ``(batch, slots)``."""
    return logits.argmax(dim=-1)


def critic_subset(n_critics: int, size: int, device: th.device | str, generator: th.Generator | None = None) -> th.Tensor:
    """``size`` distinct critics of the REDQ ensemble, uniformly at random: the indices of the largest of ``n_critics``
    uniform draws (kernels that a CUDA graph of the planning call captures as they are)."""
    return th.rand(n_critics, device=device, generator=generator).topk(min(size, n_critics)).indices


class PaperLatent:
    """The latent computations the algorithm and the planner call, in the paper's layout ``(batch, slots, K)``.

    ``sb3_worldmodels.accel.code_major.CodeMajorLatent`` has the same methods in another layout; the algorithm never
    looks at the layout of the logits, it only passes them from one method to the next.

    :param quantizer: The FSQ quantizer, whose codebook ``(K, channels)`` is read at each call (it follows the
        policy's device).
    :param latent_dim: Number of slots.
    """

    def __init__(self, quantizer: FSQ, latent_dim: int):
        self.quantizer, self.latent_dim = quantizer, latent_dim

    @property
    def codebook(self) -> th.Tensor:
        return self.quantizer.codebook

    def output_layer(self, layer: nn.Linear, planning: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """The dynamics' output layer as :meth:`logits` uses it (here as stored), computed once per update or planning
        call. ``planning``: for :meth:`planning_expected_code`."""
        return layer.weight, layer.bias

    def logits(self, hidden: th.Tensor, head: tuple[th.Tensor, th.Tensor]) -> th.Tensor:
        """Logits of every slot's next code from the dynamics' last hidden layer, ``(batch, slots, K)``."""
        return F.linear(hidden, *head).float().view(hidden.shape[0], self.latent_dim, -1)

    def noise_shape(self, steps: int, batch_size: int) -> tuple[int, ...]:
        """Shape of the Gumbel noise of ``steps`` rollout steps (the layout of :meth:`logits`, a leading step dimension)."""
        return (steps, batch_size, self.latent_dim, self.codebook.shape[0])

    def gumbel_noise(self, shape: tuple[int, ...], device: th.device) -> th.Tensor:
        return gumbel_noise(shape, device)

    def log_probs(self, logits: th.Tensor) -> th.Tensor:
        return code_log_probs(logits)

    def consistency_loss(self, log_probs: th.Tensor, target_indices: th.Tensor) -> th.Tensor:
        return consistency_loss(log_probs, target_indices)

    def sample(self, log_probs: th.Tensor, gumbel: th.Tensor) -> th.Tensor:
        return straight_through_sample(log_probs, gumbel, self.codebook)

    def expected_code(self, logits: th.Tensor) -> th.Tensor:
        return expected_code(logits, self.codebook)

    def planning_expected_code(self, logits: th.Tensor) -> th.Tensor:
        """:meth:`expected_code` of logits from the ``planning=True`` output layer (which may overwrite them)."""
        return expected_code(logits, self.codebook)

    def most_likely_code(self, logits: th.Tensor) -> th.Tensor:
        return most_likely_code(logits)
