"""The run-time estimate before a job starts (engine/time_estimate.py) and its confirm threshold (guards.py)."""
from __future__ import annotations

import json

from terramind_backend.engine import guards, parse_jobspec, preflight
from terramind_backend.engine.time_estimate import CPU_SECONDS_PER_TILE, FP32_FACTOR, seconds_per_tile
from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)


def _generate(tmp_path, **changes):
    return {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "timesteps": 10,
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}}, "outputs": {"DEM": str(tmp_path / "dem.tif")},
            **changes}


def test_the_estimate_grows_with_windows_and_timesteps(tmp_path):
    base = preflight(_generate(tmp_path))["estimate"]
    finer = preflight(_generate(tmp_path, resolution=5.0))["estimate"]
    longer = preflight(_generate(tmp_path, timesteps=50))["estimate"]
    assert finer["windows"] > base["windows"] and finer["seconds"] > base["seconds"]
    assert longer["windows"] == base["windows"] and longer["seconds"] > 4 * base["seconds"]
    # windows, not batches: a 896 px grid (the 224 px tile at a quarter of its pixel size) holds >= 16 windows of 224
    assert preflight(_generate(tmp_path, resolution=2.5))["estimate"]["windows"] >= 16
    per_tile = seconds_per_tile(parse_jobspec(_generate(tmp_path)))
    assert abs(per_tile - (CPU_SECONDS_PER_TILE["backbone"] + CPU_SECONDS_PER_TILE["tokens"]
                           + 10 * CPU_SECONDS_PER_TILE["diffusion_step"])) < 1e-9


def test_model_size_and_precision_scale_the_cost_and_a_gpu_is_not_estimated(tmp_path):
    tiny = seconds_per_tile(parse_jobspec(_generate(tmp_path)))
    assert seconds_per_tile(parse_jobspec(_generate(tmp_path, model="terramind_v1_large_generate"))) > tiny
    fp32 = seconds_per_tile(parse_jobspec(_generate(tmp_path, options={"precision": "fp32"})))
    assert abs(fp32 - FP32_FACTOR * tiny) < 1e-9
    assert seconds_per_tile(parse_jobspec(_generate(tmp_path, device="cuda"))) is None  # this machine has none


def test_a_job_over_the_time_threshold_asks_for_confirmation_and_one_under_it_does_not(tmp_path, monkeypatch):
    spec = _generate(tmp_path)
    hours = preflight(spec)["estimate"]["seconds"] / 3600
    monkeypatch.setattr(guards, "CONFIRM_HOURS", hours * 2)
    assert preflight(spec)["confirm"] == []
    monkeypatch.setattr(guards, "CONFIRM_HOURS", hours / 2)
    reasons = preflight(spec)["confirm"]
    assert len(reasons) == 1 and "estimated run time" in reasons[0] and "on the CPU" in reasons[0]


def test_cli_prints_the_estimate_and_refuses_a_too_long_job_without_yes(tmp_path, fake_hub, capsys,  # noqa: F811
                                                                         monkeypatch):
    from terramind_backend.cli import main

    monkeypatch.setattr(guards, "CONFIRM_HOURS", 0.0)
    args = ["embed", "--in", f"S2L2A={sample('S2L2A')}", "--out", str(tmp_path / "e.tif"), "--device", "cpu",
            "--json-progress"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "windows, estimated run time about" in captured.err
    event = json.loads(captured.out.splitlines()[-1])
    assert event["field"] == "confirm" and "estimated run time" in event["message"]
    assert list(tmp_path.iterdir()) == []
    assert main(args + ["--yes"]) == 0
    assert (tmp_path / "e.tif").exists()
