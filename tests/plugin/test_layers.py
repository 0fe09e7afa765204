"""Output layers on real QGIS: one group per job, sidecar styles first, built-in styles otherwise."""
import json
import shutil
import threading

import pytest
from qgis.core import (QgsMultiBandColorRenderer, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer,
                       QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer)
from qgis.PyQt.QtGui import QPainter

from tests.conftest import sample
from terramind_qgis.layers import add_output_layers, style_layer
from terramind_qgis.paths import PRODUCT_STYLES_FILE
from terramind_qgis.vocabulary import LULC_CLASSES


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
    assert group.isExpanded() and all(node.isExpanded() for node in group.findLayers())   # legends show
    second = add_output_layers({"outputs": [output(tmp_path, "S1RTC")]}, "TerraMind generate #2", project)
    assert project.layerTreeRoot().children()[0].name() == "TerraMind generate #2"
    assert len(second) == 1


def test_builtin_styles_per_modality(project, tmp_path):
    result = {"outputs": [output(tmp_path, m) for m in ("LULC", "NDVI", "DEM", "S1RTC", "S2L2A")]}
    lulc, ndvi, dem, s1, s2 = add_output_layers(result, "styles", project, hillshade=False)

    assert isinstance(lulc.renderer(), QgsPalettedRasterRenderer)
    legend = [label for label, _ in lulc.renderer().legendSymbologyItems()]
    assert legend == [c.label for c in LULC_CLASSES]

    assert isinstance(ndvi.renderer(), QgsSingleBandPseudoColorRenderer)
    assert (ndvi.renderer().classificationMin(), ndvi.renderer().classificationMax()) == (-1.0, 1.0)
    # the engine's .qml draws NDVI and DEM from the same definitions (one style per product)
    products = json.loads(PRODUCT_STYLES_FILE.read_text())
    stops = ndvi.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert [(item.value, item.color.name()) for item in stops] == [(v, c.lower()) for v, c in products["ndvi_ramp"]]
    dem_stops = dem.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert [item.color.name() for item in dem_stops] == [c.lower() for c in products["terrain_ramp"]]

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


def test_dem_gets_a_hillshade_below_it_when_the_setting_is_on(project, settings, tmp_path):
    assert settings.dem_hillshade is True  # the default
    result = {"outputs": [output(tmp_path, "DEM"), output(tmp_path, "NDVI")]}
    layers = add_output_layers(result, "relief", project)
    assert [layer.name() for layer in layers] == ["DEM", "DEM (hillshade)", "NDVI"]
    dem, shade, _ = layers
    group = project.layerTreeRoot().findGroup("relief")
    assert [node.layer() for node in group.findLayers()] == layers  # tree order: the hillshade right below
    assert shade.source() == dem.source() and shade.extent() == dem.extent() and shade.crs() == dem.crs()
    assert shade.renderer().type() == "hillshade"
    assert (shade.renderer().azimuth(), shade.renderer().altitude()) == (315.0, 45.0)
    assert shade.renderer().zFactor() == 1.0  # projected grid in metres: heights and cells agree
    assert isinstance(dem.renderer(), QgsSingleBandPseudoColorRenderer)
    assert dem.blendMode() == QPainter.CompositionMode_Multiply
    assert shade.blendMode() == QPainter.CompositionMode_SourceOver and shade.opacity() == 1.0


def test_hillshade_does_not_take_the_dems_sidecar_style(project, settings, tmp_path):
    out = output(tmp_path, "DEM")
    styled = QgsRasterLayer(out["path"], "x")
    style_layer(styled, "DEM")
    styled.setOpacity(0.5)
    styled.saveNamedStyle(out["style"])
    dem, shade = add_output_layers({"outputs": [out]}, "sidecar relief", project)
    assert dem.renderer().type() == "singlebandpseudocolor" and dem.opacity() == 0.5
    assert shade.renderer().type() == "hillshade" and shade.opacity() == 1.0


