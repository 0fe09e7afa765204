"""Progress inside a batch: the model's steps (models/step_events) move the `tiles` fraction, with an ETA."""
from __future__ import annotations

import pytest

from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)
from terramind_backend.engine import run_job
from terramind_backend.engine.executors.windows import Progress
from terramind_backend.models import step_events


@pytest.fixture
def every_step(monkeypatch):
    monkeypatch.setattr(Progress, "MIN_INTERVAL_S", 0.0)


def test_steps_inside_a_batch_move_the_fraction(every_step):
    events = []
    progress = Progress(16, events.append)
    with progress.batch(8, expected_steps=4):
        for step in range(1, 5):
            step_events.report(step_events.DIFFUSION, step, 4)
    with progress.batch(8):   # the second batch uses the count the first one reported
        step_events.report(step_events.TOKENS, 1, 2)
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    inside = [e for e in events if "phase" in e]
    assert [e["fraction"] for e in inside[:4]] == [0.125, 0.25, 0.375, 0.495]  # 8/16 x min(n/4, 0.99)
    assert inside[1]["windows"] == [1, 8] and inside[1]["step"] == 2 and inside[1]["steps"] == 4
    assert inside[1]["message"] == "tiles 1\u20138 of 16 \u00b7 diffusion step 2/4"
    assert inside[-1]["windows"] == [9, 16] and inside[-1]["phase"] == "tokens" and inside[-1]["fraction"] == 0.625
    assert all(e["eta_s"] is not None and e["eta_s"] >= 0 for e in events[1:])
    step_events.report(step_events.TOKENS, 1, 1)   # outside a batch: nobody listens, nothing is emitted
    assert len(events) == len(fractions)


def test_steps_are_throttled():
    events = []
    progress = Progress(1, events.append)
    with progress.batch(1, expected_steps=100):
        for step in range(1, 101):
            step_events.report(step_events.DIFFUSION, step, 100)
    assert len(events) <= 4   # start, at most a step or two within 0.5 s, end


@pytest.mark.slow
def test_a_one_tile_dem_job_moves_while_it_runs(tmp_path, fake_hub, every_step):  # noqa: F811
    events = []
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "seed": 0,
            "timesteps": 2, "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"DEM": str(tmp_path / "dem.tif")}}
    run_job(spec, emit=events.append)
    tiles = [e for e in events if e.get("event") == "progress" and e["stage"] == "tiles"]
    inside = [e for e in tiles if "phase" in e]
    assert {e["phase"] for e in inside} == {"tokens", "diffusion"}
    fractions = [e["fraction"] for e in inside]
    assert len(set(fractions)) >= 3 and fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] < 1
    assert all(e["eta_s"] is not None for e in inside) and all(e["windows"] == [1, 1] for e in inside)
    assert inside[-1]["phase"] == "diffusion" and inside[-1]["step"] == inside[-1]["steps"] == 2
    assert inside[-1]["fraction"] == 0.99   # the predictor's step count was exact: the bar is full but not done
    assert tiles[-1]["fraction"] == 1.0
