"""DreamerV3's distributions, losses and return normaliser in plain PyTorch.

Hafner et al., *Mastering Diverse Domains through World Models*, arXiv 2301.04104v1 (January 2023). Each function is
one piece of the paper's text, named as there; the defaults are the paper's (and those of the official code of that
version, ``danijar/dreamerv3`` before its 2024 rewrite):

- ``symlog`` / ``symexp``: the squashing of vector observations, rewards and values;
- the two-hot discrete regression of rewards and values over 255 bins, evenly spaced from -20 to 20 in symlog
  space: ``two_hot``, ``two_hot_log_prob``, ``two_hot_mean``;
- the categorical latent: 32 categoricals of 32 classes, each mixed with 1% of a uniform distribution
  (``unimix_logits``) and sampled with straight-through gradients (``straight_through_sample``);
- KL balancing with free bits: ``kl_balance_losses``, the dynamics loss ``max(1, KL[sg(post) || prior])`` and
  the representation loss ``max(1, KL[post || sg(prior)])`` per time step, scaled 0.5 and 0.1 by the world-model loss;
- return normalisation: :class:`ReturnNormalizer`, the exponential moving average of the 5th to 95th
  percentile range of the lambda-returns, divided into them only once it exceeds 1.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import nn

#: Number of two-hot bins and their range in symlog space (the paper's and the official code's values).
TWO_HOT_BINS, TWO_HOT_LOW, TWO_HOT_HIGH = 255, -20.0, 20.0


def symlog(x: th.Tensor) -> th.Tensor:
    """``sign(x) ln(|x| + 1)``: close to the identity near 0, logarithmic for large ``|x|``."""
    return th.sign(x) * th.log1p(x.abs())


def symexp(x: th.Tensor) -> th.Tensor:
    """``sign(x) (exp(|x|) - 1)``, the inverse of :func:`symlog`."""
    return th.sign(x) * th.expm1(x.abs())


def two_hot_bins(
    n: int = TWO_HOT_BINS, low: float = TWO_HOT_LOW, high: float = TWO_HOT_HIGH, device: th.device | str | None = None
) -> th.Tensor:
    """The bin positions, in symlog space: ``n`` values evenly spaced from ``low`` to ``high``."""
    return th.linspace(low, high, n, device=device)


def two_hot(x: th.Tensor, bins: th.Tensor) -> th.Tensor:
    """The two-hot encoding of ``x`` (already in the bins' space) over the sorted ``bins``: shape ``(*x.shape, n)``.

    The weight is split between the two bins around ``x`` in proportion to how close ``x`` is to each, so that the
    weighted mean of the bins is ``x``; a value on a bin puts all its weight there, and values outside the bins put
    it all on the nearest end.
    """
    x = x.to(bins.dtype).clamp(bins[0], bins[-1])
    below = (th.searchsorted(bins, x.contiguous(), right=True) - 1).clamp(0, len(bins) - 2)
    low, high = bins[below], bins[below + 1]
    weight_above = ((x - low) / (high - low)).clamp(0.0, 1.0)
    target = th.zeros(*x.shape, len(bins), dtype=bins.dtype, device=x.device)
    target.scatter_(-1, below.unsqueeze(-1), (1 - weight_above).unsqueeze(-1))
    target.scatter_add_(-1, (below + 1).unsqueeze(-1), weight_above.unsqueeze(-1))
    return target


def two_hot_log_prob(logits: th.Tensor, y: th.Tensor, bins: th.Tensor) -> th.Tensor:
    """The log-likelihood of the targets ``y`` under the predicted bin ``logits``: the cross-entropy of
    ``softmax(logits)`` against the two-hot encoding of ``symlog(y)``, with the sign of a log-likelihood."""
    return (two_hot(symlog(y), bins) * F.log_softmax(logits, dim=-1)).sum(-1)


def two_hot_mean(logits: th.Tensor, bins: th.Tensor) -> th.Tensor:
    """The prediction of a two-hot head: ``symexp(softmax(logits) . bins)``."""
    return symexp(F.softmax(logits, dim=-1) @ bins)


def unimix_logits(logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """Logits of ``(1 - unimix) softmax(logits) + unimix / classes`` over the last dimension: every class keeps a
    probability of at least ``unimix / classes``, which bounds the KL terms and the log-probabilities."""
    if unimix == 0.0:
        return logits
    probs = (1 - unimix) * F.softmax(logits, dim=-1) + unimix / logits.shape[-1]
    return probs.log()


def straight_through_sample(logits: th.Tensor, generator: th.Generator | None = None) -> th.Tensor:
    """A one-hot sample of the categoricals over the last dimension whose gradient is that of their probabilities
    (``one_hot + probs - sg(probs)``)."""
    probs = F.softmax(logits, dim=-1)
    flat = probs.detach().reshape(-1, probs.shape[-1])
    index = th.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + probs - probs.detach()


def categorical_kl(p_logits: th.Tensor, q_logits: th.Tensor) -> th.Tensor:
    """``KL[p || q]`` of independent categoricals with logits of shape ``(..., latents, classes)``, summed over the
    latents: one value per leading index (per time step of a sequence)."""
    p_log = F.log_softmax(p_logits, dim=-1)
    return (p_log.exp() * (p_log - F.log_softmax(q_logits, dim=-1))).sum((-2, -1))


def kl_balance_losses(
    posterior_logits: th.Tensor, prior_logits: th.Tensor, free_bits: float = 1.0
) -> tuple[th.Tensor, th.Tensor]:
    """The dynamics and representation losses per step, before their scales (0.5 and 0.1):
    ``max(free_bits, KL[sg(post) || prior])``, which trains the prior, and ``max(free_bits, KL[post || sg(prior)])``,
    which trains the posterior. Below ``free_bits`` nats a step gives no gradient."""
    dynamics = categorical_kl(posterior_logits.detach(), prior_logits).clamp(min=free_bits)
    representation = categorical_kl(posterior_logits, prior_logits.detach()).clamp(min=free_bits)
    return dynamics, representation


class ReturnNormalizer(nn.Module):
    """The scale the lambda-returns are divided by in the actor loss: ``max(1, S)``, where ``S`` is an
    exponential moving average (decay 0.99) of the range between the 5th and 95th percentiles of each batch of
    returns. Returns that already vary less than 1 are left as they are; large ones are scaled down, without letting
    a few outliers set the scale. The averages start at 0 and are kept in the state dict."""

    def __init__(self, decay: float = 0.99, low_percentile: float = 5.0, high_percentile: float = 95.0, limit: float = 1.0):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 <= low_percentile < high_percentile <= 100.0:
            raise ValueError(f"need 0 <= low_percentile < high_percentile <= 100, got {low_percentile}, {high_percentile}")
        self.decay, self.limit = decay, limit
        self.quantiles = (low_percentile / 100, high_percentile / 100)
        self.register_buffer("low", th.zeros(()))
        self.register_buffer("high", th.zeros(()))

    @th.no_grad()
    def update(self, returns: th.Tensor, mask: th.Tensor | None = None) -> None:
        """Move the averages towards the percentiles of ``returns``: of all its entries, or of those where ``mask``
        (broadcast to ``returns``) is true. Without any entry to read, the averages stay where they are."""
        values = returns.detach().float()
        if mask is not None:  # NaN marks what to leave out: no data-dependent shape, so no wait for the device
            values = values.masked_fill(~mask.bool().expand_as(values), float("nan"))
        low, high = th.nanquantile(values.flatten(), th.tensor(self.quantiles, device=values.device))
        self.low.copy_(th.where(th.isnan(low), self.low, self.decay * self.low + (1 - self.decay) * low))
        self.high.copy_(th.where(th.isnan(high), self.high, self.decay * self.high + (1 - self.decay) * high))

    def scale(self) -> th.Tensor:
        """``max(limit, high - low)``: what the returns (and the baseline) are divided by."""
        return (self.high - self.low).clamp(min=self.limit)
