"""Behaviour shared by the algorithms of this package, on top of SB3's ``OffPolicyAlgorithm``."""

from __future__ import annotations

import base64
import inspect
import io
import json
import os
import pathlib
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import cloudpickle
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, TrainFreq, TrainFrequencyUnit

from sb3_worldmodels.accel import apply_fast_paths
from sb3_worldmodels.accel import resolve as resolve_fast_paths
from sb3_worldmodels.common.buffers import SequenceReplayBuffer
from sb3_worldmodels.common.precision import autocast, check_mixed_precision, no_autocast


def _target_path(path: str | pathlib.Path, suffix: str) -> pathlib.Path:
    # The file name SB3 itself would write to: the suffix is added when the path has none.
    path = pathlib.Path(path)
    return path if path.suffix else path.with_suffix(f".{suffix}")


def _policy_options(policy_class: type) -> set[str]:
    """Keyword arguments the policy's constructor takes, following ``**kwargs`` up the class hierarchy."""
    options: set[str] = set()
    for cls in policy_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters.values()
        options |= {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return options - {"self", "observation_space", "action_space", "lr_schedule"}


def check_policy_kwargs(
    algo: str, policy_class: type, policy_kwargs: dict[str, Any], unsupported: dict[str, str]
) -> dict[str, Any]:
    """Check the ``policy_kwargs`` an SB3 user passes; return those the policy's constructor takes.

    - an SB3 option this algorithm cannot honour (``unsupported``: key -> what to use instead) is a ``ValueError``;
    - ``share_features_extractor=True`` is what every policy here does (all networks read the world model's
      latent), so it is accepted and dropped; ``False`` is a ``ValueError``;
    - any other key the policy does not take is a ``TypeError`` naming the key and listing the options.
    """
    kwargs = dict(policy_kwargs)
    share = kwargs.pop("share_features_extractor", True)
    if not share:
        raise ValueError(
            f"{algo} cannot use share_features_extractor=False: its actor and value networks read the world model's "
            "latent state, which one encoder computes for all of them."
        )
    for key in kwargs:
        if key in unsupported:
            raise ValueError(f"{algo} does not take policy_kwargs['{key}']: {unsupported[key]}")
    options = _policy_options(policy_class)
    unknown = sorted(set(kwargs) - options)
    if unknown:
        raise TypeError(
            f"{algo}'s {policy_class.__name__} has no option {', '.join(map(repr, unknown))}; "
            f"its policy_kwargs are: {', '.join(sorted(options))}."
        )
    return kwargs


def check_at_least(algo: str, minimum: int, **settings: Any) -> None:
    """Raise a ``ValueError`` naming the first setting that is not an integer of at least ``minimum``."""
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{algo}: {name} must be an integer >= {minimum}, got {value!r}.")


class _AtomicWrite:
    """Write to a temporary file next to ``path`` and rename it over ``path`` only once the write has finished.

    A crash or interruption in the middle of a save therefore leaves the previous file intact.
    """

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def __enter__(self) -> io.BufferedWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()
        if exc_type is None:
            try:
                os.replace(self.tmp, self.path)
            except OSError:  # e.g. the path is a directory: no temporary file is left behind
                self.tmp.unlink(missing_ok=True)
                raise
        else:
            self.tmp.unlink(missing_ok=True)


class WorldModelAlgorithm(OffPolicyAlgorithm):
    """What DC-MPC and Dreamer share on top of SB3's ``OffPolicyAlgorithm``.

    - spaces are checked (``_check_spaces``) before SB3's own assertions, with messages that say what is supported;
    - the replay buffer is a :class:`SequenceReplayBuffer`, and episodes cut by an env reset without ``done``
      (a new ``learn()``, resumed training) are closed as truncations;
    - an acting state carried from step to step per env (the MPPI warm start, the RSSM latent), reset at episode
      starts and never saved;
    - ``save`` and ``save_replay_buffer`` never leave a half-written file.
    """

    replay_buffer: SequenceReplayBuffer
    #: SB3 ``policy_kwargs`` keys the algorithm does not take, with what to use instead (see ``check_policy_kwargs``).
    unsupported_policy_kwargs: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *args,
        replay_buffer_class: type[SequenceReplayBuffer] | None = None,
        mixed_precision: str | None = None,
        accel: str | Sequence[str] = "auto",
        **kwargs,
    ):
        self.mixed_precision = check_mixed_precision(mixed_precision)
        resolve_fast_paths(accel)  # refused here, naming the choices, rather than when the model is built
        self.accel = accel
        # Every algorithm here samples sequences, supports several envs and has no gSDE.
        super().__init__(
            *args,
            replay_buffer_class=replay_buffer_class or SequenceReplayBuffer,
            sde_support=False,
            support_multi_env=True,
            **kwargs,
        )

    @classmethod
    def _check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Raise a ``ValueError`` naming what is supported when a space is not."""
        raise NotImplementedError

    @classmethod
    def _wrap_env(cls, env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True):
        # Runs before SB3's own (assertion) checks, so unsupported spaces get a message saying what is supported.
        if hasattr(env, "observation_space") and hasattr(env, "action_space"):
            cls._check_spaces(env.observation_space, env.action_space)
        return super()._wrap_env(env, verbose, monitor_wrapper)

    @property
    def sequence_length(self) -> int:
        """Transitions in each sequence that a training step samples."""
        raise NotImplementedError

    def _derived_schedule(self, n_envs: int) -> tuple[int, int] | None:
        """SB3's ``(train_freq, gradient_steps)`` that the algorithm's own setting (the paper's schedule in env frames, a
        replay ratio) gives for ``n_envs`` envs, or ``None`` when the user gave SB3's schedule or there is none."""
        return None

    def _apply_derived_schedule(self) -> None:
        # A schedule counted per env (frames, replayed steps per env step) depends on how many envs one vec env step
        # holds, so it is derived at set-up, which load() runs again with the number of envs of the env it is given.
        if getattr(self, "_schedule_as_given", False):
            return
        schedule = self._derived_schedule(getattr(self, "n_envs", 1))  # n_envs: unset without an env
        if schedule is not None:
            self.train_freq = TrainFreq(schedule[0], TrainFrequencyUnit.STEP)
            self.gradient_steps = schedule[1]

    def _setup_model(self) -> None:
        self._apply_derived_schedule()
        self._check_spaces(self.observation_space, self.action_space)
        name = type(self).__name__
        check_at_least(name, 1, batch_size=self.batch_size)
        if self.policy_class is self.policy_aliases.get("MultiInputPolicy") and not isinstance(
            self.observation_space, spaces.Dict
        ):
            raise ValueError(
                f'{name}: "MultiInputPolicy" takes Dict observations; this env\'s are {self.observation_space}. '
                'Use "MlpPolicy".'
            )
        if not issubclass(self.replay_buffer_class, SequenceReplayBuffer):
            raise ValueError(
                f"{name} samples sequences: replay_buffer_class must derive from SequenceReplayBuffer, "
                f"got {self.replay_buffer_class}"
            )
        self.policy_kwargs = check_policy_kwargs(name, self.policy_class, self.policy_kwargs, self.unsupported_policy_kwargs)
        super()._setup_model()
        # The policy plans / acts in the algorithm's precision (it is restored from the saved argument on load).
        self.policy.mixed_precision = check_mixed_precision(self.mixed_precision)  # custom_objects may have replaced it
        # The fast paths (sb3_worldmodels.accel) swap module classes, not parameters: the optimizers made above hold them.
        apply_fast_paths(self.policy, getattr(self, "accel", "auto"))  # getattr: checkpoints saved before the option existed
        # One gradient scaler per optimizer for float16 (process state, not saved).
        self._grad_scalers: dict[int, th.amp.GradScaler] = {}
        # Episodes finished since learning started (schedules such as DC-MPC's exploration decay count them).
        self._learning_episodes = getattr(self, "_learning_episodes", 0)
        # Optimizer steps skipped because their gradient was not finite (see _clip_and_step).
        self.non_finite_updates = getattr(self, "non_finite_updates", 0)
        self._non_finite_steps: th.Tensor | int = 0
        self._reset_acting_state()

    def _ready_to_train(self) -> bool:
        """Whether the replay buffer holds a transition to sample (every stored transition can start a sequence)."""
        return self.replay_buffer.size() > 0

    def _reset_acting_state(self) -> None:
        # Per-env state carried between env steps while acting, and episode-start flags; process-local, not saved.
        self._acting_state: tuple[np.ndarray, ...] | None = None
        self._episode_starts: np.ndarray | None = None
        self._acting_stats: dict[str, th.Tensor] = {}

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_acting_state",
            "_episode_starts",
            "_acting_stats",
            "_non_finite_steps",
        ]

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ):
        if self.replay_buffer is not None and (reset_num_timesteps or self._last_obs is None):
            # The envs are about to be reset without a `done`: close the stored episodes as truncated.
            self.replay_buffer.mark_episode_break()
            self._reset_acting_state()
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        # The first observation of every env is stored with the first transition.
        self._check_finite("reset observation", self._last_obs)
        return result

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        self._check_finite("observation", new_obs)
        self._check_finite("reward", reward)
        for env_idx, (done, info) in enumerate(zip(dones, infos, strict=True)):
            if done and info.get("terminal_observation") is not None:
                self._check_finite("terminal observation", info["terminal_observation"], env_idx)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        self._episode_starts = np.asarray(dones, dtype=bool).copy()
        if self.num_timesteps >= self.learning_starts:
            self._learning_episodes += int(np.sum(dones))

    def _check_finite(self, what: str, values: Any, env_idx: int | None = None) -> None:
        """Refuse non-finite observations or rewards before they reach the replay buffer (and from there the weights).

        :param what: What ``values`` are, for the message (``"observation"``, ``"reward"``, ...).
        :param values: A batch over the envs (an array or a dict of arrays), or one env's value when ``env_idx`` is given.
        """
        parts = values.items() if isinstance(values, dict) else [("", values)]
        for key, part in parts:
            part = np.asarray(part)
            if not np.issubdtype(part.dtype, np.floating) or np.isfinite(part).all():
                continue
            if env_idx is None:
                bad = np.flatnonzero(~np.isfinite(part.reshape(part.shape[0], -1)).all(axis=1)).tolist()
            else:
                bad = [env_idx]
            raise ValueError(
                f"Non-finite {what}{f' key {key!r}' if key else ''} from env index {bad} at step {self.num_timesteps}: "
                "NaN or inf would corrupt the replay buffer and the networks. Fix the environment, or wrap it (e.g. in "
                "SB3's VecCheckNan to find the source)."
            )

    def _clip_and_step(self, optimizer: th.optim.Optimizer, loss: th.Tensor, max_grad_norm: float) -> th.Tensor:
        """Backward, clip the gradient norm of the optimizer's parameters, step; returns the norm before clipping.

        A non-finite gradient (from a NaN or infinite loss) skips the step, so good parameters and optimizer state
        are never overwritten; skipped steps are counted and logged as ``train/non_finite_updates``. With fused
        optimizers (the default, see ``common/optim.py``) the skip happens inside the kernel (``found_inf``), with no
        host-device synchronisation; other optimizers check the norm on the host.
        """
        grad_norm = self._backward_and_clip(optimizer, loss, max_grad_norm)
        self._step(optimizer, grad_norm)
        return grad_norm

    def _backward_and_clip(self, optimizer: th.optim.Optimizer, loss: th.Tensor, max_grad_norm: float) -> th.Tensor:
        """The first half of :meth:`_clip_and_step`: gradients of ``loss`` for the optimizer's parameters, clipped; the
        norm before clipping. :meth:`_step` applies them, so several losses can be differentiated from the same
        parameters before any of them changes."""
        optimizer.zero_grad(set_to_none=True)
        scaler = None
        if self.mixed_precision == "fp16":
            scaler = self._grad_scalers.setdefault(id(optimizer), th.amp.GradScaler(self.device.type))
        with no_autocast(self.device):
            (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        return th.nn.utils.clip_grad_norm_(params, max_grad_norm)

    def _step(self, optimizer: th.optim.Optimizer, grad_norm: th.Tensor) -> None:
        """The second half of :meth:`_clip_and_step`: apply the clipped gradients, unless their norm is not finite."""
        non_finite = ~th.isfinite(grad_norm)
        scaler = self._grad_scalers.get(id(optimizer)) if self.mixed_precision == "fp16" else None
        if scaler is not None:
            # The scaler skips steps with non-finite gradients and lowers its scale (float16 overflow is expected
            # while the scale adapts); they are still counted below.
            scaler.step(optimizer)
            scaler.update()
        elif optimizer.defaults.get("fused"):
            optimizer.found_inf = non_finite.float()
            optimizer.step()
        elif not non_finite:
            optimizer.step()
        self._non_finite_steps = non_finite.long() + self._non_finite_steps

    def _autocast(self):
        """The algorithm's mixed-precision context for forward passes and losses (no-op in float32)."""
        return autocast(self.device, self.mixed_precision)

    def _record_means(self, stats: dict[str, list[th.Tensor]]) -> None:
        """Record the mean of each statistic over the gradient steps of one ``train()`` call, with one host transfer."""
        if stats:
            means = th.stack([th.stack(values).float().mean() for values in stats.values()]).cpu().tolist()
            for key, value in zip(stats.keys(), means, strict=True):
                self.logger.record(key, value)
        for key, value in self._acting_stats.items():
            self.logger.record(key, float(value))
        if isinstance(self._non_finite_steps, th.Tensor):
            self.non_finite_updates += int(self._non_finite_steps)
            self._non_finite_steps = 0
        self.logger.record("train/non_finite_updates", self.non_finite_updates)

    @classmethod
    def _check_checkpoint_algorithm(cls, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """Fail with a clear message when a checkpoint was saved by another algorithm (its policy class tells)."""
        if not isinstance(path, (str, pathlib.Path)):
            return
        path = pathlib.Path(path)
        path = path if path.exists() else _target_path(path, "zip")
        if not path.is_file():
            return  # SB3's loader reports missing files itself
        try:
            with zipfile.ZipFile(path) as archive:
                serialized = json.loads(archive.read("data")).get("policy_class", {})
        except (KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path} is not a complete SB3 checkpoint (truncated, corrupt or another kind of file): {error!r}"
            ) from error
        if not isinstance(serialized, dict) or ":serialized:" not in serialized:
            return
        try:
            policy_class = cloudpickle.loads(base64.b64decode(serialized[":serialized:"].encode()))
        except Exception:  # noqa: BLE001 - a class that cannot be imported here is reported below by name
            policy_class = None
        if isinstance(policy_class, type) and any(issubclass(policy_class, p) for p in cls.policy_aliases.values()):
            return
        name = f"{serialized.get('__module__', '?')}.{getattr(policy_class, '__qualname__', '?')}"
        raise ValueError(
            f"{path} was saved by another algorithm (its policy is {name}); {cls.__name__}.load reads checkpoints of "
            f"{cls.__name__} only. Load it with the algorithm class that saved it."
        )

    @classmethod
    def load(cls, path, env=None, device="auto", custom_objects=None, print_system_info=False, force_reset=True, **kwargs):
        if not (custom_objects and "policy_class" in custom_objects):  # a replaced policy class is never unpickled
            cls._check_checkpoint_algorithm(path)
        if {"train_freq", "gradient_steps"} & kwargs.keys():
            kwargs["_schedule_as_given"] = True  # SB3's schedule passed to load() is kept, not derived again
        try:
            return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        except Exception as error:
            cls._check_checkpoint_tensors(path, error)
            raise

    @staticmethod
    def _check_checkpoint_tensors(path: str | pathlib.Path | io.BufferedIOBase, error: Exception) -> None:
        """After a failed load: raise a ``ValueError`` saying which ``.pth`` file of the checkpoint is damaged, if one is
        (PyTorch's own message would suggest ``weights_only=False``, which cannot repair a damaged file)."""
        if not isinstance(path, (str, pathlib.Path)):
            return
        path = pathlib.Path(path)
        path = path if path.exists() else _target_path(path, "zip")
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith(".pth"):
                        try:
                            th.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
                        except Exception as damage:  # noqa: BLE001 - any failure to read it means the file is damaged
                            raise ValueError(
                                f"{path}: {name} inside the checkpoint is damaged and cannot be read ({damage!r:.200}). "
                                "Load another copy of the checkpoint."
                            ) from error
        except (OSError, zipfile.BadZipFile):
            return

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(path, (str, pathlib.Path)):
            return super().save(path, exclude, include)
        with _AtomicWrite(_target_path(path, "zip")) as file:
            super().save(file, exclude, include)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """Load a replay buffer saved with :meth:`save_replay_buffer`, after checking that it fits this model.

        A buffer of another kind (e.g. SB3's ``ReplayBuffer`` of a SAC), of other observation or action spaces or of
        another number of envs is refused with a ``ValueError`` naming what differs; the model keeps its own buffer.
        """
        loaded = load_from_pkl(path, self.verbose)
        name = type(self).__name__
        if not isinstance(loaded, SequenceReplayBuffer):
            raise ValueError(
                f"{path} holds a {type(loaded).__module__}.{type(loaded).__qualname__}, not a SequenceReplayBuffer: "
                f"{name} samples sequences and cannot use it. The model keeps its replay buffer."
            )
        differences = [
            f"{what} {theirs} (this model: {ours})"
            for what, theirs, ours in (
                ("observation space", loaded.observation_space, self.observation_space),
                ("action space", loaded.action_space, self.action_space),
                ("n_envs", loaded.n_envs, self.n_envs),
            )
            if theirs != ours
        ]
        if differences:
            raise ValueError(
                f"{path} was saved for another setting: {'; '.join(differences)}. The model keeps its replay buffer."
            )
        self.replay_buffer = loaded
        self.replay_buffer.device = self.device

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        if not isinstance(path, (str, pathlib.Path)):
            return super().save_replay_buffer(path)
        with _AtomicWrite(_target_path(path, "pkl")) as file:
            super().save_replay_buffer(file)
