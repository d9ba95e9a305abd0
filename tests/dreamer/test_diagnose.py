"""``benchmarks/dreamer_diagnose.py`` runs on a saved run and reports what it promises."""

import importlib.util
import json
import sys
from pathlib import Path

from sb3_worldmodels import Dreamer


def _load_script():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dreamer_diagnose.py"
    spec = importlib.util.spec_from_file_location("dreamer_diagnose", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_discounted_returns_by_hand():
    script = _load_script()
    # G_2 = 3; G_1 = 2 + 0.5 * 3; G_0 = 1 + 0.5 * 3.5
    assert script.discounted_returns([1.0, 2.0, 3.0], 0.5).tolist() == [2.75, 3.5, 3.0]


def test_diagnosis_of_a_saved_run(tmp_path, monkeypatch, tiny_dreamer_kwargs):
    model = Dreamer("MlpPolicy", "Pendulum-v1", seed=0, **tiny_dreamer_kwargs)
    model.learn(250)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "replay_buffer.pkl")
    out = tmp_path / "diagnosis.json"
    argv = [
        "dreamer_diagnose.py", "--state", str(tmp_path), "--env", "Pendulum-v1", "--episodes", "1", "--sequences", "4",
        "--horizon", "3", "--world-model-updates", "2", "--free-nats", "0", "--out", str(out),
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    _load_script().main()
    result = json.loads(out.read_text())
    assert result["num_timesteps"] == 250 and result["free_nats"] == 0.0 and len(result["kl_during_updates"]) == 1
    assert [len(result["open_loop"][key]) for key in ("observation_mse", "reward_mse")] == [3, 3]
    assert result["reward_variance"] > 0
    for mode in ("deterministic", "sampled"):
        report = result[mode]
        assert -2000 < report["return"] < 0  # one 200-step Pendulum episode
        assert 0.0 <= report["saturated_actions"] <= 1.0 and 0.0 <= report["mean_abs_action"] <= 1.0
        assert -1.0 <= report["value_return_correlation"] <= 1.0
