import math

import pytest
import torch as th

from sb3_worldmodels.dreamer_v3.distributions import (
    ReturnNormalizer,
    categorical_kl,
    kl_balance_losses,
    straight_through_sample,
    symexp,
    symlog,
    two_hot,
    two_hot_bins,
    two_hot_log_prob,
    two_hot_mean,
    unimix_logits,
)


def test_symlog_hand_values_and_symexp_inverts_it():
    x = th.tensor([0.0, math.e - 1, -(math.e**2 - 1), 1e6])
    assert th.allclose(symlog(x), th.tensor([0.0, 1.0, -2.0, math.log(1e6 + 1)]))
    y = th.linspace(-15, 15, 101, dtype=th.float64)
    assert th.allclose(symlog(symexp(y)), y) and th.allclose(symexp(symlog(y)), y)


def test_two_hot_splits_the_weight_between_the_two_nearest_bins():
    bins = th.tensor([-1.0, 0.0, 1.0, 2.0])
    x = th.tensor([0.25, 1.0, -1.0, 2.0, 5.0, -3.0, 1.9])
    expected = th.tensor(
        [
            [0.0, 0.75, 0.25, 0.0],
            [0.0, 0.0, 1.0, 0.0],  # on a bin: all of it there
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],  # outside: the nearest end
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.1, 0.9],
        ]
    )
    assert th.allclose(two_hot(x, bins), expected, atol=1e-6)
    assert two_hot(th.zeros(3, 5), bins).shape == (3, 5, 4)


def test_the_paper_bins_and_the_mean_of_a_two_hot_prediction_is_its_target():
    bins = two_hot_bins()
    assert len(bins) == 255 and bins[0] == -20 and bins[-1] == 20 and th.isclose(bins[1] - bins[0], th.tensor(40 / 254))
    y = th.tensor([-1234.5, -0.3, 0.0, 3.7, 250.0])
    logits = (two_hot(symlog(y), bins) + 1e-30).log()  # a head whose softmax is exactly the two-hot target
    assert th.allclose(two_hot_mean(logits, bins), y, rtol=1e-4, atol=1e-4)
    # The log-likelihood is the cross-entropy against the target: uniform logits give log(1 / 255) for any target.
    assert th.allclose(two_hot_log_prob(th.zeros(5, 255), y, bins), th.full((5,), -math.log(255)))
    assert th.allclose(two_hot_log_prob(logits, y, bins), (two_hot(symlog(y), bins) * logits.log_softmax(-1)).sum(-1))


def test_unimix_keeps_one_percent_uniform():
    logits = th.tensor([0.0, math.log(3.0)])  # softmax (0.25, 0.75)
    assert th.allclose(unimix_logits(logits).exp(), th.tensor([0.25 * 0.99 + 0.005, 0.75 * 0.99 + 0.005]))
    probs = unimix_logits(th.tensor([[-100.0, 0.0, 100.0, 0.0]])).exp()
    assert th.allclose(probs.sum(-1), th.ones(1)) and probs.min() >= 0.01 / 4 - 1e-7
    assert th.equal(unimix_logits(logits, 0.0), logits)


def test_straight_through_sample_is_one_hot_with_the_gradient_of_the_probabilities():
    logits = th.randn(6, 32, 32, requires_grad=True)
    sample = straight_through_sample(logits, th.Generator().manual_seed(0))
    assert sample.shape == (6, 32, 32) and th.allclose(sample.sum(-1), th.ones(6, 32))
    assert th.allclose(sample.detach(), sample.detach().round(), atol=1e-6)  # one-hot up to float rounding
    weights = th.randn(6, 32, 32)
    (sample * weights).sum().backward()
    expected_logits = logits.detach().clone().requires_grad_()
    (expected_logits.softmax(-1) * weights).sum().backward()
    assert th.allclose(logits.grad, expected_logits.grad)
    # The classes are drawn with their probabilities.
    draws = straight_through_sample(th.tensor([0.0, math.log(3.0)]).expand(20000, 1, 2), th.Generator().manual_seed(1))
    assert abs(draws[:, 0, 1].mean().item() - 0.75) < 0.015


