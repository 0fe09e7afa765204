"""The engine with the real TerraMind modules and the fake hub's random official-layout weights."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)
from terramind_backend.engine import ModelCache, run_job
from engine_helpers import mosaic, read


def _job(inputs, outputs, task, **over):
    spec = {"version": 1, "task": task, "model": "terramind_v1_tiny", "inputs": inputs, "outputs": outputs,
            "device": "cpu", "timesteps": 2, "seed": 0}
    spec.update(over)
    return spec


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


def test_embed_matches_a_direct_backbone_call(tmp_path, fake_hub, cache):  # noqa: F811
    import torch

    from terramind_backend import build_model
    from terramind_backend.models.modalities import PRETRAINING_MEAN, PRETRAINING_STD

    src = sample("S2L2A")
    result = run_job(_job({"S2L2A": str(src)}, {"embeddings": str(tmp_path / "emb.tif")}, "embed",
                          options={"precision": "fp32"}), models=cache)
    emb, prof = read(tmp_path / "emb.tif")
    _, sprof = read(src)
    assert emb.shape == (192, 14, 14) and prof["dtype"] == "float32"
    assert prof["crs"] == sprof["crs"] and prof["transform"].a == 160.0
    assert (prof["transform"].c, prof["transform"].f) == (sprof["transform"].c, sprof["transform"].f)
    assert result["outputs"][0]["kind"] == "embeddings"

    model = build_model("terramind_v1_tiny", modalities=["S2L2A"], pretrained=True).eval()
    x = read(src)[0].astype(np.float32)[None]
    mean = np.asarray(PRETRAINING_MEAN["untok_sen2l2a@224"], np.float32)[None, :, None, None]
    std = np.asarray(PRETRAINING_STD["untok_sen2l2a@224"], np.float32)[None, :, None, None]
    with torch.no_grad():
        tokens = model({"S2L2A": torch.from_numpy((x - mean) / std)})[-1][0]
    expected = tokens.T.reshape(192, 14, 14).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)


def test_default_precision_is_auto_and_stays_close_to_fp32(tmp_path, fake_hub, cache):  # noqa: F811
    """Jobs default to precision "auto" (bf16 only where it is fast: CUDA, AMX CPUs); fp32 is on request."""
    from terramind_backend.engine import parse_jobspec

    assert parse_jobspec(_job({"S2L2A": "a.tif"}, {"embeddings": "e.tif"}, "embed")).options.precision == "auto"
    src = str(sample("S2L2A"))
    out = {}
    for precision in ("fp32", "auto"):
        run_job(_job({"S2L2A": src}, {"embeddings": str(tmp_path / f"{precision}.tif")}, "embed",
                     options={"precision": precision}), models=cache)
        out[precision] = read(tmp_path / f"{precision}.tif")[0]
    scale = np.abs(out["fp32"]).max()
    assert np.abs(out["auto"] - out["fp32"]).max() <= 0.05 * scale


def test_unknown_precision_is_refused(tmp_path):
    from terramind_backend.engine import JobValidationError, parse_jobspec

    with pytest.raises(JobValidationError, match="options.precision must be one of auto, fp32, bf16"):
        parse_jobspec(_job({"S2L2A": "a.tif"}, {"embeddings": "e.tif"}, "embed", options={"precision": "fp16"}))


def test_embed_tiles_a_mosaic(tmp_path, fake_hub, cache):  # noqa: F811
    scene = mosaic("S2L2A", tmp_path / "s2.tif", 2, 2)  # 448² → 3×3 windows of 224 with overlap 32
    result = run_job(_job({"S2L2A": str(scene)}, {"embeddings": str(tmp_path / "emb.tif")}, "embed",
                          tiling={"window": 224, "overlap": 32, "batch_size": 4}), models=cache)
    emb, _ = read(tmp_path / "emb.tif")
    assert result["tiles"] == 9 and emb.shape == (192, 28, 28) and np.isfinite(emb).all()


def test_generate_lulc_is_deterministic_per_seed(tmp_path, fake_hub, cache):  # noqa: F811
    src = str(sample("S2L2A"))
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_job(_job({"S2L2A": src}, {"LULC": str(tmp_path / f"{name}.tif")}, "generate", seed=seed,
                     options={"probabilities": True}), models=cache)
        runs[name] = read(tmp_path / f"{name}.tif")[0]
    assert runs["a"].dtype == np.uint8 and runs["a"].max() < 10
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.array_equal(read(tmp_path / "a_probabilities.tif")[0], read(tmp_path / "c_probabilities.tif")[0])
    with rasterio.open(tmp_path / "a.tif") as ds:
        assert ds.colormap(1)[1][:3] == (0x31, 0x71, 0xAD)
    assert cache.usage()["models"].count("terramind_v1_tiny_generate") == 1  # built once, reused


@pytest.mark.slow
def test_generate_ndvi_with_diffusion_decoder(tmp_path, fake_hub, cache):  # noqa: F811
    result = run_job(_job({"S2L2A": str(sample("S2L2A"))}, {"NDVI": str(tmp_path / "ndvi.tif")}, "generate"),
                     models=cache)
    ndvi, prof = read(tmp_path / "ndvi.tif")
    assert prof["dtype"] == "float32" and ndvi.shape == (1, 224, 224) and np.isfinite(ndvi).all()
    # DDIM clamps standardized outputs to [-1, 1] (facts §5.3): NDVI within mean ± std = 0.327 ± 0.322
    assert ndvi.min() >= 0.327 - 0.322 - 1e-4 and ndvi.max() <= 0.327 + 0.322 + 1e-4
    assert result["outputs"][0]["kind"] == "continuous"


@pytest.mark.slow
def test_tim_embed_runs_with_imagined_lulc(tmp_path, fake_hub, cache):  # noqa: F811
    run_job(_job({"S2L2A": str(sample("S2L2A"))}, {"embeddings": str(tmp_path / "a.tif")}, "tim-embed"), models=cache)
    run_job(_job({"S2L2A": str(sample("S2L2A"))}, {"embeddings": str(tmp_path / "b.tif")}, "tim-embed"), models=cache)
    a, prof = read(tmp_path / "a.tif")
    assert a.shape == (192, 14, 14) and np.isfinite(a).all() and prof["transform"].a == 160.0
    np.testing.assert_array_equal(a, read(tmp_path / "b.tif")[0])  # same seed, same imagined tokens


@pytest.mark.slow
def test_reconstruct_lulc_through_its_tokenizer(tmp_path, fake_hub, cache):  # noqa: F811
    src = sample("LULC")
    result = run_job(_job({"LULC": str(src)}, {"LULC": str(tmp_path / "rec.tif")}, "reconstruct"), models=cache)
    rec, prof = read(tmp_path / "rec.tif")
    _, sprof = read(src)
    assert prof["dtype"] == "uint8" and rec.shape == (1, 224, 224) and rec.max() < 10
    assert prof["transform"] == sprof["transform"] and prof["crs"] == sprof["crs"]
    assert result["outputs"][0]["kind"] == "classes"


def test_model_cache_reports_load_and_download_progress(monkeypatch):
    """Download progress from the hub callback becomes `download` events with an ETA; loads are announced."""
    import terramind_backend

    class Built:
        def eval(self):
            return self

        def to(self, device):
            return self

    def fake_build(name, download_progress=None, **kwargs):
        download_progress(0, 1000, "TerraMind_v1_tiny.pt")
        download_progress(500, 1000, "TerraMind_v1_tiny.pt")
        download_progress(1000, 1000, "TerraMind_v1_tiny.pt")
        return Built()

    monkeypatch.setattr(terramind_backend, "build_model", fake_build)
    events = []
    cache = ModelCache()
    first = cache.get("terramind_v1_tiny", "cpu", events.append, modalities=["S2L2A"])
    assert cache.get("terramind_v1_tiny", "cpu", events.append, modalities=["S2L2A"]) is first
    assert cache.get("terramind_v1_tiny", "cpu", events.append, modalities=["S1GRD"]) is not first
    downloads = [e for e in events if e["stage"] == "download"]
    assert [e["done"] for e in downloads[:3]] == [0, 500, 1000] and downloads[2]["fraction"] == 1.0
    assert downloads[1]["eta_s"] is not None and downloads[1]["eta_s"] >= 0
    loads = [e for e in events if e["stage"] == "load"]
    assert [e["done"] for e in loads] == [0, 1, 0, 1]  # the cached second call loads nothing
