import pytest
import torch as th

from sb3_worldmodels.dreamer_v3.distributions import symlog
from sb3_worldmodels.dreamer_v3.encoders import ChannelNorm, ImageDecoder, ImageEncoder, VectorDecoder, VectorEncoder


def test_image_encoder_halves_to_four_by_four_and_doubles_the_channels():
    encoder = ImageEncoder(3, 64, depth=8)
    convs = [m for m in encoder.net if isinstance(m, th.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64] and all(c.bias is None for c in convs)
    assert encoder.embed_dim == 64 * 16 and encoder(th.rand(2, 3, 64, 64)).shape == (2, 1024)
    assert ImageEncoder(1, 32, depth=4)(th.rand(5, 1, 32, 32)).shape == (5, 16 * 16)
    with pytest.raises(ValueError, match="power of 2"):
        ImageEncoder(3, 48)


def test_image_decoder_mirrors_the_encoder_and_starts_around_one_half():
    decoder = ImageDecoder(20, 3, 64, depth=8)
    convs = [m for m in decoder.net if isinstance(m, th.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [32, 16, 8, 3] and convs[-1].bias is not None
    features = th.randn(4, 6, 20)  # leading dimensions are kept
    images = decoder(features)
    assert images.shape == (4, 6, 3, 64, 64) and abs(images.mean().item() - 0.5) < 0.2
    target = th.rand(4, 6, 3, 64, 64)
    assert th.allclose(ImageDecoder.log_prob(images, target), -((images - target) ** 2).sum((-3, -2, -1)))


def test_channel_norm_normalises_each_pixel_over_the_channels():
    x = th.randn(2, 6, 5, 5) * 3 + 1
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    assert th.allclose(ChannelNorm(6)(x), (x - mean) / (var + 1e-3).sqrt(), atol=1e-5)


def test_vector_encoder_reads_symlog_and_decoder_loss_is_in_symlog_space():
    encoder = VectorEncoder(3, units=16, layers=2)
    obs = th.tensor([[1e4, -2.0, 0.5]])
    assert th.allclose(encoder(obs), encoder.net(symlog(obs)))
    decoder = VectorDecoder(10, 3, units=16, layers=1)
    prediction = symlog(obs) + th.tensor([[0.1, -0.2, 0.0]])
    assert th.allclose(VectorDecoder.log_prob(prediction, obs), th.tensor([-(0.01 + 0.04)]))
    assert decoder(th.randn(7, 10)).shape == (7, 3)
