"""Pretrained agents on the Hugging Face Hub, laid out as the RL Zoo lays out its hub repositories.

A repository ``<organization>/<algo>-<env id>`` holds ``<algo>-<env id>.zip``, ``config.yml``, ``args.yml``,
``env_kwargs.yml``, ``train_eval_metrics.zip`` and, where the agent was trained with ``VecNormalize``,
``vec_normalize.pkl``. :func:`load_from_hub` runs the Zoo's own download code (``rl_zoo3.load_from_hub``) and
returns the path of the model zip in the Zoo's folder layout, ready for ``DCMPC.load`` / ``Dreamer.load`` or
``python -m sb3_worldmodels.enjoy``.
"""

from __future__ import annotations

import os
import shutil
import zipfile
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


class _LocalOnlyApi:
    """Stands in for ``huggingface_hub.HfApi`` in :func:`package_for_hub`: creating the repository and uploading become
    local operations (the upload copies the packaged folder to ``destination``), so every other step of the hub
    packaging (save, evaluate, model card) runs as it would before a real upload."""

    destination: Path

    def __init__(self, token: str | None = None):
        self.token = token

    def create_repo(self, repo_id: str, **kwargs):
        from types import SimpleNamespace

        return SimpleNamespace(repo_id=repo_id, url=f"local://{repo_id}")

    def upload_folder(self, repo_id: str, folder_path: str | Path, **kwargs) -> str:
        shutil.copytree(folder_path, self.destination, dirs_exist_ok=True)
        return f"local://{repo_id}"


def package_for_hub(
    algo: str,
    env_id: str,
    folder: str | Path,
    organization: str,
    exp_id: int = 0,
    local_repo_path: str | Path = "hub",
    n_eval_episodes: int = 10,
    seed: int = 0,
) -> Path:
    """Build the folder a hub upload of a trained Zoo agent would contain, without uploading; return its path.

    The packaging is ``huggingface_sb3.package_to_hub`` (model zip, ``config.json``, ``results.json``, model card
    ``README.md``, evaluated on the Zoo's test env) with the hub calls made local; the Zoo's own files
    (``config.yml``, ``args.yml``, ``env_kwargs.yml``, ``train_eval_metrics.zip``, ``vec_normalize.pkl``) are added
    from the agent's log folder, so that :func:`load_from_hub` and the Zoo's ``load_from_hub`` can read the result.
    (rl_zoo3 2.9's own ``push_to_hub`` cannot be imported next to sb3-team-hf-integration, which replaced the
    ``huggingface_sb3`` function it imports.) Upload the folder with ``huggingface_hub.HfApi().upload_folder``.
    """
    import importlib
    from unittest import mock

    # The module, not the function of the same name that huggingface_sb3 exports.
    hf_push = importlib.import_module("huggingface_sb3.push_to_hub")
    from huggingface_sb3 import EnvironmentName, ModelName
    from rl_zoo3.utils import ALGOS, create_test_env, get_model_path, get_saved_hyperparams

    register()
    env_name = EnvironmentName(env_id)
    _, model_path, log_path = get_model_path(exp_id, str(folder), algo, env_name)
    config_folder = Path(log_path) / env_name
    hyperparams, stats_path = get_saved_hyperparams(str(config_folder), test_mode=True)
    eval_env = create_test_env(
        env_name.gym_id, n_envs=1, stats_path=stats_path, seed=seed, should_render=False, hyperparams=dict(hyperparams)
    )
    model = ALGOS[algo].load(model_path, env=eval_env, seed=seed)
    model_name = str(ModelName(algo, env_name))
    destination = Path(local_repo_path) / model_name
    api = type("LocalOnlyApi", (_LocalOnlyApi,), {"destination": destination})
    with mock.patch.object(hf_push, "HfApi", api), mock.patch.object(hf_push, "_generate_replay", lambda *args: None):
        hf_push.package_to_hub(
            model,
            model_name,
            ALGOS[algo].__name__,
            env_id,
            eval_env,
            repo_id=f"{organization}/{model_name}",
            commit_message="Packaged by sb3_worldmodels.hub.package_for_hub",
            n_eval_episodes=n_eval_episodes,
        )
    eval_env.close()
    for name in ("config.yml", "args.yml", "env_kwargs.yml", "vecnormalize.pkl"):
        if (config_folder / name).is_file():
            target = "vec_normalize.pkl" if name == "vecnormalize.pkl" else name
            shutil.copy(config_folder / name, destination / target)
    if not (destination / "env_kwargs.yml").is_file():
        (destination / "env_kwargs.yml").write_text("{}\n")
    with zipfile.ZipFile(destination / "train_eval_metrics.zip", "w") as archive:
        for path in sorted(Path(log_path).glob("*.monitor.csv")) + sorted(Path(log_path).glob("evaluations.npz")):
            archive.write(path, path.name)
    return destination


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