def test_hillshade_of_a_dem_in_degrees_scales_heights(project, settings, tmp_path):
    gdal = pytest.importorskip("osgeo.gdal")
    path = tmp_path / "dem.tif"
    assert gdal.Warp(str(path), str(sample("DEM")), dstSRS="EPSG:4326") is not None
    out = {"name": "DEM", "path": str(path), "style": None, "kind": "continuous"}
    _, shade = add_output_layers({"outputs": [out]}, "geographic", project)
    assert shade.crs().isGeographic()
    assert shade.renderer().zFactor() == pytest.approx(1 / 111320)


def test_no_hillshade_when_the_setting_is_off(project, settings, tmp_path):
    settings.dem_hillshade = False
    layers = add_output_layers({"outputs": [output(tmp_path, "DEM")]}, "flat", project)
    assert [layer.name() for layer in layers] == ["DEM"]
    assert [node.layer() for node in project.layerTreeRoot().findGroup("flat").findLayers()] == layers
    assert layers[0].blendMode() == QPainter.CompositionMode_SourceOver


class _Answer:
    """Stands in for the backend client: hands back ``result`` and notes the thread it ran on."""

    def __init__(self, result):
        self.result, self.thread = result, None

    def run_job(self, spec, on_event=None, is_cancelled=None):
        self.thread = threading.current_thread()
        return self.result


@pytest.mark.parametrize("on", [True, False])
def test_task_opens_the_hillshade_in_its_worker_thread_when_set(project, settings, tmp_path, qtbot, on):
    from qgis.core import QgsApplication
    from terramind_qgis.task import Done, TerraMindTask

    settings.dem_hillshade = on
    client = _Answer({"outputs": [output(tmp_path, "DEM")], "elapsed_s": 0.1})
    outcomes = []
    task = TerraMindTask("TerraMind generate #7", {}, outcomes.append, client=client, project=project)
    settings.dem_hillshade = not on  # the value at creation counts, not a later change
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=30_000)
    (outcome,) = outcomes
    assert isinstance(outcome, Done) and client.thread is not threading.main_thread()
    names = ["DEM", "DEM (hillshade)"] if on else ["DEM"]
    assert [layer.name() for layer in outcome.layers] == names
    group = project.layerTreeRoot().findGroup("TerraMind generate #7")
    assert [node.layer().name() for node in group.findLayers()] == names


@pytest.mark.parametrize("setting", [True, False])
def test_processing_dem_output_gets_its_hillshade_like_dialog_jobs(project, settings, tmp_path, setting):
    """The toolbox's post-processor (``SidecarStyle``) runs after Processing put the layer in the project:
    with the setting on, the DEM gets the sidecar style and its hillshade right below it."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from terramind_qgis.processing.styling import SidecarStyle

    settings.dem_hillshade = setting
    out = output(tmp_path, "DEM")
    styled = QgsRasterLayer(out["path"], "x")
    style_layer(styled, "DEM")
    styled.saveNamedStyle(out["style"])
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False
    dem = QgsRasterLayer(out["path"], "Generated DEM", "gdal", options)  # as Processing loads it: no style
    group = project.layerTreeRoot().addGroup("results")
    project.addMapLayer(dem, False)
    group.addLayer(dem)
    context = QgsProcessingContext()
    context.setProject(project)
    SidecarStyle(out["style"], hillshade=settings.dem_hillshade).postProcessLayer(dem, context,
                                                                                  QgsProcessingFeedback())
    assert dem.renderer().type() == "singlebandpseudocolor"
    names = [node.layer().name() for node in group.findLayers()]
    if setting:
        assert names == ["Generated DEM", "Generated DEM (hillshade)"]
        assert group.findLayers()[1].layer().renderer().type() == "hillshade"
        assert dem.blendMode() == QPainter.CompositionMode_Multiply
    else:
        assert names == ["Generated DEM"] and dem.blendMode() == QPainter.CompositionMode_SourceOver
