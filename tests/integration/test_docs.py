"""Every Python snippet of the README and the docs runs as written (training cut to a few steps, evaluation to one
episode)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import stable_baselines3.common.evaluation as evaluation
import torch as th
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_documented_snippets_run_as_written(page, tmp_path, monkeypatch):
    learn = OffPolicyAlgorithm.learn

    def short_learn(self, total_timesteps, *args, **kwargs):
        return learn(self, min(total_timesteps, 20), *args, **kwargs)

    evaluate = evaluation.evaluate_policy

    def short_evaluation(*args, **kwargs):
        return evaluate(*args, **{**kwargs, "n_eval_episodes": 1})

    monkeypatch.setattr(OffPolicyAlgorithm, "learn", short_learn)
    monkeypatch.setattr(evaluation, "evaluate_policy", short_evaluation)
    monkeypatch.chdir(tmp_path)  # the snippets save models to the working directory
    namespace: dict = {}
    for block in _blocks(page):  # the blocks of a page share one namespace, as a reader runs them in order
        if not th.cuda.is_available():
            block = block.replace('device="cuda"', 'device="cpu"')
        exec(compile(block, f"{page.name} snippet", "exec"), namespace)
