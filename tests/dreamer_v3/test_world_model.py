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
