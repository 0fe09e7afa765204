"""Every validation error: one clear message, the right field, and nothing written anywhere."""
from __future__ import annotations

import os

import pytest

from tests.conftest import PLACES, sample
from terramind_backend.engine import JobValidationError, parse_jobspec, run_job, validate_job
from engine_helpers import analytic  # noqa: F401  (fixture)


def _spec(out_dir, **over):
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"LULC": str(out_dir / "lulc.tif")}, "device": "cpu"}
    spec.update(over)
    return spec


def _s2(**kw):
    return {"S2L2A": {"path": str(sample("S2L2A")), **kw}}


CASES = [
    ("unknown modality", lambda o: {"inputs": {"S3OLCI": {"path": str(sample("S2L2A"))}}},
     "Unknown modality 'S3OLCI'", "inputs.S3OLCI"),
    ("band count", lambda o: {"inputs": {"S1RTC": {"path": str(sample("S2L2A"))}}},
     "has 12 band(s) but S1RTC needs 2", "inputs.S1RTC.bands"),
    ("band mapping length", lambda o: {"inputs": _s2(bands=[1, 2, 3])},
     "lists 3 band(s) but S2L2A needs 12", "inputs.S2L2A.bands"),
    ("band mapping index", lambda o: {"inputs": {"S1RTC": {"path": str(sample("S1RTC")), "bands": [1, 5]}},
                                      "outputs": {"DEM": str(o / "dem.tif")}},
     "band(s) [5] requested but", "inputs.S1RTC.bands"),
    ("rasters do not overlap", lambda o: {"inputs": {**_s2(), "S1RTC": {"path": str(sample("S1RTC", PLACES[1]))}}},
     "Input S1RTC (38D_378R_2_3.tif) does not overlap the extent", "inputs.S1RTC.path"),
    ("extent outside the rasters", lambda o: {"extent": {"bounds": [0, 0, 1000, 1000], "crs": "EPSG:32722"}},
     "Input S2L2A (282D_485L_3_3.tif) does not overlap the extent", "inputs.S2L2A.path"),
    ("empty extent", lambda o: {"extent": {"bounds": [790300, 7196000, 790300, 7197000], "crs": "EPSG:32722"}},
     "The extent is empty", "extent.bounds"),
    ("empty polygon extent", lambda o: {"extent": {"polygon_wkt": "POLYGON ((790300 7196000, 790300.1 7196000, "
                                                                  "790300.1 7196000, 790300 7196000))",
                                                   "crs": "EPSG:32722"}},
     "The extent is empty", "extent"),
    ("missing output folder", lambda o: {"outputs": {"LULC": str(o / "missing" / "lulc.tif")}},
     "folder", "outputs.LULC"),
    ("output is a folder", lambda o: {"outputs": {"LULC": str(o / "adir.tif")}},
     "is a folder", "outputs.LULC"),
    ("output equals input", lambda o: {"outputs": {"LULC": str(sample("S2L2A"))}},
     "would overwrite input S2L2A", "outputs.LULC"),
    ("two outputs one file", lambda o: {"outputs": {"LULC": str(o / "x.tif"), "NDVI": str(o / "x.tif")}},
     "both write", "outputs.NDVI"),
    ("probabilities file collides", lambda o: {"outputs": {"LULC": str(o / "l.tif"), "NDVI": str(o / "l_probabilities.tif")},
                                               "options": {"probabilities": True}},
     "both write", "outputs.NDVI"),
    ("output not a GeoTIFF", lambda o: {"outputs": {"LULC": str(o / "lulc.png")}},
     "must be a GeoTIFF path", "outputs.LULC"),
    ("unknown task", lambda o: {"task": "classify"}, "Unknown task 'classify'", "task"),
    ("unknown model", lambda o: {"model": "prithvi_v2"}, "Unknown model 'prithvi_v2'", "model"),
    ("unknown output", lambda o: {"outputs": {"RGB": str(o / "rgb.tif")}}, "generate cannot produce 'RGB'",
     "outputs.RGB"),
    ("output is an input", lambda o: {"outputs": {"S2L2A": str(o / "s2.tif")}}, "S2L2A is already an input",
     "outputs.S2L2A"),
    ("missing input file", lambda o: {"inputs": {"S2L2A": {"path": str(o / "nope.tif")}}}, "file not found",
     "inputs.S2L2A.path"),
    ("not a raster", lambda o: {"inputs": {"S2L2A": {"path": str(o / "text.tif")}}}, "cannot open",
     "inputs.S2L2A.path"),
    ("degrees with metres", lambda o: {"crs": "EPSG:4326"}, "is in degrees", "resolution"),
    ("bad CRS", lambda o: {"crs": "EPSG:99999999"}, "is not a CRS", "crs"),
    ("window not a patch multiple", lambda o: {"tiling": {"window": 100}}, "multiple of the 16 px", "tiling.window"),
    ("overlap too large", lambda o: {"tiling": {"window": 224, "overlap": 128}}, "too large", "tiling.overlap"),
    ("embedding overlap off patches", lambda o: {"task": "embed", "outputs": {"embeddings": str(o / "e.tif")},
                                                 "tiling": {"overlap": 20}}, "multiple of 16", "tiling.overlap"),
    ("unsupported version", lambda o: {"version": 2}, "Unsupported JobSpec version 2", "version"),
    ("bad device", lambda o: {"device": "tpu"}, "Unknown device 'tpu'", "device"),
    ("unavailable device", lambda o: {"device": "cuda"}, "cuda", "device"),
    ("timesteps", lambda o: {"timesteps": 0}, "timesteps must be at least 1", "timesteps"),
    ("reconstruct needs the input", lambda o: {"task": "reconstruct", "outputs": {"DEM": str(o / "d.tif")}},
     "add a DEM input", "outputs.DEM"),
]


