"""Hub download in the Zoo's layout, run for real against a local Hugging Face cache (the network is not reachable)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rl_zoo3")

SHIPPED = Path(__file__).resolve().parents[2] / "rl-trained-agents" / "dcmpc" / "Pendulum-v1_1"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_cached_repo(cache: Path, repo_id: str, with_vec_normalize: bool = False) -> None:
    """A repository as huggingface_hub caches it: snapshots/<commit>/<files> and refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copy(SHIPPED / "Pendulum-v1.zip", snapshot / "dcmpc-Pendulum-v1.zip")
    shutil.copy(SHIPPED / "Pendulum-v1" / "config.yml", snapshot / "config.yml")
    shutil.copy(SHIPPED / "Pendulum-v1" / "args.yml", snapshot / "args.yml")
    (snapshot / "env_kwargs.yml").write_text("{}\n")
    with zipfile.ZipFile(snapshot / "train_eval_metrics.zip", "w") as archive:
        archive.write(SHIPPED / "0.monitor.csv", "0.monitor.csv")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    make_cached_repo(cache, "test-org/dcmpc-Pendulum-v1")
    # For subprocesses (read at import) and for this process (huggingface_hub may already be imported).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_load_from_hub_in_python(offline_hub, tmp_path):
    from sb3_worldmodels import DCMPC
    from sb3_worldmodels.hub import load_from_hub

    with pytest.raises(ValueError, match="TRUST_REMOTE_CODE"):
        load_from_hub("dcmpc", "Pendulum-v1", "test-org", folder=tmp_path / "agents")
    path = load_from_hub("dcmpc", "Pendulum-v1", "test-org", folder=tmp_path / "agents", trust_remote_code=True)
    assert path == tmp_path / "agents" / "dcmpc" / "Pendulum-v1_1" / "Pendulum-v1.zip" and path.is_file()
    assert (path.parent / "Pendulum-v1" / "config.yml").is_file() and (path.parent / "0.monitor.csv").is_file()
    assert "TRUST_REMOTE_CODE" not in os.environ
    model = DCMPC.load(path)
    assert model.predict(np.zeros(3, np.float32), deterministic=True)[0].shape == (1,)


def test_load_from_hub_command_then_enjoy(offline_hub, tmp_path):
    env = {**os.environ, "TRUST_REMOTE_CODE": "True", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "sb3_worldmodels.load_from_hub", "--algo", "dcmpc", "--env", "Pendulum-v1"]
    result = subprocess.run(
        [*command, "-orga", "test-org", "-f", "agents"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    enjoy = "--algo dcmpc --env Pendulum-v1 -f agents -n 20 --no-render --deterministic --num-threads 1".split()
    result = subprocess.run(
        [sys.executable, "-m", "sb3_worldmodels.enjoy", *enjoy], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_package_for_hub_builds_the_zoo_upload_folder(tmp_path):
    import json

    from sb3_worldmodels import DCMPC
    from sb3_worldmodels.hub import package_for_hub

    agents = tmp_path / "agents" / "dcmpc"
    shutil.copytree(SHIPPED, agents / "Pendulum-v1_1")
    repo = package_for_hub(
        "dcmpc", "Pendulum-v1", tmp_path / "agents", "test-org", local_repo_path=tmp_path / "hub", n_eval_episodes=2
    )
    assert repo == tmp_path / "hub" / "dcmpc-Pendulum-v1"
    for name in (
        "dcmpc-Pendulum-v1.zip",
        "config.yml",
        "args.yml",
        "env_kwargs.yml",
        "train_eval_metrics.zip",
        "results.json",
        "README.md",
    ):
        assert (repo / name).is_file(), name
    results = json.loads((repo / "results.json").read_text())
    assert results["n_eval_episodes"] == 2 and results["mean_reward"] < 0
    assert "DCMPC" in (repo / "README.md").read_text() and "Pendulum-v1" in (repo / "README.md").read_text()
    assert DCMPC.load(repo / "dcmpc-Pendulum-v1.zip").predict(np.zeros(3, np.float32), deterministic=True)[0].shape == (1,)
