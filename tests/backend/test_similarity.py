"""`similarity` (engine/similarity.py, CLI `terramind similarity`): every number checked against a
direct numpy cosine similarity of the same embeddings; a TerraMesh embeddings raster made by our
embed task, and synthetic tiled rasters with several block rows and columns for the streaming."""
from __future__ import annotations

import json
import os
import sqlite3
import struct
import threading

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_xy

from tests.conftest import module_fake_hub, sample  # noqa: F401 (fixture)
from terramind_backend.cli import main
from terramind_backend.engine import JobCancelled, JobValidationError, run_job, validate_job

ORIGIN = (500000.0, 5300000.0)
PATCH = 160.0  # a 16 px patch of 10 m pixels


def _numpy_similarity(emb: np.ndarray, positives, negatives=()) -> np.ndarray:
    """Reference: the documented score, straight from the definition."""
    flat = emb.reshape(emb.shape[0], -1).T.astype(np.float64)           # [patches, D]
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    proto = np.mean([v / np.linalg.norm(v) for v in positives], axis=0)
    cos = unit @ (proto / np.linalg.norm(proto))
    for n in negatives:
        cos = np.where(unit @ (n / np.linalg.norm(n)) > cos, 0.0, cos)
    return np.clip(cos, 0, 1).reshape(emb.shape[1:])


def _centre(transform, row: int, col: int):
    return transform * (col + 0.5, row + 0.5)


def _write_embeddings(path, data: np.ndarray, block: int = 64, crs: str = "EPSG:32633"):
    d, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=d, dtype="float32", crs=crs,
                       transform=from_origin(*ORIGIN, PATCH, PATCH), nodata=float("nan"), tiled=True,
                       blockxsize=block, blockysize=block) as ds:
        ds.write(data.astype(np.float32))
        ds.update_tags(TERRAMIND_OUTPUT="embeddings")
    return path


def _job(emb, out, **query):
    outputs = {"similarity": str(out)}
    if "areas" in query:
        outputs["areas"] = str(query.pop("areas"))
    return {"version": 1, "task": "similarity", "inputs": {"embeddings": str(emb)}, "outputs": outputs,
            "options": {"similarity": query}}


@pytest.fixture(scope="module")
def terramesh_embeddings(module_fake_hub, tmp_path_factory):  # noqa: F811
    """A TerraMesh S2L2A tile embedded by our `embed` task (tiny, fake official weights): 192 × 14 × 14."""
    path = tmp_path_factory.mktemp("emb") / "emb.tif"
    run_job({"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
             "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"embeddings": str(path)},
             "options": {"precision": "fp32"}})
    return path


def test_clicked_terramesh_patch_is_one_and_matches_numpy(tmp_path, terramesh_embeddings):
    with rasterio.open(terramesh_embeddings) as ds:
        emb, transform = ds.read(), ds.transform
    x, y = _centre(transform, 5, 9)
    result = run_job(_job(terramesh_embeddings, tmp_path / "sim.tif", positives=[[x, y]]))
    with rasterio.open(tmp_path / "sim.tif") as ds:
        sim = ds.read(1)
        assert ds.transform == transform and ds.crs is not None and ds.tags()["TERRAMIND_OUTPUT"] == "similarity"
    assert sim[5, 9] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim, _numpy_similarity(emb, [emb[:, 5, 9]]), atol=1e-5, rtol=0)
    assert [o["kind"] for o in result["outputs"]] == ["similarity"]
    assert os.path.exists(tmp_path / "sim.qml") and "singlebandpseudocolor" in open(tmp_path / "sim.qml").read()


def test_streams_blocks_with_several_positives_and_negatives(tmp_path):
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(8, 150, 200)).astype(np.float32)
    emb[:, 140:, 190:] = np.nan                                        # a nodata corner
    path = _write_embeddings(tmp_path / "emb.tif", emb)                # 3 × 4 blocks of 64 patches
    t = from_origin(*ORIGIN, PATCH, PATCH)
    pos, neg = [(10, 20), (100, 150), (70, 64)], [(30, 30), (149, 0)]
    run_job(_job(path, tmp_path / "sim.tif", positives=[list(_centre(t, *p)) for p in pos],
                 negatives=[list(_centre(t, *n)) for n in neg]))
    with rasterio.open(tmp_path / "sim.tif") as ds:
        sim = ds.read(1)
    want = _numpy_similarity(emb, [emb[:, r, c] for r, c in pos], [emb[:, r, c] for r, c in neg])
    np.testing.assert_allclose(sim, want, atol=1e-5, rtol=0)
    assert np.isnan(sim[140:, 190:]).all() and np.isfinite(sim[:140]).all()
    assert all(sim[r, c] == 0 for r, c in neg)                         # a clicked negative never matches
    assert (sim[want == 0] == 0).all() and (want == 0).sum() > 1000    # the negatives' rule bites


