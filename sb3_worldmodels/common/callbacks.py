"""Callbacks that make the world model visible through SB3's logger (TensorBoard, CSV, stdout)."""

from __future__ import annotations

import warnings

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image


def _warn_if_episodes_are_short(callback: BaseCallback, needed: int, what: str) -> None:
    """Warn once when the finished episodes (SB3's ``Monitor`` statistics) are shorter than ``needed`` steps."""
    lengths = [info["l"] for info in callback.model.ep_info_buffer or []]
    if lengths and not callback._warned_short and np.mean(lengths) < needed:
        callback._warned_short = True
        warnings.warn(
            f"{type(callback).__name__}: episodes last {np.mean(lengths):.0f} steps on average, fewer than the {needed} "
            f"that {what} needs; the steps after an episode's end are left out. Lower the horizon to see more of them.",
            stacklevel=2,
        )


class PredictionErrorCallback(BaseCallback):
    """Every ``log_freq`` steps, log the world model's open-loop prediction error at each horizon step.

    Works with every algorithm of this package: it calls ``model.prediction_errors(n_sequences, horizon)`` and
    records ``world_model/prediction/<metric>_h<k>`` for ``k = 1 .. horizon`` (DC-MPC: code accuracy, latent and
    reward errors; Dreamer: observation and reward errors after a few observed context steps).

    :param log_freq: Env steps between two measurements.
    :param horizon: Number of predicted steps.
    :param n_sequences: Sequences sampled from the replay buffer per measurement.
    """

    def __init__(self, log_freq: int = 1000, horizon: int = 10, n_sequences: int = 32, verbose: int = 0):
        super().__init__(verbose)
        self.log_freq, self.horizon, self.n_sequences = log_freq, horizon, n_sequences
        self.last_errors: dict[str, np.ndarray] = {}
        self._warned_short = False

    def _on_step(self) -> bool:
        if self.n_calls % self.log_freq != 0 or self.model.num_timesteps <= self.model.learning_starts:
            return True
        # Dreamer observes a few context steps before it predicts.
        needed = self.horizon + getattr(self.model, "prediction_context", 0)
        _warn_if_episodes_are_short(self, needed, f"a horizon of {self.horizon}")
        errors = self.model.prediction_errors(self.n_sequences, self.horizon)
        self.last_errors = {name: values.cpu().numpy() for name, values in errors.items()}
        for name, values in self.last_errors.items():
            for k, value in enumerate(values, start=1):
                self.logger.record(f"world_model/prediction/{name}_h{k}", float(value))
        return True


class OpenLoopVideoCallback(BaseCallback):
    """Dreamer's open-loop prediction figure, logged as an image: truth, model and their difference.

    Every ``log_freq`` steps, ``context`` observed frames of sequences from the replay buffer are filtered by the
    RSSM, then the model predicts the next ``horizon`` frames from the actions alone. The image has one band per
    sequence, each of three rows (truth, prediction, absolute difference) and one column per predicted step.

    :param log_freq: Env steps between two figures.
    :param context: Observed frames before the open-loop prediction (paper figure: 5).
    :param horizon: Predicted frames (paper figure: 45).
    :param n_sequences: Sequences shown.
    :param image_key: Observation key of the images (``None`` for a plain image observation).
    """

    def __init__(
        self,
        log_freq: int = 10_000,
        context: int = 5,
        horizon: int = 45,
        n_sequences: int = 3,
        image_key: str | None = None,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.log_freq, self.context, self.horizon, self.n_sequences = log_freq, context, horizon, n_sequences
        self.image_key = image_key or ""
        self.last_image: np.ndarray | None = None
        self._warned_short = False

    def _init_callback(self) -> None:
        if not hasattr(self.model, "open_loop_prediction"):
            raise TypeError(
                f"OpenLoopVideoCallback shows a decoder's predicted frames; {type(self.model).__name__} has no decoder "
                "(its world model predicts codes, not images). Use PredictionErrorCallback for its prediction errors."
            )

    def make_image(self) -> np.ndarray:
        """The figure as a ``(3, H, W)`` uint8 array (channels first, as SB3's ``Image`` with ``"CHW"``)."""
        truth, prediction, _ = self.model.open_loop_prediction(self.n_sequences, self.context, self.horizon)
        true_frames = truth[self.image_key] + 0.5  # (B, T, C, H, W) in [0, 1]
        predicted = (prediction[self.image_key] + 0.5).clamp(0, 1)
        difference = (predicted - true_frames).abs()
        rows = th.stack([true_frames, predicted, difference], dim=1)  # (B, 3, T, C, H, W)
        b, r, t, c, h, w = rows.shape
        grid = rows.permute(3, 0, 1, 4, 2, 5).reshape(c, b * r * h, t * w)
        return (grid.clamp(0, 1) * 255).to(th.uint8).cpu().numpy()

    def _on_step(self) -> bool:
        if self.n_calls % self.log_freq != 0 or self.model.num_timesteps <= self.model.learning_starts:
            return True
        _warn_if_episodes_are_short(self, self.context + self.horizon, f"context {self.context} + horizon {self.horizon}")
        self.last_image = self.make_image()
        self.logger.record(
            "world_model/open_loop_prediction", Image(self.last_image, "CHW"), exclude=("stdout", "log", "json", "csv")
        )
        return True
