"""Guards before big mistakes: an input with nothing valid over the extent is refused before any model
loads; values far outside a modality's physical range are warned about with the likely fix."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from terramind_backend.engine import JobValidationError, run_job
from terramind_backend.engine.guards import _value_warnings
from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)


def _copy(src, dst, transform_values, **profile_changes):
    with rasterio.open(src) as ds:
        profile = dict(ds.profile, **profile_changes)
        data = transform_values(ds.read())
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data.astype(profile["dtype"]))
    return dst


def _embed(tmp_path, src):
    return {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": {"path": str(src)}}, "outputs": {"embeddings": str(tmp_path / "emb.tif")},
            "options": {"precision": "fp32"}}


def test_an_all_nodata_input_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    import terramind_backend

    src = _copy(sample("S2L2A"), tmp_path / "empty.tif", lambda a: np.zeros_like(a), nodata=0)
    monkeypatch.setattr(terramind_backend, "build_model", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(JobValidationError, match="has no valid pixel over the extent") as info:
        run_job(_embed(tmp_path, src))
    assert info.value.field == "inputs.S2L2A.path"
    nan = _copy(sample("S2L2A"), tmp_path / "nan.tif", lambda a: np.full(a.shape, np.nan), dtype="float32")
    with pytest.raises(JobValidationError, match="all nodata or NaN"):
        run_job(_embed(tmp_path, nan))


def test_reflectance_stored_as_0_to_1_floats_is_warned_with_the_fix(tmp_path, fake_hub):  # noqa: F811
    src = _copy(sample("S2L2A"), tmp_path / "unit.tif", lambda a: a / 10000.0, dtype="float32")
    events = []
    run_job(_embed(tmp_path, src), emit=events.append)
    warnings = [e["message"] for e in events if e.get("level") == "warning"]
    assert any("looks like 0-1 reflectance" in w and "Set inputs.S2L2A.scale to 10000" in w for w in warnings)
    events.clear()
    run_job(_embed(tmp_path, sample("S2L2A")), emit=events.append)  # real L2A values: no warning
    assert not [e for e in events if e.get("level") == "warning"]


@pytest.mark.parametrize("mod, values, fix", [
    ("S2L2A", np.random.default_rng(0).uniform(-3000, -1500, (12, 500)), "offset"),
    ("S1RTC", np.random.default_rng(0).uniform(0.001, 0.5, (2, 500)), "10*log10"),
    ("S1GRD", np.random.default_rng(0).uniform(200, 4000, (2, 500)), "scale/offset"),
    ("DEM", np.random.default_rng(0).uniform(0, 90000, (1, 500)), "metres"),
    ("NDVI", np.random.default_rng(0).uniform(-2000, 9000, (1, 500)), "0.0001"),
])
def test_values_far_outside_the_physical_range_name_the_likely_fix(mod, values, fix):
    warnings = _value_warnings(mod, values)
    assert len(warnings) == 1 and fix in warnings[0]


@pytest.mark.parametrize("mod, values", [
    ("S2L2A", np.random.default_rng(0).uniform(0, 8000, (12, 500))),
    ("S1RTC", np.random.default_rng(0).uniform(-30, 0, (2, 500))),
    ("DEM", np.random.default_rng(0).uniform(-20, 4000, (1, 500))),
    ("NDVI", np.random.default_rng(0).uniform(-0.3, 0.9, (1, 500))),
])
def test_plausible_values_are_not_warned_about(mod, values):
    assert _value_warnings(mod, values) == []


def test_cli_asks_for_yes_before_a_job_that_looks_like_a_mistake(tmp_path, fake_hub, capsys):  # noqa: F811
    from terramind_backend.cli import main

    args = ["embed", "--in", f"S2L2A={sample('S2L2A')}", "--out", str(tmp_path / "e.tif"), "--device", "cpu",
            "--resolution", "2", "--json-progress"]   # 5x finer than the 10 m input
    assert main(args) == 2
    event = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert event["event"] == "error" and event["field"] == "confirm"
    assert "5x finer than the finest input's 10" in event["message"] and "--yes" in event["message"]
    assert list(tmp_path.iterdir()) == []
    assert main(args + ["--yes"]) == 0
    assert (tmp_path / "e.tif").exists()


def test_protocol_validate_lists_what_to_confirm(tmp_path):
    import threading

    from terramind_backend.protocol.server import Server
    from tests.backend.test_protocol_server import Events, Pipe

    pipe, events = Pipe(), Events()
    thread = threading.Thread(target=Server(pipe, events).serve, daemon=True)  # the real engine
    thread.start()
    try:
        spec = _embed(tmp_path, sample("S2L2A"))
        pipe.send({"op": "validate", "id": "fine", "spec": spec})
        pipe.send({"op": "validate", "id": "typo", "spec": dict(spec, resolution=1)})
        answers = {}
        while len(answers) < 2:
            event = events.next(timeout=60)
            answers[event["job"]] = event
    finally:
        pipe.close()
        thread.join(10)
    assert answers["fine"]["valid"] is True and answers["fine"]["confirm"] == []
    assert answers["fine"]["estimate"]["windows"] >= 1 and answers["fine"]["estimate"]["seconds"] > 0
    assert answers["typo"]["valid"] is True and "10x finer" in answers["typo"]["confirm"][0]
