import pytest
import torch as th

from sb3_worldmodels.dreamer_v3.world_model import LOSS_SCALES, WorldModel


def tiny_model() -> WorldModel:
    th.manual_seed(0)
    return WorldModel({"state": 3}, {"pixels": (3, 16, 16)}, action_dim=2, deter=16, units=16, layers=1, cnn_depth=4,
                      stoch=4, classes=4)  # fmt: skip


def batch(length: int = 5, size: int = 3) -> dict:
    g = th.Generator().manual_seed(1)
    mask = th.ones(size, length)
    mask[0, 3:] = 0.0  # the first sequence's episode ends after 3 transitions: the rest is padding
    return dict(
        obs={"state": th.randn(size, length + 1, 3, generator=g), "pixels": th.rand(size, length + 1, 3, 16, 16, generator=g)},
        previous_actions=th.rand(size, length + 1, 2, generator=g) * 2 - 1,
        is_first=th.zeros(size, length + 1, dtype=th.bool),
        rewards=th.randn(size, length, generator=g),
        terminations=th.zeros(size, length),
        mask=mask,
    )


def test_the_loss_is_the_paper_weighted_sum_of_its_terms():
    model, data = tiny_model(), batch()
    loss, stats, posterior = model.loss(**data, generator=th.Generator().manual_seed(0))
    assert posterior.deter.shape == (3, 6, 16) and not posterior.deter.requires_grad
    prediction = (
        stats["world_model/observation_loss"] + stats["world_model/reward_loss"] + stats["world_model/continuation_loss"]
    )
    expected = (
        LOSS_SCALES["prediction"] * prediction
        + 0.5 * stats["world_model/dynamics_loss"]
        + 0.1 * stats["world_model/representation_loss"]
    )
    assert th.allclose(loss, expected) and LOSS_SCALES == {"prediction": 1.0, "dynamics": 0.5, "representation": 0.1}
    assert stats["world_model/dynamics_loss"] >= 1.0 and stats["world_model/representation_loss"] >= 1.0  # free bits
    loss.backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if not name.startswith("rssm.initial"))


def test_padding_after_an_episode_end_does_not_change_the_loss():
    model, data = tiny_model(), batch()
    loss, _, _ = model.loss(**data, generator=th.Generator().manual_seed(0))
    changed = {**data, "obs": {k: v.clone() for k, v in data["obs"].items()}, "rewards": data["rewards"].clone()}
    changed["obs"]["state"][0, 4:] += 100.0  # o_4, o_5 of the first sequence are padding
    changed["obs"]["pixels"][0, 4:] = 1.0
    changed["rewards"][0, 3:] = 50.0
    loss_changed, _, _ = model.loss(**changed, generator=th.Generator().manual_seed(0))
    assert th.allclose(loss, loss_changed)


def test_training_on_a_fixed_batch_lowers_the_prediction_loss():
    model, data = tiny_model(), batch()
    optimizer = th.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        loss, stats, _ = model.loss(**data, generator=th.Generator().manual_seed(step))
        if first is None:
            first = stats
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for key in ("world_model/observation_loss", "world_model/reward_loss", "world_model/continuation_loss"):
        assert stats[key] < 0.7 * first[key], key


def test_a_model_needs_an_observation():
    with pytest.raises(ValueError, match="at least one observation"):
        WorldModel({}, {}, action_dim=1)


def test_vectors_share_one_encoder_and_decoder_and_images_of_a_size_one_cnn():
    # As the official code: vector keys are concatenated into one MLP and decoded by one, split per key; images of a
    # size are stacked along their channels through one CNN (one CNN per size).
    th.manual_seed(0)
    model = WorldModel({"a": 2, "b": 3}, {"left": (3, 16, 16), "right": (1, 16, 16), "small": (3, 8, 8)}, action_dim=1,
                       deter=16, units=16, layers=1, cnn_depth=4, stoch=4, classes=4)  # fmt: skip
    assert sorted(model.encoders) == sorted(model.decoders) == ["image16", "image8", "vector"]
    assert model.encoders["vector"](th.zeros(1, 5)).shape == (1, 16)  # 2 + 3 inputs to the MLP's 16 units
    assert model.encoders["image16"](th.zeros(1, 4, 16, 16)).shape == (1, 8 * 4 * 4)  # 3 + 1 channels to a 4x4 map
    g = th.Generator().manual_seed(1)
    obs = {"a": th.randn(7, 2, generator=g), "b": th.randn(7, 3, generator=g), "left": th.rand(7, 3, 16, 16, generator=g),
           "right": th.rand(7, 1, 16, 16, generator=g), "small": th.rand(7, 3, 8, 8, generator=g)}  # fmt: skip
    features = th.randn(7, model.rssm.feature_dim, generator=g)
    decoded = model.decode(features)
    assert list(decoded) == ["a", "b", "left", "right", "small"]
    assert {k: tuple(v.shape) for k, v in decoded.items()} == {k: tuple(v.shape) for k, v in obs.items()}
    # The log-likelihood is minus the squared errors summed over every key (vectors in symlog space).
    symlog = lambda x: th.sign(x) * th.log1p(x.abs())  # noqa: E731
    expected = -sum((symlog(decoded[k]) - symlog(obs[k])).square().sum(-1) for k in ("a", "b"))
    expected = expected - sum((decoded[k] - obs[k]).square().flatten(1).sum(-1) for k in ("left", "right", "small"))
    assert th.allclose(model.observation_log_prob(features, obs), expected, rtol=1e-4, atol=1e-3)
    assert model.embed({k: v.unsqueeze(0) for k, v in obs.items()}).shape == (1, 7, 16 + 128 + 4 * 4 * 4)
