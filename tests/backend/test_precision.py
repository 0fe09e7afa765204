"""Precision has one home (`models/precision.py`): one list of names, one resolution of `auto`, one bf16 policy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO
from terramind_backend.models import precision


def _fresh_modules(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", "import json, sys; " + code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "backend" / "src")})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_jobspec_shares_the_names_without_torch_and_the_policy_needs_no_tokenizer():
    seen = _fresh_modules("from terramind_backend.engine import jobspec; "
                          "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert seen == {"torch": False}
    seen = _fresh_modules("from terramind_backend.models import bf16_weights, precision; "
                          "print(json.dumps({'tok': 'terramind_backend.models.tokenizers' in sys.modules}))")
    assert seen == {"tok": False}  # no bf16_weights ⇄ tokenizer circle


def test_names_checked_in_one_place():
    from terramind_backend.engine import JobValidationError, parse_jobspec

    for name in precision.PRECISIONS:
        assert precision.check_precision(name) == name
        assert precision.resolve_precision(name, torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16'"):
        precision.check_precision("fp16")
    with pytest.raises(JobValidationError, match="auto, fp32, bf16"):
        parse_jobspec({"task": "embed", "inputs": {"S2L2A": "a.tif"}, "outputs": {"embeddings": "e.tif"},
                       "options": {"precision": "fp16"}})


# --- auto decides by measurement (models/bf16_probe.py) ----------------------------------------------------------

@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A fresh process's view of the probe (no in-process result) with its own cache folder; `_measure`
    replaced by one that returns ``probe.times`` and counts its calls."""
    from terramind_backend.models import bf16_probe

    monkeypatch.setenv("TERRAMIND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(bf16_probe, "_results", {})
    calls = []

    def fake_measure(device):
        calls.append(str(device))
        return probe.times

    monkeypatch.setattr(bf16_probe, "_measure", fake_measure)
    probe.calls, probe.times, probe.module = calls, (10.0, 4.0), bf16_probe
    return probe


def test_probe_measures_once_per_machine_and_torch_version(probe, monkeypatch):
    cpu = torch.device("cpu")
    first = probe.module.bf16_probe(cpu)
    assert first.bf16_faster and not first.cached and first.speedup == pytest.approx(2.5)
    assert precision.resolve_precision("auto", cpu) == "bf16" and probe.calls == ["cpu"]
    monkeypatch.setattr(probe.module, "_results", {})           # a new process reads the cache file
    again = probe.module.bf16_probe(cpu)
    assert again.cached and again.bf16_faster and probe.calls == ["cpu"]
    assert "2.50x" in again.summary() and "cached" in again.summary()
    monkeypatch.setattr(probe.module, "_results", {})
    monkeypatch.setattr(torch, "__version__", "9.9.9")         # another torch: measured again
    probe.times = (10.0, 9.0)
    assert precision.resolve_precision("auto", cpu) == "fp32" and probe.calls == ["cpu", "cpu"]


def test_bf16_no_faster_keeps_fp32_and_a_broken_cache_is_measured_again(probe, tmp_path):
    probe.times = (10.0, 10.0 / (probe.module.MIN_GAIN - 0.01))   # a gain below the threshold
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / probe.module.CACHE_FILE).write_text("{not json")
    result = probe.module.bf16_probe(torch.device("cpu"))
    assert not result.bf16_faster and probe.calls == ["cpu"]
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert precision.resolve_precision("bf16", torch.device("cpu")) == "bf16"  # explicit choices stay as given


def test_auto_choice_is_in_the_job_log_and_in_doctor(probe, capsys):
    from terramind_backend.commands import doctor
    from terramind_backend.engine import parse_jobspec
    from terramind_backend.engine.predictors.base import Context, announce_precision

    events = []
    spec = parse_jobspec({"task": "embed", "inputs": {"S2L2A": "a.tif"}, "outputs": {"embeddings": "e.tif"}})
    announce_precision(Context(spec, None, None, "cpu", events.append))
    assert events[0]["level"] == "info" and events[0]["message"].startswith("Precision auto = bf16 on cpu")
    assert doctor.run(type("Args", (), {"json": False})()) == 0
    assert "precision auto  auto = bf16 on cpu" in capsys.readouterr().out and probe.calls == ["cpu"]


def test_real_probe_is_short():
    """The measurement itself on this machine: well under a second of CPU time."""
    from terramind_backend.models import bf16_probe

    started = time.process_time()
    fp32_ms, bf16_ms = bf16_probe._measure(torch.device("cpu"))
    assert time.process_time() - started < 1.0 and fp32_ms > 0 and bf16_ms > 0