def test_polygon_example_is_the_mean_of_its_patches(tmp_path):
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(6, 40, 50)).astype(np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb, block=16)
    x0, y0 = ORIGIN[0] + 10 * PATCH, ORIGIN[1] - 20 * PATCH          # patches rows 20-22, cols 10-13
    wkt = (f"POLYGON (({x0} {y0}, {x0 + 4 * PATCH} {y0}, {x0 + 4 * PATCH} {y0 - 3 * PATCH}, "
           f"{x0} {y0 - 3 * PATCH}, {x0} {y0}))")
    run_job(_job(path, tmp_path / "sim.tif", polygons=[wkt]))
    patches = emb[:, 20:23, 10:14].reshape(6, -1).T
    mean_unit = np.mean(patches / np.linalg.norm(patches, axis=1, keepdims=True), axis=0)
    with rasterio.open(tmp_path / "sim.tif") as ds:
        np.testing.assert_allclose(ds.read(1), _numpy_similarity(emb, [mean_unit]), atol=1e-5, rtol=0)


def test_points_in_another_crs(tmp_path):
    emb = np.random.default_rng(5).normal(size=(4, 20, 20)).astype(np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 7, 11)
    (lon,), (lat,) = transform_xy("EPSG:32633", "EPSG:4326", [x], [y])
    run_job(_job(path, tmp_path / "sim.tif", positives=[[lon, lat]], points_crs="EPSG:4326"))
    with rasterio.open(tmp_path / "sim.tif") as ds:
        sim = ds.read(1)
    assert sim[7, 11] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim, _numpy_similarity(emb, [emb[:, 7, 11]]), atol=1e-5, rtol=0)


def _gpkg_polygons(path):
    """(area field, shoelace area of the stored WKB exterior) per feature, read back with sqlite3."""
    db = sqlite3.connect(path)
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        geom_type = db.execute("SELECT geometry_type_name FROM gpkg_geometry_columns").fetchone()[0]
        rows = db.execute("SELECT geom, area FROM matching_areas").fetchall()
    finally:
        db.close()
    assert app_id == 0x47504B47 and geom_type == "POLYGON"
    out = []
    for blob, area in rows:
        assert blob[:2] == b"GP"
        wkb = blob[8 + 32:]                                            # header + xy envelope
        _, gtype, nrings, npts = struct.unpack("<BIII", wkb[:13])
        xy = np.frombuffer(wkb[13:13 + 16 * npts], dtype="<f8").reshape(-1, 2)
        shoelace = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1)))
        assert gtype == 3
        out.append((area, shoelace, nrings))
    return out


def test_threshold_writes_matching_areas_as_geopackage(tmp_path):
    emb = np.random.default_rng(6).normal(size=(3, 30, 40)).astype(np.float32)
    emb[:, 5:9, 5:12] = np.array([1.0, 2.0, 3.0])[:, None, None]      # one block of identical patches
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 6, 6)
    result = run_job(_job(path, tmp_path / "sim.tif", positives=[[x, y]], threshold=0.9, areas=tmp_path / "a.gpkg"))
    assert [o["kind"] for o in result["outputs"]] == ["similarity", "areas"]
    with rasterio.open(tmp_path / "sim.tif") as ds:
        matches = int((ds.read(1) >= 0.9).sum())
    polygons = _gpkg_polygons(tmp_path / "a.gpkg")
    assert matches >= 28 and polygons
    assert sum(a for a, _, _ in polygons) == pytest.approx(matches * PATCH * PATCH)
    assert max(a for a, _, _ in polygons) >= 28 * PATCH * PATCH        # the identical block is one area
    assert all(a <= s + 1e-6 for a, s, _ in polygons)                  # area = exterior minus holes


