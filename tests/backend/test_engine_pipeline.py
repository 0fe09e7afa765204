"""The engine end to end on the real TerraMesh samples, with analytic predictors (engine_helpers.py)
whose exact outputs are known: georeference, alignment across CRSs, nodata, blending, styles,
atomic writes, cancel, progress and inputs left untouched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from xml.etree import ElementTree

import numpy as np
import pytest
import rasterio

from rasterio.windows import Window

from tests.conftest import sample
from terramind_backend.engine.align import AlignedReader
from terramind_backend.engine.jobspec import parse_jobspec
from terramind_backend.engine.validate import inspect_job
from terramind_backend.engine import JobCancelled, run_job
from terramind_backend.engine.modalities import LULC_CLASSES
from engine_helpers import analytic, lulc_of, mosaic, ndvi_of, read, reproject_to, sha256, shifted_copy  # noqa: F401


def _job(inputs, outputs, task="generate", **over):
    spec = {"version": 1, "task": task, "model": "terramind_v1_tiny", "inputs": inputs, "outputs": outputs,
            "device": "cpu", "tiling": {"window": 96, "overlap": 32, "batch_size": 4}}
    spec.update(over)
    return spec


def test_outputs_keep_the_input_georeference_exactly(tmp_path, analytic):  # noqa: F811
    src = sample("S2L2A")
    events = []
    result = run_job(_job({"S2L2A": {"path": str(src)}}, {"LULC": str(tmp_path / "lulc.tif"),
                                                          "NDVI": str(tmp_path / "ndvi.tif")}), emit=events.append)
    s2, profile = read(src)
    for name in ("lulc", "ndvi"):
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            assert ds.crs == profile["crs"] and ds.transform == profile["transform"]
            assert (ds.width, ds.height) == (224, 224)
    ndvi, nprof = read(tmp_path / "ndvi.tif")
    assert nprof["dtype"] == "float32" and np.isnan(nprof["nodata"])
    np.testing.assert_allclose(ndvi[0], ndvi_of(s2.astype(np.float32)), atol=1e-5)  # blending is exact
    lulc, lprof = read(tmp_path / "lulc.tif")
    assert lprof["dtype"] == "uint8" and lprof["nodata"] == 255
    assert np.array_equal(lulc[0], lulc_of(ndvi_of(s2.astype(np.float32))))
    assert [o["kind"] for o in result["outputs"]] == ["classes", "continuous"]
    assert all(os.path.isabs(o["path"]) and os.path.exists(o["style"]) for o in result["outputs"])
    assert result["tiles"] == 9 and result["device"] == "cpu"
    tiles = [e for e in events if e["event"] == "progress" and e["stage"] == "tiles"]
    assert tiles[-1]["done"] == tiles[-1]["total"] == 9 and tiles[-1]["fraction"] == 1.0
    assert all(set(e) >= {"done", "total", "fraction", "eta_s", "message"} for e in tiles)
    assert sorted(os.listdir(tmp_path)) == ["lulc.qml", "lulc.tif", "lulc.tif.aux.xml", "ndvi.qml", "ndvi.tif"]


def test_lulc_colour_table_and_class_names_readable_by_gdal(tmp_path, analytic):  # noqa: F811
    out = tmp_path / "lulc.tif"
    run_job(_job({"S2L2A": str(sample("S2L2A"))}, {"LULC": str(out)}, options={"probabilities": True}))
    with rasterio.open(out) as ds:
        cmap = ds.colormap(1)
        assert cmap[1][:3] == (0x31, 0x71, 0xAD) and cmap[9][:3] == (0xC6, 0x65, 0x26)
        assert ds.tags()["CLASS_NAMES"].split(",") == [n for n, _ in LULC_CLASSES]
        assert ds.driver == "GTiff" and ds.profile.get("tiled")
    with rasterio.open(tmp_path / "lulc_probabilities.tif") as ds:
        p = ds.read()
        assert ds.count == 10 and ds.descriptions[1] == "P(Water)"
        np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)
    if shutil.which("gdalinfo") is None:
        pytest.skip("gdalinfo not installed")
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, text=True,
                                     check=True).stdout)
    band = info["bands"][0]
    assert band["categories"] == [n for n, _ in LULC_CLASSES]
    assert band["colorTable"]["entries"][2][:3] == [0x46, 0x9C, 0x76]
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"


def test_qml_styles_per_product(tmp_path, analytic):  # noqa: F811
    s2 = str(sample("S2L2A"))
    run_job(_job({"S2L2A": s2, "S1RTC": str(sample("S1RTC")), "DEM": str(sample("DEM"))},
                 {"LULC": str(tmp_path / "l.tif"), "NDVI": str(tmp_path / "n.tif"), "S1GRD": str(tmp_path / "s1.tif")}))
    lulc = ElementTree.parse(tmp_path / "l.qml").getroot().find("pipe/rasterrenderer")
    assert lulc.get("type") == "paletted"
    entries = lulc.findall("colorPalette/paletteEntry")
    assert [e.get("label") for e in entries] == [n for n, _ in LULC_CLASSES]
    ndvi = ElementTree.parse(tmp_path / "n.qml").getroot().find("pipe/rasterrenderer")
    assert ndvi.get("type") == "singlebandpseudocolor" and ndvi.get("classificationMin") == "-1"
    sar = ElementTree.parse(tmp_path / "s1.qml").getroot().find("pipe/rasterrenderer")
    assert sar.get("type") == "singlebandgray"
    lo, hi = float(sar.find("contrastEnhancement/minValue").text), float(sar.find("contrastEnhancement/maxValue").text)
    assert -40 < lo < hi < 5  # a dB stretch from the data


def test_inputs_in_other_crs_and_resolution_are_aligned(tmp_path, analytic):  # noqa: F811
    """S2L2A (UTM 22S, 10 m) + S1RTC warped to EPSG:4326 + DEM at 30 m in UTM 23S: all land on the S2 grid."""
    s1_geo = reproject_to(sample("S1RTC"), tmp_path / "s1_4326.tif", "EPSG:4326", 0.0001)
    dem_30 = reproject_to(sample("DEM"), tmp_path / "dem_32723.tif", "EPSG:32723", 30.0)
    s2, prof = read(sample("S2L2A"))
    spec = _job({"S2L2A": str(sample("S2L2A")), "S1RTC": str(s1_geo), "DEM": str(dem_30)},
                {"S1GRD": str(tmp_path / "s1.tif")})
    run_job(spec)
    s1_true, _ = read(sample("S1RTC"))
    dem_true, _ = read(sample("DEM"))
    s1, s1prof = read(tmp_path / "s1.tif")
    parsed = parse_jobspec(spec)
    layout = inspect_job(parsed)
    reader = AlignedReader(layout.sources["DEM"], parsed.inputs["DEM"], layout.grid)
    try:
        assert reader.warped
        dem, dem_valid = reader.read(Window(0, 0, 224, 224))
    finally:
        reader.close()
    assert dem_valid[8:-8, 8:-8].all()
    assert s1prof["transform"] == prof["transform"] and s1prof["crs"] == prof["crs"]
    inner = (slice(None), slice(8, -8), slice(8, -8))  # edge pixels see the warp's border
    ok = np.isfinite(s1[inner])
    assert ok.mean() > 0.95
    diff = np.abs(s1[inner][ok] - s1_true[inner][ok])
    assert np.median(diff) < 1.5  # dB, after two bilinear warps
    assert np.corrcoef(s1[inner][ok], s1_true[inner][ok])[0, 1] > 0.8
    assert np.nanmax(np.abs(dem[inner] - dem_true[inner])) < 5  # metres; 30 m DEM back at 10 m


def test_nodata_regions_become_output_nodata(tmp_path, analytic):  # noqa: F811
    scene = mosaic("S2L2A", tmp_path / "s2.tif", 2, 2, nodata=0, blank=(100, 220, 50, 300))
    run_job(_job({"S2L2A": str(scene)}, {"LULC": str(tmp_path / "l.tif"), "NDVI": str(tmp_path / "n.tif")}))
    lulc, _ = read(tmp_path / "l.tif")
    ndvi, _ = read(tmp_path / "n.tif")
    assert np.all(lulc[0, 100:220, 50:300] == 255) and np.all(np.isnan(ndvi[0, 100:220, 50:300]))
    data, _ = read(scene)
    valid = np.all(data != 0, axis=0)
    assert np.all(lulc[0][valid] < 10) and np.isfinite(ndvi[0][valid]).all()
    np.testing.assert_allclose(ndvi[0][valid], ndvi_of(data.astype(np.float32))[valid], atol=1e-5)


def test_large_mosaic_blends_exactly_and_keeps_georeference(tmp_path, analytic):  # noqa: F811
    scene = mosaic("S2L2A", tmp_path / "s2.tif", 3, 4)  # 672 × 896
    run_job(_job({"S2L2A": str(scene)}, {"NDVI": str(tmp_path / "n.tif")},
                 tiling={"window": 224, "overlap": 64, "batch_size": 3}))
    data, prof = read(scene)
    ndvi, nprof = read(tmp_path / "n.tif")
    assert nprof["transform"] == prof["transform"] and ndvi.shape[1:] == (672, 896)
    np.testing.assert_allclose(ndvi[0], ndvi_of(data.astype(np.float32)), atol=1e-5)


def test_extent_bounds_and_polygon_crop_and_mask(tmp_path, analytic):  # noqa: F811
    src = sample("S2L2A")
    with rasterio.open(src) as ds:
        b = ds.bounds
    box = [b.left + 500, b.bottom + 300, b.left + 1500, b.bottom + 1800]
    run_job(_job({"S2L2A": str(src)}, {"NDVI": str(tmp_path / "box.tif")},
                 extent={"bounds": box, "crs": "EPSG:32722"}))
    with rasterio.open(tmp_path / "box.tif") as ds:
        assert (ds.width, ds.height) == (100, 150)
        assert ds.bounds.left == pytest.approx(box[0]) and ds.bounds.top == pytest.approx(box[3])
    tri = (f"POLYGON (({b.left} {b.bottom}, {b.right} {b.bottom}, {b.left} {b.top}, {b.left} {b.bottom}))")
    run_job(_job({"S2L2A": str(src)}, {"NDVI": str(tmp_path / "tri.tif")}, extent={"polygon_wkt": tri,
                                                                                   "crs": "EPSG:32722"}))
    tri_out, _ = read(tmp_path / "tri.tif")
    assert np.isfinite(tri_out[0, -1, 0]) and np.isnan(tri_out[0, 0, -1])  # lower-left kept, upper-right masked
    assert 0.4 < np.isfinite(tri_out).mean() < 0.6


def test_embeddings_at_patch_resolution(tmp_path, analytic):  # noqa: F811
    scene = mosaic("S2L2A", tmp_path / "s2.tif", 2, 2)
    run_job(_job({"S2L2A": str(scene)}, {"embeddings": str(tmp_path / "e.tif")}, task="embed",
                 tiling={"window": 224, "overlap": 32, "batch_size": 2}))
    data, prof = read(scene)
    emb, eprof = read(tmp_path / "e.tif")
    assert emb.shape == (12, 28, 28) and eprof["dtype"] == "float32"
    assert eprof["transform"].a == 160 and eprof["transform"].c == prof["transform"].c
    expected = data.astype(np.float32).reshape(12, 28, 16, 28, 16).mean(axis=(2, 4))
    np.testing.assert_allclose(emb, expected, rtol=1e-5)
    style = ElementTree.parse(tmp_path / "e.qml").getroot().find("pipe/rasterrenderer")
    assert style.get("type") == "multibandcolor"


@pytest.mark.parametrize("how", ["cancel", "failure"])
def test_cancel_or_failure_mid_job_leaves_nothing(tmp_path, analytic, how):  # noqa: F811
    scene = mosaic("S2L2A", tmp_path / "s2.tif", 2, 2)
    digest = sha256(scene)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ndvi.tif").write_bytes(b"previous result")  # an older file at the destination survives
    cancel = threading.Event()

    def emit(event):
        if event.get("stage") == "tiles" and event["done"] >= 4:
            cancel.set()

    if how == "failure":
        analytic.fail_at = 2
    spec = _job({"S2L2A": str(scene)}, {"LULC": str(out / "lulc.tif"), "NDVI": str(out / "ndvi.tif")})
    with pytest.raises(JobCancelled if how == "cancel" else RuntimeError):
        run_job(spec, emit=emit, cancel=cancel)
    assert sorted(os.listdir(out)) == ["ndvi.tif"]
    assert (out / "ndvi.tif").read_bytes() == b"previous result"
    assert sha256(scene) == digest


def test_inputs_are_never_modified(tmp_path, analytic):  # noqa: F811
    paths = [sample("S2L2A"), sample("S1RTC"), sample("DEM")]
    before = [sha256(p) for p in paths]
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    sidecars = {p: os.stat(p).st_mtime_ns for d in {p.parent for p in paths} for p in d.iterdir()}
    run_job(_job({"S2L2A": str(paths[0]), "S1RTC": str(paths[1]), "DEM": str(paths[2])},
                 {"LULC": str(tmp_path / "l.tif"), "S1GRD": str(tmp_path / "s.tif")}))
    assert [sha256(p) for p in paths] == before
    assert [os.stat(p).st_mtime_ns for p in paths] == mtimes
    assert {p: os.stat(p).st_mtime_ns for d in {p.parent for p in paths} for p in d.iterdir()} == sidecars


def test_input_shifted_by_whole_pixels_is_read_without_warping(tmp_path, analytic):  # noqa: F811
    """A second input on the same lattice but another origin is windowed directly (no resampling)."""
    dem = shifted_copy(sample("DEM"), tmp_path / "dem_shift.tif", 50.0, -30.0)  # 5 px right, 3 px down
    spec = parse_jobspec(_job({"S2L2A": str(sample("S2L2A")), "DEM": str(dem)}, {"LULC": str(tmp_path / "l.tif")}))
    layout = inspect_job(spec)
    reader = AlignedReader(layout.sources["DEM"], spec.inputs["DEM"], layout.grid)
    try:
        assert not reader.warped
        data, valid = reader.read(Window(0, 0, 224, 224))
    finally:
        reader.close()
    original, _ = read(sample("DEM"))
    assert not valid[:3].any() and not valid[:, :5].any() and valid[3:, 5:].all()
    assert np.array_equal(data[0, 3:, 5:], original[0, :-3, :-5].astype(np.float32))


def test_extent_in_another_crs_and_smaller_than_a_window(tmp_path, analytic):  # noqa: F811
    """A lon/lat box inside the tile: one padded window, output on the S2 grid, exact values."""
    from rasterio.warp import transform_bounds

    src = sample("S2L2A")
    with rasterio.open(src) as ds:
        b, crs = ds.bounds, ds.crs
    inner = (b.left + 600, b.bottom + 600, b.left + 1400, b.bottom + 1200)
    lonlat = transform_bounds(crs, "EPSG:4326", *inner)
    result = run_job(_job({"S2L2A": str(src)}, {"NDVI": str(tmp_path / "n.tif")},
                          extent={"bounds": list(lonlat), "crs": "EPSG:4326"},
                          tiling={"window": 224, "overlap": 32, "batch_size": 1}))
    assert result["tiles"] == 1
    s2, prof = read(src)
    with rasterio.open(tmp_path / "n.tif") as ds:
        assert ds.crs == crs and ds.width < 224 and ds.height < 224
        col0 = round((ds.transform.c - prof["transform"].c) / 10)
        row0 = round((prof["transform"].f - ds.transform.f) / 10)
        assert (ds.transform.c - prof["transform"].c) % 10 == pytest.approx(0, abs=1e-6)  # same lattice
        out = ds.read(1)
    expected = ndvi_of(s2.astype(np.float32))[row0:row0 + out.shape[0], col0:col0 + out.shape[1]]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_scale_offset_and_nodata_override(tmp_path, analytic):  # noqa: F811
    """0–1 float reflectance with scale 10000 reads as the original; a nodata override masks pixels."""
    data, profile = read(sample("S2L2A"))
    scaled = data.astype(np.float32) / 10000.0
    scaled[:, :16, :] = -1.0  # a strip of a fill value the file itself does not declare
    profile.update(dtype="float32", nodata=None)
    path = tmp_path / "s2_float.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scaled)
    run_job(_job({"S2L2A": {"path": str(path), "scale": 10000, "nodata": -1.0}},
                 {"embeddings": str(tmp_path / "e.tif")}, task="embed", tiling={"window": 224, "overlap": 32}))
    emb, _ = read(tmp_path / "e.tif")
    expected = data.astype(np.float32).reshape(12, 14, 16, 14, 16).mean(axis=(2, 4))
    assert np.isnan(emb[:, 0]).all()  # the first patch row is all fill: nodata
    np.testing.assert_allclose(emb[:, 1:], expected[:, 1:], rtol=1e-4)


def test_polygon_in_lonlat_masks_outside(tmp_path, analytic):  # noqa: F811
    from rasterio.warp import transform_geom

    src = sample("S2L2A")
    with rasterio.open(src) as ds:
        b, crs = ds.bounds, ds.crs
    triangle = {"type": "Polygon", "coordinates": [[(b.left + 400, b.bottom + 400), (b.left + 1200, b.bottom + 400),
                                                    (b.left + 400, b.bottom + 1200), (b.left + 400, b.bottom + 400)]]}
    ll = transform_geom(crs, "EPSG:4326", triangle)
    wkt = "POLYGON ((" + ", ".join(f"{x!r} {y!r}" for x, y in ll["coordinates"][0]) + "))"
    run_job(_job({"S2L2A": str(src)}, {"NDVI": str(tmp_path / "n.tif")},
                 extent={"polygon_wkt": wkt, "crs": "EPSG:4326"}))
    with rasterio.open(tmp_path / "n.tif") as ds:
        out = ds.read(1)
        assert ds.crs == crs and abs(ds.width - 80) <= 2 and abs(ds.height - 80) <= 2
    assert np.isfinite(out[-3, 2]) and np.isnan(out[2, -3])  # lower-left kept, upper-right outside
    assert 0.4 < np.isfinite(out).mean() < 0.6
