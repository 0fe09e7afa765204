"""Embeddings PCA composite: streamed principal components equal numpy's, the composite is their projection,
stored with its components and a false-colour style; an embed job returns it as an output."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)
from terramind_backend.engine import embedding_pca, run_job
from terramind_backend.engine.writer import output_entry


def _raster(path, data, nodata=np.nan):
    c, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="float32", nodata=nodata,
                       crs="EPSG:32633", transform=Affine(160, 0, 500000, 0, -160, 4000000)) as ds:
        ds.write(data.astype(np.float32))


def test_streamed_components_match_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_pca, "STRIP_ROWS", 3)   # several strips, the last one short
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6)) * np.array([5.0, 3.0, 2.0, 0.5, 0.2, 0.1])[:, None]
    data = (rng.normal(size=(20 * 11, 6)) @ mixing).T.reshape(6, 20, 11) + 7.0
    data[:, 0, :4] = np.nan                                  # no-data pixels stay out of the fit
    path = str(tmp_path / "emb.tif")
    _raster(path, data)

    pca = embedding_pca.fit(path)
    x = data.reshape(6, -1).T.astype(np.float32).astype(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    np.testing.assert_allclose(pca.mean, x.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(pca.variance, values[::-1][:3], rtol=1e-7)
    np.testing.assert_allclose(np.abs(pca.components @ vectors[:, ::-1][:, :3]), np.eye(3), atol=1e-7)
    np.testing.assert_allclose(pca.explained, values[::-1][:3] / values.sum(), rtol=1e-7)

    writer = embedding_pca.composite_writer(path, path, pca, "embeddings")   # beside the embeddings file itself
    writer.commit()
    entry = output_entry(writer.spec)
    assert entry["path"] == str(tmp_path / "emb_pca.tif") and entry["kind"] == "embeddings-pca"
    with rasterio.open(entry["path"]) as ds:
        composite, tags = ds.read(), ds.tags()
        assert ds.count == 3 and ds.transform == Affine(160, 0, 500000, 0, -160, 4000000)
        assert ds.descriptions[0].startswith("PC1 (")
    expected = ((data.reshape(6, -1).T - pca.mean) @ pca.components.T).T.reshape(3, 20, 11)
    assert np.isnan(composite[:, 0, :4]).all()
    np.testing.assert_allclose(composite[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(json.loads(tags["TERRAMIND_PCA_COMPONENTS"]), pca.components, atol=1e-6)
    assert "principal components" in tags["DESCRIPTION"]
    qml = (tmp_path / "emb_pca.qml").read_text()
    assert 'type="multibandcolor" redBand="1" greenBand="2" blueBand="3"' in qml   # PC1-3 as red, green, blue
    for sd in np.sqrt(pca.variance):   # each centred at 0, stretched over +-2 standard deviations
        assert f"<minValue>{-2 * sd:.6g}</minValue>" in qml and f"<maxValue>{2 * sd:.6g}</maxValue>" in qml


def test_too_few_valid_pixels_is_a_clear_error(tmp_path):
    path = str(tmp_path / "emb.tif")
    _raster(path, np.full((4, 2, 2), np.nan))
    with pytest.raises(ValueError, match="fewer than two valid pixels"):
        embedding_pca.fit(path)


@pytest.mark.slow
def test_an_embed_job_returns_its_pca_composite(tmp_path, fake_hub):  # noqa: F811
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"embeddings": str(tmp_path / "emb.tif")}}
    result = run_job(spec)
    kinds = {o["kind"]: o for o in result["outputs"]}
    assert set(kinds) == {"embeddings", "embeddings-pca"}
    with rasterio.open(kinds["embeddings-pca"]["path"]) as ds:
        assert ds.count == 3 and (ds.width, ds.height) == (14, 14) and np.isfinite(ds.read()).all()
