"""Uncertainty outputs (engine/uncertainty.py): confidence and entropy of class outputs checked
against the probabilities written beside them, spread checked against the std of separately run
samples. Tiny model, fake official weights, one 224 px TerraMesh tile, 2 diffusion steps."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)
from terramind_backend.engine import JobValidationError, ModelCache, run_job, validate_job
from terramind_backend.engine.uncertainty import confidence_entropy


def _job(outputs, **over):
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "timesteps": 2,
            "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": outputs, "seed": 0,
            "tiling": {"window": 224, "overlap": 0, "batch_size": 1}}
    spec.update(over)
    return spec


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags(), ds.tags(1)


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


def test_lulc_confidence_and_entropy_match_the_probabilities(tmp_path, fake_hub, cache):  # noqa: F811
    out = tmp_path / "lulc.tif"
    result = run_job(_job({"LULC": str(out)}, options={"probabilities": True, "uncertainty": {"confidence": True}}),
                     models=cache)
    kinds = {o["name"]: o["kind"] for o in result["outputs"]}
    assert kinds == {"LULC": "classes", "LULC_probabilities": "probabilities", "LULC_confidence": "confidence",
                     "LULC_entropy": "entropy"}
    p, _, _ = _read(tmp_path / "lulc_probabilities.tif")
    conf, tags, _ = _read(tmp_path / "lulc_confidence.tif")
    ent, _, _ = _read(tmp_path / "lulc_entropy.tif")
    classes, _, _ = _read(out)
    p64 = p.astype(np.float64)
    np.testing.assert_allclose(conf[0], p64.max(axis=0), atol=1e-6)
    want = -(np.where(p64 > 0, p64 * np.log(np.where(p64 > 0, p64, 1)), 0)).sum(axis=0) / np.log(p.shape[0])
    np.testing.assert_allclose(ent[0], want, atol=1e-5)
    assert (np.take_along_axis(p, classes.astype(np.int64), 0)[0] == p.max(axis=0)).all()
    assert 0.1 <= conf.min() and conf.max() <= 1 and 0 <= ent.min() and ent.max() <= 1
    assert tags["SOURCE_OUTPUT"] == "LULC"
    for name in ("lulc_confidence", "lulc_entropy"):
        assert "singlebandpseudocolor" in (tmp_path / f"{name}.qml").read_text()


def _corner(size: int = 64):
    """The top-left ``size`` px of the sample tile: one small window keeps diffusion cheap."""
    with rasterio.open(sample("S2L2A")) as ds:
        left, top = ds.bounds.left, ds.bounds.top
        return {"bounds": [left, top - size * ds.res[1], left + size * ds.res[0], top], "crs": ds.crs.to_string()}


@pytest.mark.slow
def test_dem_spread_is_the_std_of_four_seeded_samples(tmp_path, fake_hub, cache):  # noqa: F811
    small = {"extent": _corner(), "tiling": {"window": 64, "overlap": 0, "batch_size": 1}}
    result = run_job(_job({"DEM": str(tmp_path / "dem.tif")}, seed=5, options={"uncertainty": {"spread": True}},
                          **small), models=cache)
    assert [o["name"] for o in result["outputs"]] == ["DEM", "DEM_spread"]
    samples = []
    for k in range(4):  # sample k is what a plain job with seed 5 + k draws
        run_job(_job({"DEM": str(tmp_path / f"s{k}.tif")}, seed=5 + k, **small), models=cache)
        samples.append(_read(tmp_path / f"s{k}.tif")[0][0].astype(np.float64))
    spread, _, band_tags = _read(tmp_path / "dem_spread.tif")
    main, _, _ = _read(tmp_path / "dem.tif")
    np.testing.assert_array_equal(main[0], samples[0])                # the main output is unchanged
    assert band_tags["UNITS"] == "m"
    np.testing.assert_allclose(spread[0], np.std(samples, axis=0), rtol=1e-5, atol=1e-4)
    assert spread.max() > 0
    assert "singlebandpseudocolor" in (tmp_path / "dem_spread.qml").read_text()


def test_confidence_entropy_of_known_probabilities():
    p = np.array([[1.0, 0.5, 0.25], [0.0, 0.5, 0.25], [0.0, 0.0, 0.25], [0.0, 0.0, 0.25]])[:, None, :]
    conf, ent = confidence_entropy(p)
    np.testing.assert_allclose(conf[0, 0], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(ent[0, 0], [0.0, 0.5, 1.0], atol=1e-7)   # ln 2 / ln 4 = 0.5
    nan = np.full((4, 1, 1), np.nan)
    assert np.isnan(confidence_entropy(nan)[1]).all()


@pytest.mark.parametrize("uncertainty, field", [
    ({"confidence": "yes"}, "options.uncertainty.confidence"),
    ({"spread": True, "samples": 1}, "options.uncertainty.samples"),
    ("spread", "options.uncertainty"),
])
def test_bad_uncertainty_options_are_refused(tmp_path, uncertainty, field):
    with pytest.raises(JobValidationError) as err:
        validate_job(_job({"DEM": str(tmp_path / "d.tif")}, options={"uncertainty": uncertainty}))
    assert err.value.field == field and os.listdir(tmp_path) == []


def test_derived_files_may_not_collide_with_other_outputs(tmp_path):
    spec = _job({"DEM": str(tmp_path / "d.tif"), "NDVI": str(tmp_path / "d_spread.tif")},
                options={"uncertainty": {"spread": True}})
    with pytest.raises(JobValidationError, match="both write"):
        validate_job(spec)


def test_segment_confidence_and_entropy_match_its_probabilities(tmp_path):
    from test_segmentation import _random_checkpoint

    ckpt = _random_checkpoint(tmp_path)
    spec = {"version": 1, "task": "segment", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": str(sample("S2L2A"))},
            "outputs": {"classes": str(tmp_path / "c.tif"), "probabilities": str(tmp_path / "p.tif")},
            "tiling": {"window": 224, "overlap": 0, "batch_size": 1},
            "options": {"checkpoint": str(ckpt), "uncertainty": {"confidence": True}}}
    result = run_job(spec)
    assert [o["name"] for o in result["outputs"]] == ["classes", "probabilities", "classes_confidence",
                                                       "classes_entropy"]
    p = _read(tmp_path / "p.tif")[0].astype(np.float64)
    conf, ent = _read(tmp_path / "c_confidence.tif")[0][0], _read(tmp_path / "c_entropy.tif")[0][0]
    np.testing.assert_allclose(conf, p.max(axis=0), atol=1e-6)
    np.testing.assert_allclose(ent, -(p * np.log(np.clip(p, 1e-300, 1))).sum(axis=0) / np.log(3), atol=1e-5)


def test_cli_generate_confidence_and_spread_flags():
    from terramind_backend.cli import build_parser
    from terramind_backend.commands.jobs import build_spec

    base = ["generate", "--in", "S2L2A=a.tif", "--out", "LULC=l.tif", "--out", "DEM=d.tif"]
    assert "uncertainty" not in build_spec(build_parser().parse_args(base))["options"]
    spec = build_spec(build_parser().parse_args(base + ["--confidence", "--spread", "6"]))
    assert spec["options"]["uncertainty"] == {"confidence": True, "spread": True, "samples": 6}
    spec = build_spec(build_parser().parse_args(base + ["--confidence"]))
    assert spec["options"]["uncertainty"] == {"confidence": True, "spread": False}
