"""Pretrained agents on the Hugging Face Hub, laid out as the RL Zoo lays out its hub repositories.

A repository ``<organization>/<algo>-<env id>`` holds ``<algo>-<env id>.zip``, ``config.yml``, ``args.yml``,
``env_kwargs.yml``, ``train_eval_metrics.zip`` and, where the agent was trained with ``VecNormalize``,
``vec_normalize.pkl``. :func:`load_from_hub` runs the Zoo's own download code (``rl_zoo3.load_from_hub``) and
returns the path of the model zip in the Zoo's folder layout, ready for ``DCMPC.load`` / ``Dreamer.load`` or
``python -m sb3_worldmodels.enjoy``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sb3_worldmodels.zoo import register


def _tolerate_missing_optional_files() -> None:
    """rl_zoo3 2.9 skips a missing ``vec_normalize.pkl`` by catching ``requests.HTTPError``; huggingface_hub >= 1.0
    raises ``EntryNotFoundError``, which is not one, so agents trained without normalisation could not be downloaded.
    Widen the Zoo's except clause to both (idempotent)."""
    import rl_zoo3.load_from_hub as zoo_hub
    from huggingface_hub.errors import EntryNotFoundError

    if not isinstance(zoo_hub.HTTPError, tuple):
        zoo_hub.HTTPError = (zoo_hub.HTTPError, EntryNotFoundError)


def load_from_hub(
    algo: str,
    env_id: str,
    organization: str,
    folder: str | Path = "rl-trained-agents",
    repo_name: str | None = None,
    exp_id: int = 0,
    force: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """Download ``<organization>/<algo>-<env_id>`` into ``folder`` in the Zoo's layout; return the model zip's path.

    Loading a checkpoint unpickles objects (see ``docs/conformance.md``); as in the Zoo, this requires
    ``TRUST_REMOTE_CODE=True`` in the environment or ``trust_remote_code=True`` here.
    """
    from huggingface_sb3 import EnvironmentName
    from rl_zoo3 import get_latest_run_id
    from rl_zoo3.load_from_hub import download_from_hub

    register()
    _tolerate_missing_optional_files()
    env_name = EnvironmentName(env_id)
    if exp_id == 0:
        exp_id = get_latest_run_id(os.path.join(folder, algo), env_name) + 1
    previous = os.environ.get("TRUST_REMOTE_CODE")
    if trust_remote_code:
        os.environ["TRUST_REMOTE_CODE"] = "True"
    try:
        download_from_hub(algo, env_name, exp_id, str(folder), organization, repo_name, force)
    finally:
        if trust_remote_code:
            if previous is None:
                os.environ.pop("TRUST_REMOTE_CODE", None)
            else:
                os.environ["TRUST_REMOTE_CODE"] = previous
    return Path(folder) / algo / f"{env_name}_{exp_id}" / f"{env_name}.zip"


def main(argv: list[str] | None = None) -> None:
    """``python -m sb3_worldmodels.load_from_hub``: the options of ``python -m rl_zoo3.load_from_hub``.

    The Zoo's module is a script whose ``__main__`` block would re-import the narrow except clause, so its options
    are parsed here and its ``download_from_hub`` is called.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Download a pretrained agent in the RL Zoo's layout")
    parser.add_argument("--env", help="environment ID", type=str, required=True)
    parser.add_argument("-f", "--folder", help="Log folder", type=str, required=True)
    parser.add_argument("-orga", "--organization", help="Hugging Face hub organization", default="sb3")
    parser.add_argument("-name", "--repo-name", help="repository name, by default 'algo-env_id'", type=str)
    parser.add_argument("--algo", help="RL Algorithm", type=str, required=True)
    parser.add_argument("--exp-id", help="Experiment ID (default: 0: latest, -1: no exp folder)", default=0, type=int)
    parser.add_argument("--verbose", help="Verbose mode (0: no output, 1: INFO)", default=1, type=int)
    parser.add_argument("--force", action="store_true", default=False, help="Allow overwriting the exp folder")
    args = parser.parse_args(argv)
    path = load_from_hub(
        args.algo, args.env, args.organization, args.folder, args.repo_name, args.exp_id, args.force, trust_remote_code=False
    )
    print(f"Saved to {path}")
