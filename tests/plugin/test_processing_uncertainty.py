"""Confidence/entropy/spread options of terramind:generate and terramind:segment: the JobSpec they
become, and the derived layers the toolbox loads after the run (no backend needed)."""
from __future__ import annotations

from tests.conftest import sample
from test_processing import algorithm, spec_for


def test_generate_spread_and_confidence_options(provider, tmp_path):
    s2, dem, lulc = str(sample("S2L2A")), str(tmp_path / "dem.tif"), str(tmp_path / "lulc.tif")
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": s2, "OUTPUT_DEM": dem, "OUTPUT_LULC": lulc})
    assert "uncertainty" not in spec["options"]
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": s2, "OUTPUT_DEM": dem, "OUTPUT_LULC": lulc,
                                                 "CONFIDENCE": True, "SPREAD": True, "SPREAD_SAMPLES": 6})
    assert spec["options"]["uncertainty"] == {"confidence": True, "spread": True, "samples": 6}
    assert algorithm("terramind:generate").parameterDefinition("SPREAD_SAMPLES").defaultValue() == 4


def test_segment_confidence_option(provider, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"x")
    spec, _, _ = spec_for("terramind:segment", {"CHECKPOINT": str(checkpoint), "S2L2A": str(sample("S2L2A")),
                                                "OUTPUT": str(tmp_path / "c.tif"), "CONFIDENCE": True})
    assert spec["options"]["uncertainty"] == {"confidence": True}
    assert algorithm("terramind:segment").parameterDefinition("SPREAD") is None


def test_derived_layers_load_with_the_declared_outputs(provider, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    alg = algorithm("terramind:generate")
    paths = {k: str(tmp_path / f"{k}.tif") for k in ("dem", "dem_spread")}
    result = {"outputs": [
        {"name": "DEM", "path": paths["dem"], "style": str(tmp_path / "dem.qml"), "kind": "continuous"},
        {"name": "DEM_spread", "path": paths["dem_spread"], "style": str(tmp_path / "dem_spread.qml"),
         "kind": "spread"}], "tiles": 1, "device": "cpu", "elapsed_s": 1.0}
    results = alg.collect_results(result, {"DEM": "OUTPUT_DEM"}, context, QgsProcessingFeedback())
    assert results == {"OUTPUT_DEM": paths["dem"]}
    to_load = context.layersToLoadOnCompletion()
    assert paths["dem_spread"] in to_load and to_load[paths["dem_spread"]].name == "DEM_spread"
    assert alg._styles[paths["dem_spread"]] == (str(tmp_path / "dem_spread.qml"), False)
