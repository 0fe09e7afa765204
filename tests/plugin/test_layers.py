"""Output layers on real QGIS: one group per job, sidecar styles first, built-in styles otherwise."""
import shutil

import pytest
from qgis.core import (QgsMultiBandColorRenderer, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer,
                       QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer)

from tests.conftest import sample
from terramind_qgis.layers import LULC_CLASSES, add_output_layers, style_layer


def output(tmp_path, modality, kind="continuous", name=None):
    path = tmp_path / f"{(name or modality).lower()}.tif"
    shutil.copy(sample(modality), path)
    return {"name": name or modality, "path": str(path), "style": str(path.with_suffix(".qml")), "kind": kind}


@pytest.fixture
def project(qgis_new_project):
    return QgsProject.instance()


def test_one_group_per_job_with_layers_matching_the_files(project, tmp_path):
    result = {"outputs": [output(tmp_path, "LULC", "classes"), output(tmp_path, "NDVI")]}
    layers = add_output_layers(result, "TerraMind generate #1", project)
    assert [layer.name() for layer in layers] == ["LULC", "NDVI"]
    group = project.layerTreeRoot().findGroup("TerraMind generate #1")
    assert [node.layer() for node in group.findLayers()] == layers
    for layer, out in zip(layers, result["outputs"]):
        reference = QgsRasterLayer(out["path"], "ref")
        assert layer.crs() == reference.crs() and layer.crs().authid().startswith("EPSG:327")
        assert layer.extent() == reference.extent()
    second = add_output_layers({"outputs": [output(tmp_path, "DEM")]}, "TerraMind generate #2", project)
    assert project.layerTreeRoot().children()[0].name() == "TerraMind generate #2"
    assert len(second) == 1


def test_builtin_styles_per_modality(project, tmp_path):
    result = {"outputs": [output(tmp_path, m) for m in ("LULC", "NDVI", "DEM", "S1RTC", "S2L2A")]}
    lulc, ndvi, dem, s1, s2 = add_output_layers(result, "styles", project)

    assert isinstance(lulc.renderer(), QgsPalettedRasterRenderer)
    legend = [label for label, _ in lulc.renderer().legendSymbologyItems()]
    assert legend == [name for _, _, name in LULC_CLASSES]

    assert isinstance(ndvi.renderer(), QgsSingleBandPseudoColorRenderer)
    assert (ndvi.renderer().classificationMin(), ndvi.renderer().classificationMax()) == (-1.0, 1.0)

    assert isinstance(dem.renderer(), QgsSingleBandPseudoColorRenderer)
    assert dem.renderer().classificationMin() < dem.renderer().classificationMax()

    assert isinstance(s1.renderer(), QgsSingleBandGrayRenderer)
    ce = s1.renderer().contrastEnhancement()
    assert (ce.minimumValue(), ce.maximumValue()) == (-25.0, 0.0)

    r = s2.renderer()
    assert isinstance(r, QgsMultiBandColorRenderer)
    assert (r.redBand(), r.greenBand(), r.blueBand()) == (4, 3, 2)


def test_sidecar_style_wins_over_builtin(project, tmp_path):
    out = output(tmp_path, "NDVI")
    styled = QgsRasterLayer(out["path"], "x")
    styled.setRenderer(QgsSingleBandGrayRenderer(styled.dataProvider(), 1))
    styled.saveNamedStyle(out["style"])
    (layer,) = add_output_layers({"outputs": [out]}, "sidecar", project)
    assert isinstance(layer.renderer(), QgsSingleBandGrayRenderer)


def test_broken_sidecar_falls_back_to_builtin(project, tmp_path):
    out = output(tmp_path, "LULC", "classes")
    with open(out["style"], "w") as f:
        f.write("<not a style")
    (layer,) = add_output_layers({"outputs": [out]}, "fallback", project)
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)


def test_unreadable_output_is_skipped(project, tmp_path):
    good = output(tmp_path, "NDVI")
    missing = {"name": "LULC", "path": str(tmp_path / "gone.tif"), "style": None, "kind": "classes"}
    layers = add_output_layers({"outputs": [missing, good]}, "partial", project)
    assert [layer.name() for layer in layers] == ["NDVI"]
    assert add_output_layers({"outputs": []}, "empty", project) == []
    assert project.layerTreeRoot().findGroup("empty") is None


def test_style_layer_by_kind_for_segmentation_classes(project, tmp_path):
    layer = QgsRasterLayer(output(tmp_path, "LULC")["path"], "seg")
    style_layer(layer, "classes")
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
    assert len(layer.renderer().classes()) >= 2
