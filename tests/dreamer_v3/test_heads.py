import math

import torch as th

from sb3_worldmodels.dreamer_v3.heads import Actor, BernoulliHead, TwoHotHead


def test_two_hot_head_starts_at_zero_and_learns_a_large_target():
    th.manual_seed(0)
    head = TwoHotHead(8, 16, 2)
    features = th.randn(5, 8)
    assert th.allclose(head.mean(features), th.zeros(5), atol=1e-6)  # zero output layer: uniform over symmetric bins
    assert th.allclose(head.log_prob(features, th.full((5,), 123.0)), th.full((5,), -math.log(255)))
    optimizer = th.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        (-head.log_prob(features, th.full((5,), 1000.0)).mean()).backward()
        optimizer.step()
    assert th.allclose(head.mean(features), th.full((5,), 1000.0), rtol=0.05)


def test_bernoulli_head_log_prob():
    head = BernoulliHead(4, 8, 1)
    with th.no_grad():
        head.out.weight.zero_()
    features = th.randn(3, 4)
    assert th.allclose(head.log_prob(features, th.tensor([1.0, 0.0, 1.0])), th.full((3,), math.log(0.5)))


def test_continuous_actor_is_a_bounded_normal():
    actor = Actor(4, 2, discrete=False, units=8, layers=1)
    with th.no_grad():
        for layer in (actor.out, actor.std):
            layer.weight.zero_()
        actor.out.bias.fill_(math.atanh(0.5))
    distribution = actor(th.randn(3, 4))
    assert th.allclose(distribution.mean, th.full((3, 2), 0.5))
    assert th.allclose(distribution.stddev, th.full((3, 2), 0.9 / (1 + math.exp(-2.0)) + 0.1))
    with th.no_grad():
        actor.std.bias.fill_(100.0)
    assert th.allclose(actor(th.randn(3, 4)).stddev, th.ones(3, 2))
    with th.no_grad():
        actor.std.bias.fill_(-100.0)
    assert th.allclose(actor(th.randn(3, 4)).stddev, th.full((3, 2), 0.1))
    sample = actor(th.randn(3, 4)).rsample()
    sample.sum().backward()
    assert actor.out.bias.grad is not None  # gradients reach the actor through its samples
    assert th.allclose(actor.mode(th.randn(3, 4)), th.full((3, 2), 0.5))


def test_discrete_actor_is_a_unimix_categorical_with_straight_through_samples():
    actor = Actor(4, 3, discrete=True, units=8, layers=1)
    with th.no_grad():
        actor.out.weight.zero_()
        actor.out.bias.copy_(th.tensor([100.0, 0.0, 0.0]))
    distribution = actor(th.randn(2, 4))
    assert th.allclose(distribution.probs, th.tensor([[0.99 + 0.01 / 3, 0.01 / 3, 0.01 / 3]] * 2), atol=1e-6)
    sample = distribution.rsample()
    assert th.allclose(sample.detach().sum(-1), th.ones(2))
    (sample * th.randn(3)).sum().backward()
    assert actor.out.bias.grad is not None
    assert th.equal(actor.mode(th.randn(2, 4)), th.tensor([[1.0, 0.0, 0.0]] * 2))
