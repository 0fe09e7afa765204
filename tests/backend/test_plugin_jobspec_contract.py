"""Contract between the plugin and the engine: every JobSpec the plugin's builder writes (the one road the
dialog and every Processing algorithm take) passes the backend's `parse_jobspec` and `validate_job` unchanged.
Both sides are pure Python, so the plugin's builder runs here without QGIS."""
from __future__ import annotations

import json

import pytest

from terramind_backend.engine.jobspec import parse_jobspec
from terramind_backend.engine.validate import validate_job
from terramind_qgis.jobspec_builder import TASKS, InputChoice, JobChoices, build_jobspec
from terramind_qgis.vocabulary import DEVICES, MERGE_METHODS, MODEL_SIZES, PRECISIONS, values
from tests.conftest import sample


def _inputs(*modalities):
    counts = {"S2L2A": 12, "S1RTC": 2, "DEM": 1, "LULC": 1}
    return [InputChoice(m, str(sample(m)), counts[m]) for m in modalities]


def _checkpoint(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"not read by parse_jobspec")
    return str(path)


CASES = {
    "generate": lambda tmp: JobChoices(task="generate", inputs=_inputs("S2L2A", "S1RTC"), outputs=["LULC", "DEM"],
                                       output_dir=str(tmp), timesteps=3, seed=5, precision="fp32"),
    "embed": lambda tmp: JobChoices(task="embed", inputs=_inputs("S2L2A"), output_dir=str(tmp), layer=3,
                                    merge_method="concat", model_size="small", window=128, overlap=32),
    "tim-embed": lambda tmp: JobChoices(task="tim-embed", inputs=_inputs("S2L2A", "DEM"), output_dir=str(tmp),
                                        tim_modalities=["LULC", "NDVI"], merge_method="max",
                                        extent_bounds=(1.0, 2.0, 300.0, 400.0), extent_crs="EPSG:32722"),
    "segment": lambda tmp: JobChoices(task="segment", model_size=None, inputs=_inputs("S2L2A"),
                                      output_files={"classes": str(tmp / "c.tif"), "probabilities": str(tmp / "p.tif")},
                                      checkpoint=_checkpoint(tmp), device="cpu"),
    "reconstruct": lambda tmp: JobChoices(task="reconstruct", model_size=None, inputs=_inputs("DEM"),
                                          output_files={"DEM": str(tmp / "dem.tif")}, crs="EPSG:3857",
                                          resolution=20.0),
}


def test_every_plugin_task_has_a_case():
    assert set(CASES) == set(TASKS)


@pytest.mark.parametrize("task", sorted(CASES))
def test_builder_output_parses_unchanged_in_the_backend(task, tmp_path):
    spec = build_jobspec(CASES[task](tmp_path))
    parsed = parse_jobspec(spec)
    assert parsed.warnings == ()  # no key the engine does not know
    assert parsed.task == task and parsed.outputs == spec["outputs"]
    assert {m: i.path for m, i in parsed.inputs.items()} == {m: i["path"] for m, i in spec["inputs"].items()}
    canonical = parsed.to_dict()
    for key in ("resolution", "tiling", "device", "crs"):
        assert canonical[key] == spec[key], key
    for key, value in spec["options"].items():
        assert canonical["options"][key] == value, key
    if "model" in spec:
        assert canonical["model"] == spec["model"]


@pytest.mark.parametrize("task", ["generate", "embed", "reconstruct"])
def test_builder_output_passes_validation_with_real_rasters(task, tmp_path):
    validate_job(build_jobspec(CASES[task](tmp_path)))


def test_plugin_vocabularies_are_values_the_engine_accepts(tmp_path):
    from terramind_backend.catalog import SIZES as ENGINE_SIZES
    from terramind_backend.engine.jobspec import MERGE_METHODS as ENGINE_MERGE
    from terramind_backend.models.precision import PRECISIONS as ENGINE_PRECISIONS

    assert set(values(MODEL_SIZES)) == set(ENGINE_SIZES)
    assert set(values(MERGE_METHODS)) == set(ENGINE_MERGE)
    assert set(values(PRECISIONS)) == set(ENGINE_PRECISIONS)
    for device in values(DEVICES):
        spec = build_jobspec(JobChoices(task="embed", inputs=_inputs("S2L2A"), output_dir=str(tmp_path),
                                        device=device))
        assert parse_jobspec(spec).device == device


@pytest.mark.parametrize("width, height, window, overlap", [(224, 224, 224, 32), (1000, 300, 224, 32),
                                                            (4096, 129, 128, 0), (100, 5000, 256, 48)])
def test_the_dialogs_tile_count_is_the_engines(width, height, window, overlap):
    from terramind_backend.engine.tiling import plan_windows
    from terramind_qgis.jobspec_builder import tile_count

    assert tile_count(width, height, window, overlap) == len(plan_windows(height, width, window, overlap))


def test_a_geojson_extent_polygon_clips_like_its_wkt(tmp_path):
    """The plugin sends clip polygons as GeoJSON (no WKT parsing); the engine reads both forms the same."""
    from terramind_backend.engine.validate import inspect_job

    ring = [[790300.0, 7196000.0], [791500.0, 7196000.0], [791500.0, 7197200.0], [790300.0, 7196000.0]]
    choices = CASES["embed"](tmp_path)
    choices.extent_polygon, choices.extent_crs = {"type": "Polygon", "coordinates": [ring]}, "EPSG:32722"
    spec = build_jobspec(choices)
    assert spec["extent"] == {"polygon": {"type": "Polygon", "coordinates": [ring]}, "crs": "EPSG:32722"}
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"
    as_wkt = dict(spec, extent={"polygon_wkt": wkt, "crs": "EPSG:32722"})
    a, b = inspect_job(parse_jobspec(spec)), inspect_job(parse_jobspec(as_wkt))
    assert a.grid == b.grid and json.loads(json.dumps(a.polygon)) == json.loads(json.dumps(b.polygon))


@pytest.mark.parametrize("polygon", [{"type": "Point", "coordinates": [1, 2]}, {"type": "Polygon", "coordinates": []},
                                     {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "POLYGON"])
def test_a_bad_geojson_extent_names_the_field(polygon):
    from terramind_backend.engine.errors import JobValidationError

    spec = {"task": "embed", "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"embeddings": "e.tif"},
            "extent": {"polygon": polygon, "crs": "EPSG:32722"}}
    with pytest.raises(JobValidationError) as err:
        parse_jobspec(spec)
    assert err.value.field == "extent.polygon"
