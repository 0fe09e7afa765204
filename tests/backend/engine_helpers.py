"""Helpers for the engine tests (not a test module): scene builders from the real TerraMesh samples and model-free
predictors whose outputs can be predicted exactly (so blending and alignment can be checked).

The "analytic" predictors plug into the engine's task registry like real ones:
- generate: NDVI = (B08 − B04)/(B08 + B04) from S2L2A; LULC = one-hot of floor((NDVI + 1)·5);
  S1GRD = the S1RTC input; DEM = the DEM input. Overlapping windows agree, so blending must
  reproduce these values exactly.
- embed: the per-16-px-patch mean of every S2L2A band (12 features).
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from tests.conftest import sample
from terramind_backend.engine import tasks
from terramind_backend.engine.predictors.base import Predictor, Product, product_for
from terramind_backend.engine.writer import OutputSpec


# --------------------------------------------------------------------------- analytic predictors

def ndvi_of(s2: np.ndarray) -> np.ndarray:
    nir, red = s2[..., 7, :, :].astype(np.float32), s2[..., 3, :, :].astype(np.float32)
    return (nir - red) / np.maximum(nir + red, 1.0)


def lulc_of(ndvi: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((ndvi + 1.0) * 5.0), 0, 9).astype(np.uint8)


class AnalyticGenerate(Predictor):
    def __init__(self, ctx):
        spec = ctx.spec
        self.calls = 0
        self.products = [product_for(m, p, spec.options.probabilities) for m, p in spec.outputs.items()]

    def predict(self, arrays, valid, batch_index):
        FAIL_AT = getattr(AnalyticGenerate, "fail_at", None)
        if FAIL_AT is not None and batch_index >= FAIL_AT:
            raise getattr(AnalyticGenerate, "fail_with", RuntimeError)("analytic predictor failure on purpose")
        out = {}
        if "S2L2A" in arrays:
            ndvi = ndvi_of(arrays["S2L2A"])
            out["NDVI"] = ndvi[:, None]
            out["LULC"] = np.moveaxis(np.eye(10, dtype=np.float32)[lulc_of(ndvi)], -1, 1)
        if "S1RTC" in arrays:
            out["S1GRD"] = arrays["S1RTC"]
        if "DEM" in arrays:
            out["DEM"] = arrays["DEM"]
        return out


class AnalyticEmbed(Predictor):
    def __init__(self, ctx):
        out = OutputSpec(name="embeddings", path=ctx.spec.outputs["embeddings"], kind="embeddings", dtype="float32",
                         band_names=[f"feature {i}" for i in range(12)], nodata=float("nan"), scale=16)
        self.products = [Product("embeddings", 12, [out], lambda v: [v.astype(np.float32)], scale=16)]

    def predict(self, arrays, valid, batch_index):
        x = arrays["S2L2A"]
        b, c, h, w = x.shape
        return {"embeddings": x.reshape(b, c, h // 16, 16, w // 16, 16).mean(axis=(3, 5))}


def build(ctx):
    return AnalyticEmbed(ctx) if ctx.spec.task == "embed" else AnalyticGenerate(ctx)


@pytest.fixture
def analytic(monkeypatch):
    """Route generate/embed to the analytic predictors for this test."""
    for task in ("generate", "embed"):
        monkeypatch.setitem(tasks.TASKS, task, dataclasses.replace(tasks.TASKS[task], predictor=__name__))
    monkeypatch.setattr(AnalyticGenerate, "fail_at", None, raising=False)
    monkeypatch.setattr(AnalyticGenerate, "fail_with", RuntimeError, raising=False)
    return AnalyticGenerate


# --------------------------------------------------------------------------- scenes

def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def mosaic(modality: str, path: Path, reps_y: int, reps_x: int, place: str = None, nodata=None,
           blank=None) -> Path:
    """A (reps_y·224)×(reps_x·224) scene made of mirrored copies of a real sample, on the sample's
    own grid origin (mirroring keeps it seamless). ``blank=(r0, r1, c0, c1)`` fills a block with nodata."""
    src = sample(modality, place) if place else sample(modality)
    data, profile = read(src)
    rows = []
    for i in range(reps_y):
        row = []
        for j in range(reps_x):
            tile = data[:, ::-1] if i % 2 else data
            row.append(tile[:, :, ::-1] if j % 2 else tile)
        rows.append(np.concatenate(row, axis=2))
    scene = np.concatenate(rows, axis=1)
    if blank is not None:
        r0, r1, c0, c1 = blank
        scene = scene.copy()
        scene[:, r0:r1, c0:c1] = nodata
    profile.update(width=scene.shape[2], height=scene.shape[1], tiled=True, blockxsize=256, blockysize=256,
                   nodata=nodata, interleave="band")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scene)
    return path


def reproject_to(src_path, dst_path, crs: str, res: float, resampling="bilinear") -> Path:
    """Warp a raster to another CRS/resolution with rasterio (what a user's S1 scene might look like)."""
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds,
                                                               resolution=res)
        profile = src.profile.copy()
        profile.update(crs=crs, transform=transform, width=width, height=height, nodata=np.nan, dtype="float32")
        with rasterio.open(dst_path, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                out = np.zeros((height, width), dtype=np.float32)
                reproject(rasterio.band(src, b), out, dst_transform=transform, dst_crs=crs,
                          resampling=Resampling[resampling], src_nodata=None, dst_nodata=np.nan)
                dst.write(out, b)
    return dst_path


def shifted_copy(src_path, dst_path, dx: float, dy: float) -> Path:
    """The same pixels with the origin moved by (dx, dy) CRS units."""
    data, profile = read(src_path)
    t = profile["transform"]
    profile["transform"] = Affine(t.a, t.b, t.c + dx, t.d, t.e, t.f + dy)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path
