"""RL Zoo integration: ``dcmpc``, ``dreamer`` and ``dreamer_v3`` registered next to the Zoo's own algorithms.

``python -m sb3_worldmodels.train`` / ``.enjoy`` / ``.record_video`` run rl_zoo3's own entry points after
:func:`register`, so every option of ``python -m rl_zoo3.train`` works unchanged. For our algorithms the
hyperparameter file defaults to the one shipped in this package (``sb3_worldmodels/hyperparams/<algo>.yml``)
unless ``-conf`` / ``--conf-file`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sb3_worldmodels.dcmpc import DCMPC
from sb3_worldmodels.dreamer import Dreamer
from sb3_worldmodels.dreamer_v3 import DreamerV3

#: The algorithms of this package, by their Zoo name.
ALGORITHMS = {"dcmpc": DCMPC, "dreamer": Dreamer, "dreamer_v3": DreamerV3}
#: Folder of the shipped hyperparameter files (the Zoo's YAML format).
HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"


def sample_dcmpc_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Optuna sampler of DC-MPC's main hyperparameters (learning rates, batch, TD steps, planner, exploration)."""
    learning_rate = trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)
    critic_learning_rate = trial.suggest_float("critic_learning_rate", 1e-4, 3e-3, log=True)
    return {
        "learning_rate": learning_rate,
        "actor_learning_rate": critic_learning_rate,
        "critic_learning_rate": critic_learning_rate,
        "batch_size": 2 ** trial.suggest_int("batch_size_pow", 6, 9),
        "n_steps": trial.suggest_int("n_steps", 1, 5),
        "num_samples": 2 ** trial.suggest_int("num_samples_pow", 6, 9),
        "exploration_noise_episodes": trial.suggest_int("exploration_noise_episodes", 2, 50, log=True),
    }


def sample_dreamer_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Optuna sampler of Dreamer's main hyperparameters (learning rates, free nats, imagination, exploration)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 2e-3, log=True),
        "actor_learning_rate": trial.suggest_float("actor_learning_rate", 2e-5, 1e-3, log=True),
        "value_learning_rate": trial.suggest_float("value_learning_rate", 2e-5, 1e-3, log=True),
        "free_nats": trial.suggest_float("free_nats", 0.0, 3.0),
        "imagination_horizon": trial.suggest_int("imagination_horizon", 5, 20),
        "exploration_noise": trial.suggest_float("exploration_noise", 0.05, 0.5),
    }


def sample_dreamer_v3_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """Optuna sampler of DreamerV3's two scaling knobs, model size and replay ratio (the rest is fixed by design)."""
    return {
        "policy_kwargs": {"size": trial.suggest_categorical("size", ["XS", "S", "M"])},
        "replay_ratio": 2 ** trial.suggest_int("replay_ratio_pow", 5, 10),
    }


def _convert(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna trial parameters -> constructor arguments (the Zoo's HYPERPARAMS_CONVERTER contract)."""
    params = dict(params)
    for name in ("batch_size", "num_samples", "replay_ratio"):
        if f"{name}_pow" in params:
            params[name] = 2 ** params.pop(f"{name}_pow")
    if "critic_learning_rate" in params:
        params.setdefault("actor_learning_rate", params["critic_learning_rate"])
    return params


def _convert_dreamer_v3(params: dict[str, Any]) -> dict[str, Any]:
    """:func:`_convert`, with the sampled model size put into ``policy_kwargs``."""
    params = _convert(params)
    if "size" in params:
        params["policy_kwargs"] = {"size": params.pop("size")}
    return params


def register() -> None:
    """Add our algorithms to rl_zoo3's algorithm table and Optuna samplers; make shimmy's envs known.

    Idempotent. rl_zoo3's modules import the same dict objects, so every Zoo entry point sees them.
    """
    import gymnasium as gym
    import shimmy
    from rl_zoo3 import hyperparams_opt, utils

    gym.register_envs(shimmy)
    utils.ALGOS.update(ALGORITHMS)
    hyperparams_opt.HYPERPARAMS_SAMPLER.update(
        dcmpc=sample_dcmpc_params, dreamer=sample_dreamer_params, dreamer_v3=sample_dreamer_v3_params
    )
    hyperparams_opt.HYPERPARAMS_CONVERTER.update(dcmpc=_convert, dreamer=_convert, dreamer_v3=_convert_dreamer_v3)


def _algo_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--algo" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--algo="):
            return arg.split("=", 1)[1]
    return None


def with_default_config(argv: list[str]) -> list[str]:
    """``argv`` plus ``--conf-file <shipped yml>`` when the algorithm is ours and no config file was given."""
    algo = _algo_from_argv(argv)
    if algo in ALGORITHMS and not any(a in ("-conf", "--conf-file") or a.startswith("--conf-file=") for a in argv):
        return [*argv, "--conf-file", str(HYPERPARAMS_DIR / f"{algo}.yml")]
    return list(argv)


def run_train(argv: list[str] | None = None) -> None:
    """``python -m rl_zoo3.train`` with our algorithms registered."""
    register()
    from rl_zoo3.train import train

    sys.argv = [sys.argv[0], *with_default_config(sys.argv[1:] if argv is None else argv)]
    train()


def run_enjoy(argv: list[str] | None = None) -> None:
    """``python -m rl_zoo3.enjoy`` with our algorithms registered."""
    register()
    from rl_zoo3.enjoy import enjoy

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    enjoy()


def run_record_video(argv: list[str] | None = None) -> None:
    """``python -m rl_zoo3.record_video`` with our algorithms registered (a script module, run as ``__main__``)."""
    import runpy

    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    runpy.run_module("rl_zoo3.record_video", run_name="__main__", alter_sys=True)


def main() -> None:
    """Console script ``sb3-worldmodels {train,enjoy,record_video} [Zoo options]``."""
    commands = {"train": run_train, "enjoy": run_enjoy, "record_video": run_record_video, "record-video": run_record_video}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: sb3-worldmodels {train,enjoy,record_video} [options of the RL Zoo's command]", file=sys.stderr)
        raise SystemExit(2)
    command = commands[sys.argv[1]]
    command(sys.argv[2:])
