import math

import torch as th

from sb3_worldmodels.dreamer_v3.rssm import RSSM, NormLinear, RSSMState, init_weight_, mlp


def test_init_weight_has_the_fan_average_variance_and_zero_scale_gives_zeros():
    weight = th.empty(600, 400)
    init_weight_(weight)
    assert abs(weight.std().item() - math.sqrt(1 / 500)) < 0.03 * math.sqrt(1 / 500)
    assert weight.abs().max() <= 2 * math.sqrt(1 / 500) / 0.8796 + 1e-6  # truncated at two standard deviations
    conv = th.empty(64, 32, 4, 4)
    init_weight_(conv)
    assert abs(conv.std().item() - math.sqrt(1 / (48 * 16))) < 0.05 * math.sqrt(1 / (48 * 16))
    assert th.equal(init_weight_(th.ones(3, 3), scale=0.0), th.zeros(3, 3))
    # The output layers' uniform initialiser: the same variance, bounded by sqrt(3 / fan_avg).
    init_weight_(weight, uniform=True)
    assert abs(weight.std().item() - math.sqrt(1 / 500)) < 0.03 * math.sqrt(1 / 500)
    assert weight.abs().max() <= math.sqrt(3 / 500) and weight.abs().max() > 0.99 * math.sqrt(3 / 500)


def test_layers_that_output_distribution_parameters_are_initialised_uniformly():
    rssm = RSSM(embed_dim=300, action_dim=2, deter=64, stoch=20, classes=20, units=300)
    limit = math.sqrt(3 / ((300 + 400) / 2))
    for layer in (rssm.img_stats, rssm.obs_stats):
        assert 0.98 * limit < layer.weight.abs().max() <= limit  # a truncated normal of this variance reaches 0.12


def test_norm_linear_and_mlp_layers():
    layer = NormLinear(5, 7)
    assert layer[0].bias is None and isinstance(layer[1], th.nn.LayerNorm) and layer[1].eps == 1e-3
    assert isinstance(layer[2], th.nn.SiLU) and len(NormLinear(5, 7, activation=False)) == 2
    net = mlp(5, 8, 3)
    assert len(net) == 3 and net(th.randn(4, 5)).shape == (4, 8)


def small_rssm() -> RSSM:
    th.manual_seed(0)
    return RSSM(embed_dim=6, action_dim=2, deter=16, stoch=4, classes=5, units=12)


def test_initial_state_is_learned_and_its_code_is_the_most_likely_one():
    rssm = small_rssm()
    with th.no_grad():
        rssm.initial_deter.fill_(0.5)
    state = rssm.initial(3)
    assert th.allclose(state.deter, th.full((3, 16), math.tanh(0.5)))
    assert th.equal(state.stoch, th.nn.functional.one_hot(state.logits.argmax(-1), 5).float())
    assert rssm.feature_dim == 16 + 20 and rssm.features(state).shape == (3, 36)
    state.deter.sum().backward()
    assert rssm.initial_deter.grad is not None


def test_img_step_is_the_paper_gru_with_unimix_categoricals():
    rssm = small_rssm()
    state = RSSMState(th.randn(3, 16), th.zeros(3, 4, 5), th.nn.functional.one_hot(th.randint(5, (3, 4)), 5).float())
    action = th.tensor([[0.5, -0.2], [3.0, -4.0], [0.0, 0.0]])
    prior = rssm.img_step(state, action, th.Generator().manual_seed(0))
    clipped = action / action.abs().clamp(min=1.0)  # [3, -4] -> [1, -1]
    x = rssm.img_in(th.cat([state.stoch.flatten(-2), clipped], -1))
    reset, candidate, update = rssm.gru(th.cat([state.deter, x], -1)).chunk(3, -1)
    update = th.sigmoid(update - 1)
    deter = update * th.tanh(th.sigmoid(reset) * candidate) + (1 - update) * state.deter
    assert th.allclose(prior.deter, deter, atol=1e-6)
    probs = prior.logits.exp()
    assert th.allclose(probs.sum(-1), th.ones(3, 4)) and probs.min() >= 0.01 / 5 - 1e-7
    assert th.allclose(prior.stoch.detach().sum(-1), th.ones(3, 4))


def test_observe_restarts_from_the_learned_state_where_an_episode_starts():
    rssm = small_rssm()
    embeds, actions = th.randn(2, 5, 6), th.randn(2, 5, 2)
    is_first = th.zeros(2, 5, dtype=th.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True
    posterior, prior = rssm.observe(embeds, actions, is_first, generator=th.Generator().manual_seed(0))
    assert posterior.deter.shape == (2, 5, 16) and prior.logits.shape == (2, 5, 4, 5)
    assert th.equal(posterior.deter, prior.deter)  # the posterior reads h_t, it does not change it
    # From a start, h_1 depends neither on the state before nor on the action that "led" to it.
    other = RSSMState(th.randn(2, 16), th.zeros(2, 4, 5), th.zeros(2, 4, 5))
    restart, _ = rssm.obs_step(other, th.randn(2, 2), embeds[:, 3], th.ones(2, dtype=th.bool))
    first, _ = rssm.obs_step(rssm.initial(2), th.zeros(2, 2), embeds[:, 3], th.ones(2, dtype=th.bool))
    assert th.allclose(restart.deter, first.deter)
    assert th.allclose(posterior.deter[1, 3], first.deter[1])