@pytest.mark.parametrize("name,change,message,field", CASES, ids=[c[0] for c in CASES])
def test_validation_error_message_field_and_nothing_written(tmp_path, analytic, name, change, message, field):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / "adir.tif").mkdir()
    (out / "text.tif").write_text("not a raster")
    before = sorted(os.listdir(out))
    spec = _spec(out, **change(out))
    if name == "unavailable device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device exists here")
        with pytest.raises(JobValidationError) as err:  # device is checked by run_job, before any writing
            run_job(spec)
    else:
        with pytest.raises(JobValidationError) as err:
            validate_job(spec)
        with pytest.raises(JobValidationError):
            run_job(spec)
    assert message in err.value.message
    assert err.value.field == field
    assert sorted(os.listdir(out)) == before
    assert not list(tmp_path.glob("**/.*part*"))


def test_read_only_output_folder(tmp_path, analytic):  # noqa: F811
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(JobValidationError, match="is not writable") as err:
            validate_job(_spec(out))
        assert err.value.field == "outputs.LULC"
    finally:
        out.chmod(0o755)


def test_valid_spec_round_trips_and_resolves_relative_paths(tmp_path):
    spec = validate_job(_spec(tmp_path, outputs={"lulc": "lulc.tif"}, model="terramind_v1_tiny_generate"),
                        base_dir=str(tmp_path))
    assert spec.outputs == {"LULC": str(tmp_path / "lulc.tif")}
    assert spec.model == "terramind_v1_tiny" and spec.size == "tiny"
    assert parse_jobspec(spec.to_dict()) == spec


def test_unknown_keys_are_reported_not_fatal(tmp_path):
    spec = parse_jobspec(_spec(tmp_path, colour="blue", options={"probabilty": True}))
    assert any("colour" in w for w in spec.warnings) and any("probabilty" in w for w in spec.warnings)


def test_input_path_shorthand_and_case_insensitive_names(tmp_path):
    spec = parse_jobspec(_spec(tmp_path, inputs={"s2l2a": str(sample("S2L2A"))}))
    assert list(spec.inputs) == ["S2L2A"] and spec.inputs["S2L2A"].bands is None


def test_task_table_drives_parsing_and_a_registered_task_works(tmp_path, monkeypatch):
    """A task added through `tasks.register` gets its rules from the table: output keys, patch-aligned
    overlap, required checkpoint and merge methods, with no task name tested anywhere else."""
    from terramind_backend.engine import predictors, tasks

    monkeypatch.setitem(tasks.TASKS, "patchy", tasks.Task(
        "patchy", "terramind_backend.engine.predictors.embed", ("a", "b"), required_outputs=("a",),
        patch_aligned=True, needs_checkpoint=True, merge_methods=("max",)))
    base = {"task": "patchy", "inputs": _s2(), "outputs": {"a": str(tmp_path / "a.tif")},
            "options": {"checkpoint": str(tmp_path / "m.ckpt"), "merge_method": "max"}}
    assert parse_jobspec(base).task == "patchy" and predictors.available("patchy")
    for change, message, field in (
            ({"outputs": {"c": str(tmp_path / "c.tif")}}, "patchy outputs are 'a' and optionally 'b'", "outputs.c"),
            ({"outputs": {"b": str(tmp_path / "b.tif")}}, "patchy needs outputs.a", "outputs.a"),
            ({"tiling": {"overlap": 8}}, "multiple of 16", "tiling.overlap"),
            ({"options": {"merge_method": "max"}}, "patchy needs options.checkpoint", "options.checkpoint"),
            ({"options": {"checkpoint": "m.ckpt", "merge_method": "mean"}}, "supports merge_method 'max'",
             "options.merge_method")):
        with pytest.raises(JobValidationError) as err:
            parse_jobspec({**base, **change})
        assert message in err.value.message and err.value.field == field
    with pytest.raises(JobValidationError) as err:  # the checkpoint file is checked with the other files
        validate_job(base)
    assert "file not found" in err.value.message and err.value.field == "options.checkpoint"