def test_kl_balance_hand_computed_with_free_bits_and_gradients_to_one_side_each():
    post = th.log(th.tensor([[[0.5, 0.5], [0.5, 0.5]]])).requires_grad_()  # 1 step, 2 latents of 2 classes
    prior = th.log(th.tensor([[[0.25, 0.75], [0.5, 0.5]]])).requires_grad_()
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.1438; the second latent adds 0
    assert th.allclose(categorical_kl(post, prior), th.tensor([kl]))
    dynamics, representation = kl_balance_losses(post, prior, free_bits=0.0)
    assert th.allclose(dynamics, th.tensor([kl])) and th.allclose(representation, th.tensor([kl]))
    dynamics.sum().backward()
    assert post.grad is None and prior.grad.abs().sum() > 0  # the dynamics loss trains the prior only
    prior.grad = None
    representation.sum().backward()
    assert prior.grad is None and post.grad.abs().sum() > 0  # the representation loss trains the posterior only
    free = kl_balance_losses(post, prior)  # free bits 1: below one nat, a constant 1 without gradient
    assert all(th.equal(loss, th.ones(1)) for loss in free)
    post.grad = None
    sum(free).sum().backward()
    assert th.equal(post.grad, th.zeros_like(post))


def test_free_bits_apply_per_step_and_leave_a_kl_above_them_as_it_is():
    # Two steps: one latent of 2 classes. Step 0: KL[(0.5, 0.5) || (0.05, 0.95)] = 0.5 ln 10 + 0.5 ln(10/19) = 0.830 nats,
    # under 1 free nat; step 1: KL[(0.99, 0.01) || (0.01, 0.99)] = 0.98 ln 99 = 4.503 nats, over it.
    post = th.log(th.tensor([[[0.5, 0.5]], [[0.99, 0.01]]])).requires_grad_()
    prior = th.log(th.tensor([[[0.05, 0.95]], [[0.01, 0.99]]])).requires_grad_()
    kl0, kl1 = 0.5 * math.log(10) + 0.5 * math.log(10 / 19), 0.98 * math.log(99)
    dynamics, representation = kl_balance_losses(post, prior, free_bits=1.0)
    expected = th.tensor([1.0, kl1])  # per step: max(1, KL), not max(1, mean KL) = 2.67 for both
    assert kl0 < 1 < kl1 and th.allclose(dynamics, expected) and th.allclose(representation, expected)
    representation.sum().backward()
    assert post.grad[0].abs().sum() == 0 and post.grad[1].abs().sum() > 0  # only the step over its free bits learns


def test_return_normalizer_follows_the_percentile_range_and_divides_only_above_one():
    norm = ReturnNormalizer()
    assert norm.scale() == 1.0  # nothing seen yet
    returns = th.arange(101.0)  # percentiles 5 and 95 are 5 and 95
    norm.update(returns)
    assert th.isclose(norm.low, th.tensor(0.05)) and th.isclose(norm.high, th.tensor(0.95))
    assert norm.scale() == 1.0  # a range of 0.9 so far: left as it is
    for _ in range(2000):
        norm.update(returns)
    assert th.isclose(norm.scale(), th.tensor(90.0), rtol=1e-4)
    state = norm.state_dict()
    assert set(state) == {"low", "high"}
    other = ReturnNormalizer()
    other.load_state_dict(state)
    assert other.scale() == norm.scale()
    with pytest.raises(ValueError, match="decay must be in"):
        ReturnNormalizer(decay=1.0)
    # A mask leaves entries out; with none left the averages stay where they are.
    masked = ReturnNormalizer(decay=0.0)
    masked.update(th.tensor([1.0, 2.0, 1000.0]), mask=th.tensor([True, True, False]))
    assert th.isclose(masked.low, th.tensor(1.05)) and th.isclose(masked.high, th.tensor(1.95))
    masked.update(th.tensor([7.0, 8.0]), mask=th.tensor([False, False]))
    assert th.isclose(masked.low, th.tensor(1.05)) and th.isclose(masked.high, th.tensor(1.95))
