"""World-model callbacks: prediction error against the horizon (every algorithm), open-loop video (both Dreamers)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_DCMPC, TINY_DREAMER, TINY_DREAMER_V3, make_pixel_cartpole
from stable_baselines3.common.logger import configure

from sb3_worldmodels import DCMPC, Dreamer, DreamerV3
from sb3_worldmodels.common.callbacks import OpenLoopVideoCallback, PredictionErrorCallback

DREAMERS = [pytest.param(Dreamer, TINY_DREAMER, id="Dreamer"), pytest.param(DreamerV3, TINY_DREAMER_V3, id="DreamerV3")]


def test_prediction_error_against_horizon_for_dcmpc(tmp_path):
    model = DCMPC("MlpPolicy", "Pendulum-v1", seed=0, **TINY_DCMPC)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = PredictionErrorCallback(log_freq=50, horizon=4, n_sequences=8)
    model.learn(250, callback=callback, log_interval=1)
    errors = callback.last_errors
    assert set(errors) == {"code_accuracy", "latent_mse", "reward_mse"}
    assert all(v.shape == (4,) for v in errors.values())
    assert np.all((errors["code_accuracy"] >= 0) & (errors["code_accuracy"] <= 1))
    header = (tmp_path / "progress.csv").read_text().splitlines()[0]
    assert "world_model/prediction/code_accuracy_h4" in header


@pytest.mark.parametrize("algo, tiny", DREAMERS)
def test_prediction_error_for_dreamer(algo, tiny):
    model = algo("MlpPolicy", "Pendulum-v1", seed=0, **{**tiny, "learning_starts": 100})
    callback = PredictionErrorCallback(log_freq=50, horizon=6, n_sequences=4)
    model.learn(200, callback=callback)
    assert set(callback.last_errors) == {"observation_mse", "reward_mse"}
    assert callback.last_errors["observation_mse"].shape == (6,)


@pytest.mark.parametrize("algo, tiny", DREAMERS)
def test_open_loop_video_shows_truth_prediction_and_difference(tmp_path, algo, tiny):
    env = make_pixel_cartpole()
    model = algo("CnnPolicy", env, seed=0, tensorboard_log=str(tmp_path), **{**tiny, "learning_starts": 60})
    callback = OpenLoopVideoCallback(log_freq=30, context=2, horizon=4, n_sequences=2)
    model.learn(90, callback=callback)
    image = callback.last_image
    assert image.dtype == np.uint8 and image.shape == (3, 2 * 3 * 64, 4 * 64)
    truth, prediction, difference = (image[:, k * 64 : (k + 1) * 64] for k in range(3))
    # The difference row is |prediction - truth| (up to uint8 rounding).
    np.testing.assert_allclose(difference, np.abs(prediction.astype(int) - truth.astype(int)), atol=2)
    assert list(tmp_path.glob(f"{algo.__name__}_1/events.out.tfevents.*"))


def test_open_loop_video_warns_once_when_episodes_are_shorter_than_context_and_horizon():
    import gymnasium as gym

    env = gym.wrappers.TimeLimit(make_pixel_cartpole(size=64), max_episode_steps=5)
    model = Dreamer("CnnPolicy", env, seed=0, **{**TINY_DREAMER, "learning_starts": 30})
    callback = OpenLoopVideoCallback(log_freq=10, context=2, horizon=6, n_sequences=2)
    with pytest.warns(UserWarning, match="fewer than the 8 that context 2 \\+ horizon 6 needs") as record:
        model.learn(50, callback=callback)
    assert sum("OpenLoopVideoCallback" in str(w.message) for w in record) == 1
    assert callback.last_image is not None  # it still draws the figure, with the padded steps
