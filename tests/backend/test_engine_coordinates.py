"""Coordinates on the map: JobSpec rules, window centres in WGS 84, the point GeoPackage, and jobs with
``options.use_location`` and a Coordinates output through the real tiny model (fake hub)."""
from __future__ import annotations

import math
import os
import sqlite3
import struct

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform as warp

from tests.conftest import coords_hub, fake_hub, sample  # noqa: F401  (fixtures)
from terramind_backend.engine import JobValidationError, ModelCache, run_job
from terramind_backend.engine.grid import Grid
from terramind_backend.engine.jobspec import parse_jobspec
from terramind_backend.engine.locations import distance_km, window_centres
from terramind_backend.engine.points import PointLayer
from terramind_backend.engine.tiling import plan_windows


def _job(outputs, task="generate", **options):
    return {"version": 1, "task": task, "model": "terramind_v1_tiny", "inputs": {"S2L2A": str(sample("S2L2A"))},
            "outputs": outputs, "device": "cpu", "timesteps": 2, "seed": 0, "options": options,
            "tiling": {"window": 112, "overlap": 0, "batch_size": 2}}


def test_jobspec_rules(tmp_path):
    spec = parse_jobspec(_job({"location": str(tmp_path / "c.gpkg"), "LULC": str(tmp_path / "l.tif")},
                              use_location=True))
    assert list(spec.outputs) == ["Coordinates", "LULC"] and spec.options.use_location
    with pytest.raises(JobValidationError, match=r"\.gpkg") as err:
        parse_jobspec(_job({"Coordinates": str(tmp_path / "c.tif")}))
    assert err.value.field == "outputs.Coordinates"
    with pytest.raises(JobValidationError, match="reconstruct cannot take Coordinates") as err:
        parse_jobspec({**_job({"S2L2A": str(tmp_path / "r.tif")}, task="reconstruct", use_location=True)})
    assert err.value.field == "options.use_location"
    with pytest.raises(JobValidationError, match="true or false"):
        parse_jobspec(_job({"LULC": str(tmp_path / "l.tif")}, use_location="yes"))
    tim = parse_jobspec(_job({"embeddings": str(tmp_path / "e.tif")}, task="tim-embed", tim_modalities=["coords"]))
    assert tim.options.tim_modalities == ("Coordinates",)


def test_window_centres_in_wgs84_and_distances():
    with rasterio.open(sample("S2L2A")) as ds:
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    windows = plan_windows(grid.height, grid.width, 112, 0)
    centres = window_centres(grid, windows)
    assert centres.shape == (4, 2) and centres.dtype == np.float32
    x, y = grid.transform * (56 + 112, 56)  # second window: one window right of the first
    lon, lat = warp(grid.crs, "EPSG:4326", [x], [y])
    np.testing.assert_allclose(centres[1], [lon[0], lat[0]], atol=1e-5)
    assert abs(distance_km(2.3522, 48.8566, -0.1276, 51.5072) - 343.5) < 1.0  # Paris - London
    assert math.isnan(distance_km(float("nan"), 0.0, 0.0, 0.0))


def _read_points(path):
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert db.execute("SELECT data_type, srs_id FROM gpkg_contents").fetchall() == [("features", 4326)]
        assert db.execute("SELECT geometry_type_name FROM gpkg_geometry_columns").fetchone()[0] == "POINT"
        return db.execute("SELECT geom, window, generated_lon, generated_lat, true_lon, true_lat, distance_km "
                          "FROM coordinates ORDER BY fid").fetchall()
    finally:
        db.close()


def test_point_layer_geopackage_and_atomic_commit(tmp_path):
    path = str(tmp_path / "points.gpkg")
    layer = PointLayer("Coordinates", path)
    layer.add([[2.25, 48.75], [float("nan"), float("nan")]], [[2.3522, 48.8566], [10.0, 50.0]])
    layer.finish()
    assert not os.path.exists(path)  # nothing at the destination before commit
    layer.commit()
    assert sorted(os.listdir(tmp_path)) == ["points.gpkg", "points.qml"]
    rows = _read_points(path)
    geom, window, glon, glat, tlon, tlat, dist = rows[0]
    assert geom[:2] == b"GP" and struct.unpack("<i", geom[4:8])[0] == 4326
    assert struct.unpack("<dd", geom[-16:]) == (2.25, 48.75)
    assert (window, glon, glat, tlon, tlat) == (0, 2.25, 48.75, 2.3522, 48.8566)
    assert dist == pytest.approx(distance_km(2.25, 48.75, 2.3522, 48.8566))
    assert rows[1][0] is None and rows[1][2] is None and rows[1][4] == 10.0  # no geometry, NULL values

    aborted = PointLayer("Coordinates", str(tmp_path / "other.gpkg"))
    aborted.add([[0.0, 0.0]], [[0.0, 0.0]])
    aborted.finish()
    aborted.abort()
    assert sorted(os.listdir(tmp_path)) == ["points.gpkg", "points.qml"]


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


def test_generate_with_location_and_a_coordinates_output(tmp_path, coords_hub, cache):  # noqa: F811
    events = []
    job = _job({"LULC": str(tmp_path / "lulc.tif"), "Coordinates": str(tmp_path / "where.gpkg")},
               use_location=True, precision="fp32")
    result = run_job(job, models=cache, emit=events.append)
    assert [(o["name"], o["kind"]) for o in result["outputs"]] == [("LULC", "classes"), ("Coordinates", "points")]
    assert result["outputs"][1]["style"].endswith("where.qml") and os.path.exists(result["outputs"][1]["style"])
    rows = _read_points(tmp_path / "where.gpkg")
    assert len(rows) == result["tiles"] == 4
    with rasterio.open(sample("S2L2A")) as ds:
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
    expected = window_centres(grid, plan_windows(224, 224, 112, 0))
    np.testing.assert_allclose([[r[4], r[5]] for r in rows], expected, atol=1e-4)
    for geom, _, glon, glat, tlon, tlat, dist in rows:  # random weights: a coordinate or no geometry
        assert (geom is None and glon is None) or dist == pytest.approx(distance_km(glon, glat, tlon, tlat))

    # the location changes the LULC a window gets (another input), and a seed reproduces it
    lulc_located = rasterio.open(tmp_path / "lulc.tif").read()
    run_job(_job({"LULC": str(tmp_path / "plain.tif")}, precision="fp32"), models=cache)
    run_job({**job, "outputs": {"LULC": str(tmp_path / "again.tif")}}, models=cache)
    assert np.array_equal(rasterio.open(tmp_path / "again.tif").read(), lulc_located)
    assert not np.array_equal(rasterio.open(tmp_path / "plain.tif").read(), lulc_located)


def test_embed_with_location(tmp_path, coords_hub, cache):  # noqa: F811
    plain = run_job(_job({"embeddings": str(tmp_path / "a.tif")}, task="embed", precision="fp32"), models=cache)
    run_job(_job({"embeddings": str(tmp_path / "b.tif")}, task="embed", precision="fp32", use_location=True),
            models=cache)
    a, b = rasterio.open(tmp_path / "a.tif").read(), rasterio.open(tmp_path / "b.tif").read()
    assert a.shape == b.shape == (192, 14, 14) and plain["tiles"] == 4
    assert not np.allclose(a, b)  # the coordinate tokens take part in attention