@pytest.mark.parametrize("query, field, message", [
    ({"positives": [[0.0, 0.0]]}, "options.similarity.positives", "outside the embeddings raster"),
    ({"positives": [["a", 1]]}, "options.similarity.positives", "two finite numbers"),
    ({"negatives": [[1.0, 2.0]]}, "options.similarity.positives", "at least one positive"),
    ({"positives": [[500080.0, 5299920.0]], "areas": "a.gpkg"}, "options.similarity.threshold", "needs options.similarity.threshold"),
    ({"polygons": ["POLYGON ((0 0, 1 0, 1 1, 0 0))"]}, "options.similarity.polygons", "does not overlap"),
])
def test_bad_queries_are_refused_and_write_nothing(tmp_path, query, field, message):
    emb = np.ones((4, 20, 20), dtype=np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    if "areas" in query:
        query["areas"] = tmp_path / query["areas"]
    with pytest.raises(JobValidationError) as err:
        validate_job(_job(path, tmp_path / "sim.tif", **query))
    assert err.value.field == field and message in err.value.message
    assert sorted(os.listdir(tmp_path)) == ["emb.tif"]


def test_click_on_nodata_and_a_non_embeddings_raster_are_refused(tmp_path):
    emb = np.ones((4, 20, 20), dtype=np.float32)
    emb[:, :5, :5] = np.nan
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 2, 2)
    with pytest.raises(JobValidationError, match="without embeddings"):
        validate_job(_job(path, tmp_path / "sim.tif", positives=[[x, y]]))
    with pytest.raises(JobValidationError, match="one float32 band per feature"):
        validate_job(_job(sample("LULC"), tmp_path / "sim.tif", positives=[[x, y]]))


def test_cancel_leaves_nothing(tmp_path):
    emb = np.random.default_rng(7).normal(size=(4, 200, 64)).astype(np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb, block=16)
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 1, 1)
    cancel = threading.Event()

    def emit(event):
        if event.get("stage") == "tiles" and event["done"] == 3:
            cancel.set()
    with pytest.raises(JobCancelled):
        run_job(_job(path, tmp_path / "sim.tif", positives=[[x, y]], threshold=0.5, areas=tmp_path / "a.gpkg"),
                emit=emit, cancel=cancel)
    assert sorted(os.listdir(tmp_path)) == ["emb.tif"]


def test_cli_similarity_with_areas_and_dry_run(tmp_path, capsys):
    emb = np.random.default_rng(8).normal(size=(4, 20, 30)).astype(np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 3, 4)
    nx, ny = _centre(from_origin(*ORIGIN, PATCH, PATCH), 10, 10)
    argv = ["similarity", "--embeddings", str(path), "--at", f"{x},{y}", "--negative", f"{nx},{ny}",
            "--out", str(tmp_path / "sim.tif"), "--threshold", "0.8", "--areas", str(tmp_path / "a.gpkg")]
    assert main(argv + ["--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["grid"]["width"] == 30 and plan["examples"] == {"positives": 1, "negatives": 1}
    assert not os.path.exists(tmp_path / "sim.tif")
    assert main(argv + ["--quiet"]) == 0
    with rasterio.open(tmp_path / "sim.tif") as ds:
        np.testing.assert_allclose(ds.read(1), _numpy_similarity(emb, [emb[:, 3, 4]], [emb[:, 10, 10]]), atol=1e-5)
    assert os.path.exists(tmp_path / "a.gpkg")
    assert main(["similarity", "--embeddings", str(path), "--at", "1,2", "--out", str(tmp_path / "x.tif")]) == 2
    assert "outside the embeddings raster" in capsys.readouterr().err


def test_areas_temp_file_of_a_killed_run_is_swept(tmp_path):
    """A SIGKILLed run leaves its hidden .part.gpkg; the next job writing those areas removes it."""
    emb = np.random.default_rng(9).normal(size=(3, 10, 10)).astype(np.float32)
    path = _write_embeddings(tmp_path / "emb.tif", emb)
    litter = tmp_path / f".a.gpkg.{0x7ffffff0:08x}.part.gpkg"       # a process id that does not run
    litter.write_bytes(b"half a GeoPackage")
    x, y = _centre(from_origin(*ORIGIN, PATCH, PATCH), 2, 2)
    run_job(_job(path, tmp_path / "sim.tif", positives=[[x, y]], threshold=0.5, areas=tmp_path / "a.gpkg"))
    assert sorted(os.listdir(tmp_path)) == ["a.gpkg", "emb.tif", "sim.qml", "sim.tif"]
