import copy

import torch as th

from sb3_worldmodels.dreamer_v3.behavior import (
    Trajectory,
    actor_loss,
    critic_loss,
    imagined_weights,
    returns_and_values,
    update_slow_critic,
)
from sb3_worldmodels.dreamer_v3.distributions import ReturnNormalizer, symlog, two_hot
from sb3_worldmodels.dreamer_v3.heads import Actor, TwoHotHead


def constant_head(value: float, in_features: int = 4) -> TwoHotHead:
    """A two-hot head that predicts ``value`` everywhere: zero weights, the target's two-hot as its logits."""
    head = TwoHotHead(in_features, 8, 1)
    with th.no_grad():
        head.out.bias.copy_((two_hot(symlog(th.tensor(value)), head.bins) + 1e-30).log())
    return head


def test_imagined_weights_hand_computed():
    continues = th.tensor([1.0, 1.0, 0.5, 1.0]).unsqueeze(1)
    expected = th.tensor([1.0, 0.9, 0.405, 0.3645]).unsqueeze(1)  # cumprod(0.9 c) / 0.9
    assert th.allclose(imagined_weights(continues, 0.9), expected)


def test_lambda_returns_along_an_imagined_trajectory_hand_computed():
    trajectory = Trajectory(th.randn(3, 2, 4), th.zeros(2, 2, 1), th.zeros(2, 2), th.zeros(2, 2), th.ones(3, 2))  # H = 2
    returns, values = returns_and_values(trajectory, constant_head(1.0), constant_head(0.0), gamma=0.9, lambda_=0.5)
    # R_1 = r + gamma v_2 = 1; R_0 = r + gamma ((1 - lambda) v_1 + lambda R_1) = 1 + 0.9 * 0.5 = 1.45
    assert th.allclose(returns, th.tensor([[1.45, 1.45], [1.0, 1.0]]), atol=1e-4)
    assert th.allclose(values, th.zeros(2, 2), atol=1e-5)


def test_critic_loss_is_the_weighted_two_hot_likelihood_of_returns_and_slow_values():
    critic, slow = constant_head(0.0), constant_head(5.0)
    trajectory = Trajectory(th.randn(3, 2, 4), th.zeros(2, 2, 1), th.zeros(2, 2), th.zeros(2, 2), th.ones(3, 2))
    returns, weights = th.full((2, 2), 3.0), th.tensor([[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]])
    loss, _ = critic_loss(critic, slow, trajectory, returns, weights)
    features = trajectory.features[:-1]
    expected = -(critic.log_prob(features, returns) + critic.log_prob(features, th.full((2, 2), 5.0))) * weights[:-1]
    assert th.allclose(loss, expected.mean(), rtol=1e-4)
    loss.backward()
    assert critic.out.bias.grad is not None and slow.out.bias.grad is None  # the slow critic is only a target


def test_actor_loss_backpropagates_for_boxes_and_uses_reinforce_for_discrete_actions():
    th.manual_seed(0)
    features = th.randn(3, 5, 4, requires_grad=True)
    weights = th.ones(3, 5)
    for discrete in (False, True):
        actor = Actor(4, 2, discrete=discrete, units=8, layers=1)
        policy = actor(features[:-1].detach())
        actions = policy.rsample()
        log_probs, entropies = policy.log_prob(actions.detach()), policy.entropy()
        trajectory = Trajectory(features, actions, log_probs, entropies, th.ones(3, 5))
        returns = features[1:].sum(-1) * 10  # depends on the trajectory, so a gradient can flow into it
        values = th.zeros(2, 5)
        normalizer = ReturnNormalizer()
        loss, stats = actor_loss(trajectory, returns, values, normalizer, weights, entropy_scale=0.0, discrete=discrete)
        assert normalizer.high > 0  # updated with these returns
        features.grad = None
        loss.backward()
        if discrete:
            assert features.grad is None  # REINFORCE: the advantage is a constant
            expected = -(actor(features[:-1].detach()).log_prob(actions.detach()) * returns.detach()).mean()
            assert th.allclose(loss, expected / normalizer.scale(), rtol=1e-5)
        else:
            assert features.grad is not None  # the returns' gradient reaches the model
            assert th.allclose(loss, -(returns / normalizer.scale()).mean(), rtol=1e-5)
    assert set(stats) >= {"train/actor_loss", "train/actor_entropy", "train/return_scale"}


