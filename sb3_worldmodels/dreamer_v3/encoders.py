"""DreamerV3's observation encoders and decoders (arXiv 2301.04104v1), in plain PyTorch.

- Images (square, a power of 2 in size, values in [0, 1]): ``x - 0.5``, then convolutions of kernel 4 and stride 2,
  each followed by LayerNorm over the channels and SiLU, doubling the channels from ``depth`` until the resolution is
  4x4; the decoder mirrors it from a linear layer with transposed convolutions, the last one plain, and adds 0.5.
  Its loss is the squared error summed over pixels.
- Vectors: ``symlog`` of the observation into an MLP; the decoder predicts ``symlog(x)`` and its loss is the squared
  error in symlog space, summed over the vector.
"""

from __future__ import annotations

import math

import torch as th
from torch import nn

from sb3_worldmodels.dreamer_v3.distributions import symlog
from sb3_worldmodels.dreamer_v3.rssm import init_weight_, mlp

#: Resolution at which the image encoder stops halving and the decoder starts.
MIN_RESOLUTION = 4


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of ``(batch, channels, height, width)`` images (epsilon 1e-3)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-3)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(size: int) -> int:
    stages = math.log2(size) - math.log2(MIN_RESOLUTION)
    if size < 2 * MIN_RESOLUTION or stages != int(stages):
        raise ValueError(f"images must be square with a size of a power of 2 >= {2 * MIN_RESOLUTION}, got {size}")
    return int(stages)


class ImageEncoder(nn.Module):
    """``(batch, channels, size, size)`` images in [0, 1] to a flat embedding of ``embed_dim`` values."""

    def __init__(self, channels: int, size: int, depth: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, out_channels = channels, depth
        for _ in range(_stages(size)):
            conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
            init_weight_(conv.weight)
            layers += [conv, ChannelNorm(out_channels), nn.SiLU()]
            in_channels, out_channels = out_channels, 2 * out_channels
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.embed_dim = in_channels * MIN_RESOLUTION**2

    def forward(self, images: th.Tensor) -> th.Tensor:
        return self.net(images - 0.5)


class ImageDecoder(nn.Module):
    """Model features to ``(batch, channels, size, size)`` images (the mean of a unit-variance Gaussian)."""

    def __init__(self, in_features: int, channels: int, size: int, depth: int = 32):
        super().__init__()
        stages = _stages(size)
        width = depth * 2 ** (stages - 1)
        self.start_shape = (width, MIN_RESOLUTION, MIN_RESOLUTION)
        self.linear = nn.Linear(in_features, width * MIN_RESOLUTION**2)
        init_weight_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        layers: list[nn.Module] = []
        for stage in range(stages):
            last = stage == stages - 1
            out_channels = channels if last else width // 2
            conv = nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1, bias=last)
            init_weight_(conv.weight)  # (in, out, kh, kw): the fans' average is the same either way round
            if last:
                nn.init.zeros_(conv.bias)
                layers.append(conv)
            else:
                layers += [conv, ChannelNorm(out_channels), nn.SiLU()]
            width = out_channels
        self.net = nn.Sequential(*layers)

    def forward(self, features: th.Tensor) -> th.Tensor:
        leading = features.shape[:-1]
        x = self.linear(features.reshape(-1, features.shape[-1])).view(-1, *self.start_shape)
        images = self.net(x) + 0.5
        return images.view(*leading, *images.shape[1:])

    @staticmethod
    def log_prob(prediction: th.Tensor, images: th.Tensor) -> th.Tensor:
        """Minus the squared error summed over each image (a unit-variance Gaussian up to a constant)."""
        return -(prediction - images).square().flatten(-3).sum(-1)


class VectorEncoder(nn.Module):
    """A flat observation vector to an embedding: ``symlog`` then an MLP of normalised layers."""

    def __init__(self, obs_dim: int, units: int = 512, layers: int = 2):
        super().__init__()
        self.net = mlp(obs_dim, units, layers)
        self.embed_dim = units

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.net(symlog(obs))


class VectorDecoder(nn.Module):
    """Model features to the prediction of ``symlog(obs)``."""

    def __init__(self, in_features: int, obs_dim: int, units: int = 512, layers: int = 2):
        super().__init__()
        self.net = mlp(in_features, units, layers)
        self.out = nn.Linear(units, obs_dim)
        init_weight_(self.out.weight, uniform=True)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: th.Tensor) -> th.Tensor:
        return self.out(self.net(features))

    @staticmethod
    def log_prob(prediction: th.Tensor, obs: th.Tensor) -> th.Tensor:
        """Minus the squared error in symlog space, summed over the vector."""
        return -(prediction - symlog(obs)).square().sum(-1)
