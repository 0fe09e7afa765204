"""The model cache: keys from what decides the weights, LRU eviction under a budget, and a real server
whose memory stays within that budget over twenty jobs with varied settings."""
from __future__ import annotations

import json
import os

import pytest
import rasterio

from terramind_backend.engine.model_cache import BUDGET_ENV, ModelCache, cache_budget, default_budget_bytes
from tests.backend.test_protocol_process import Backend
from tests.conftest import FAKE_HUB, sample


class Weights:
    """Stands in for a model: ``parameters()``/``buffers()`` of a given size."""

    def __init__(self, mb):
        import torch

        self.tensor = torch.zeros(int(mb * 2**20) // 4)

    def parameters(self):
        return [self.tensor]

    def buffers(self):
        return []


def test_least_recently_used_goes_first_and_the_new_model_always_stays():
    cache = ModelCache(budget_bytes=25 * 2**20)
    built = []

    def load(name, mb):
        return cache.get_or_load((name,), lambda: built.append(name) or Weights(mb), label=name)

    a = load("a", 10)
    load("b", 10)
    assert load("a", 10) is a                 # a hit refreshes a
    load("c", 10)                             # over budget: b (least recently used) goes
    assert cache.usage()["models"] == ["a", "c"] and cache.evictions == 1
    load("huge", 40)                          # larger than the budget: runs alone
    assert cache.usage()["models"] == ["huge"]
    assert built == ["a", "b", "c", "huge"]
    assert cache.usage()["used_mb"] == 40.0 and cache.usage()["budget_mb"] == 25.0


def test_budget_comes_from_the_environment_or_physical_memory(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "512")
    assert default_budget_bytes() == 512 * 2**20 and ModelCache().budget_bytes == 512 * 2**20
    assert cache_budget()["budget_source"] == BUDGET_ENV
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="not a number of megabytes"):
        default_budget_bytes()
    assert "problem" in cache_budget()
    monkeypatch.delenv(BUDGET_ENV)
    info = cache_budget()
    assert info["budget_mb"] == pytest.approx(0.4 * info["physical_memory_mb"], rel=1e-3)


def test_generate_settings_that_do_not_change_weights_share_one_model(monkeypatch):
    import terramind_backend

    from terramind_backend.engine.predictors.generate import GeneratePredictor
    from terramind_backend.engine.predictors.base import Context
    from terramind_backend.engine import parse_jobspec

    builds = []

    class Built:
        def eval(self):
            return self

        def to(self, device):
            return self

    monkeypatch.setattr(terramind_backend, "build_model", lambda name, **kw: builds.append(kw) or Built())
    cache = ModelCache()
    for timesteps, standardize in ((1, True), (7, True), (50, False)):
        spec = parse_jobspec({"task": "generate", "inputs": {"S2L2A": "s2.tif"}, "outputs": {"LULC": "l.tif"},
                              "timesteps": timesteps, "options": {"standardize": standardize}})
        GeneratePredictor(Context(spec, None, cache, "cpu", lambda e: None))
    assert len(builds) == 1 and "timesteps" not in builds[0] and "standardize" not in builds[0]


def _rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_twenty_jobs_with_varied_settings_stay_within_the_budget(tmp_path):
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    budget_mb = 850  # holds the tiny LULC generation model (~740 MB with its tokenizers) plus a little
    env = dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1")
    backend = Backend(argv=Backend.__init__.__defaults__[0] + ["--model-cache-mb", str(budget_mb)], env=env)
    with rasterio.open(sample("S2L2A")) as ds:
        left, top, crs = ds.bounds.left, ds.bounds.top, ds.crs.to_string()
    extent = {"bounds": [left, top - 640, left + 640, top], "crs": crs}   # 64 x 64 px: the cost is the models

    def job(task, inputs, outputs, **over):
        spec = {"version": 1, "task": task, "model": "terramind_v1_tiny", "device": "cpu", "extent": extent,
                "inputs": {m: str(sample(m)) for m in inputs},
                "outputs": {k: str(tmp_path / f"{len(jobs)}_{k}.tif") for k in outputs},
                "tiling": {"window": 64, "overlap": 0, "batch_size": 1}, **over}
        jobs.append(spec)

    jobs = []
    for mods, options in ((["S2L2A"], {}), (["S1RTC"], {}), (["S2L2A", "S1RTC"], {}), (["DEM"], {}),
                          (["S2L2A", "S1RTC"], {"merge_method": "max"}), (["S2L2A"], {"precision": "fp32"}),
                          (["S2L2A"], {"layer": 3}), (["S1RTC"], {"merge_method": "max"})):
        job("embed", mods, ["embeddings"], options=options)
    for timesteps in (1, 2, 3, 5, 8):
        job("generate", ["S2L2A"], ["LULC"], timesteps=timesteps, seed=timesteps)
    job("generate", ["S2L2A"], ["LULC"], options={"standardize": False})
    for mods, options in ((["S2L2A"], {}), (["S1RTC"], {"layer": 0}), (["DEM", "S2L2A"], {}),
                          (["S2L2A"], {"precision": "bf16"}), (["S1RTC", "S2L2A"], {}), (["S1RTC", "DEM"], {})):
        job("embed", mods, ["embeddings"], options=options)
    assert len(jobs) == 20

    try:
        rss, generate_loads = [], 0
        for i, spec in enumerate(jobs):
            backend.send({"op": "run", "id": f"j{i}", "spec": spec})
            final, seen = backend.until(lambda e: e["job"] == f"j{i}" and e["event"] in ("result", "error"),
                                        timeout=120)
            assert final["event"] == "result", final
            if spec["task"] == "generate":
                generate_loads += sum(1 for e in seen if e["event"] == "progress" and e["stage"] == "load"
                                      and e["done"] == 0)
            backend.send({"op": "hello", "id": f"h{i}"})
            hello, _ = backend.until(lambda e: e["job"] == f"h{i}", timeout=60)
            assert hello["model_cache"]["used_mb"] <= budget_mb, hello["model_cache"]
            rss.append(_rss_mb(backend.proc.pid))
        assert generate_loads == 1, "timesteps/standardize must not rebuild the generation model"
        assert hello["model_cache"]["evictions"] >= 1 and hello["model_cache"]["budget_mb"] == budget_mb
        baseline = rss[0]  # torch, GDAL and the first small model loaded
        growth = max(rss) - baseline
        # the cache holds at most the budget; the rest is one 64 px job's working memory and allocator slack
        assert growth <= budget_mb + 300, json.dumps({"rss_mb": [round(r) for r in rss]})
        assert rss[-1] - baseline <= budget_mb + 300
    finally:
        backend.close()