def test_actor_loss_scales_returns_by_the_valid_starts_only():
    # Two real starts with returns 0 and 100 and two padded ones with returns 0: without the padding the percentile
    # range is that of 0 and 100.
    returns = th.tensor([[0.0, 100.0, 0.0, 0.0]])
    trajectory = Trajectory(th.zeros(2, 4, 4), th.zeros(1, 4, 1), th.zeros(1, 4), th.zeros(1, 4), th.ones(2, 4))
    valid = th.tensor([1.0, 1.0, 0.0, 0.0])
    kept, everything = ReturnNormalizer(decay=0.0), ReturnNormalizer(decay=0.0)
    actor_loss(trajectory, returns, th.zeros(1, 4), kept, th.ones(2, 4) * valid, entropy_scale=0.0, valid=valid)
    actor_loss(trajectory, returns, th.zeros(1, 4), everything, th.ones(2, 4) * valid, entropy_scale=0.0)
    assert th.isclose(kept.scale(), th.tensor(90.0)) and th.isclose(kept.low, th.tensor(5.0))
    assert th.isclose(everything.low, th.tensor(0.0)) and th.isclose(everything.high, th.tensor(85.0))


def test_entropy_bonus_and_slow_critic_update():
    actor = Actor(4, 2, discrete=False, units=8, layers=1)
    features = th.randn(2, 3, 4)
    entropies = actor(features[:-1]).entropy()
    trajectory = Trajectory(features, th.zeros(1, 3, 2), th.zeros(1, 3), entropies, th.ones(2, 3))
    zero = th.zeros(1, 3)
    with_entropy, _ = actor_loss(trajectory, zero, zero, ReturnNormalizer(), th.ones(2, 3), entropy_scale=0.5)
    assert th.allclose(with_entropy, -0.5 * entropies.mean())
    with_entropy.backward()
    assert actor.std.weight.grad.abs().sum() > 0  # the entropy bonus trains the actor's spread
    critic = TwoHotHead(4, 8, 1)
    slow = copy.deepcopy(critic)
    with th.no_grad():
        for p in critic.parameters():
            p.add_(1.0)
    before = [p.clone() for p in slow.parameters()]
    update_slow_critic(critic, slow, fraction=0.02)
    for old, new, source in zip(before, slow.parameters(), critic.parameters(), strict=True):
        assert th.allclose(new, 0.98 * old + 0.02 * source)


def test_imagination_rolls_the_actor_out_in_the_model():
    from sb3_worldmodels.dreamer_v3.behavior import imagine
    from sb3_worldmodels.dreamer_v3.heads import BernoulliHead
    from sb3_worldmodels.dreamer_v3.rssm import RSSM

    th.manual_seed(0)
    rssm = RSSM(embed_dim=3, action_dim=2, deter=8, stoch=2, classes=3, units=8)
    actor = Actor(rssm.feature_dim, 2, discrete=False, units=8, layers=1)
    continuation = BernoulliHead(rssm.feature_dim, 8, 1)
    start = rssm.initial(5)
    trajectory = imagine(rssm, actor, continuation, start, th.ones(5), horizon=4, generator=th.Generator().manual_seed(0))
    assert trajectory.features.shape == (5, 5, rssm.feature_dim) and trajectory.actions.shape == (4, 5, 2)
    # The log-probabilities and entropies are those of the policy in the state each action was taken in.
    policy = actor(trajectory.features[:-1].detach())
    assert th.allclose(trajectory.log_probs, policy.log_prob(trajectory.actions.detach()), atol=1e-5)
    assert th.allclose(trajectory.entropies, policy.entropy(), atol=1e-5)
    # The start's continuation is given; an imagined state's is the head's mode (logit above 0), as in the official code.
    assert th.equal(trajectory.continues[0], th.ones(5))
    assert th.equal(trajectory.continues[1:], (continuation(trajectory.features[1:]) > 0).float())
    with th.no_grad():
        continuation.out.bias.fill_(-50.0)  # a head sure that nothing continues
    ended = imagine(rssm, actor, continuation, start, th.ones(5), horizon=4, generator=th.Generator().manual_seed(0))
    assert th.equal(ended.continues[1:], th.zeros(4, 5))
    assert th.allclose(imagined_weights(ended.continues, 0.9), th.tensor([1.0, 0, 0, 0, 0]).unsqueeze(1).expand(5, 5))
    assert th.allclose(trajectory.features[0], rssm.features(start))
    # A Box action's gradient reaches the actor through the imagined states.
    trajectory.features[-1].sum().backward()
    assert actor.out.weight.grad is not None and actor.out.weight.grad.abs().sum() > 0
    assert rssm.initial_deter.grad is None  # the start states are detached
