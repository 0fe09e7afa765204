"""Find-similar through real QGIS: the map tool takes simulated clicks on a canvas in another CRS and
runs the `similarity` job on the real backend process; terramind:similarity from Processing. The
results are checked against a numpy cosine similarity of the same embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                       QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer,
                       QgsVectorLayer)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

from tests.conftest import sample
from terramind_qgis.similarity_tool import SimilarityMapTool
from terramind_qgis.task import Done

ORIGIN, PATCH = (500000.0, 5300000.0), 160.0
TIMEOUT_MS = 120_000


def write_embeddings(path: Path, data: np.ndarray, tag: str = "embeddings") -> str:
    d, h, w = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, d, gdal.GDT_Float32, ["TILED=YES", "BLOCKXSIZE=16",
                                                                                     "BLOCKYSIZE=16"])
    ds.SetGeoTransform((ORIGIN[0], PATCH, 0, ORIGIN[1], 0, -PATCH))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetMetadataItem("TERRAMIND_OUTPUT", tag)
    for i in range(d):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
        ds.GetRasterBand(i + 1).SetNoDataValue(float("nan"))
    ds = None
    return str(path)


def cosine(emb, positives, negatives=()):
    unit = emb.reshape(emb.shape[0], -1).T.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    proto = np.mean([v / np.linalg.norm(v) for v in positives], axis=0)
    cos = unit @ (proto / np.linalg.norm(proto))
    for n in negatives:
        cos = np.where(unit @ (n / np.linalg.norm(n)) > cos, 0.0, cos)
    return np.clip(cos, 0, 1).reshape(emb.shape[1:])


def read_band(path):
    dataset = gdal.Open(path)  # kept alive while the band is read (GDAL's Python bindings crash otherwise)
    return dataset.GetRasterBand(1).ReadAsArray()


def centre(row, col):
    return QgsPointXY(ORIGIN[0] + (col + 0.5) * PATCH, ORIGIN[1] - (row + 0.5) * PATCH)


@pytest.fixture
def embeddings(tmp_path):
    data = np.random.default_rng(1).normal(size=(8, 20, 30)).astype(np.float32)
    layer = QgsRasterLayer(write_embeddings(tmp_path / "emb.tif", data), "emb", "gdal")
    assert layer.isValid()
    project = QgsProject.instance()
    project.clear()
    group = project.layerTreeRoot().addGroup("TerraMind embed")
    project.addMapLayer(layer, False)
    group.addLayer(layer)
    return data, layer, group


def lonlat_canvas(layer):
    """A canvas in EPSG:4326 showing the layer: clicks must be transformed to its UTM CRS."""
    canvas = QgsMapCanvas()
    canvas.resize(600, 400)
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    canvas.setDestinationCrs(wgs84)
    transform = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance())
    canvas.setExtent(transform.transformBoundingBox(layer.extent()))
    canvas.refresh()
    return canvas, transform


def click(tool, canvas, transform, point, modifiers=Qt.KeyboardModifier.NoModifier, button=Qt.MouseButton.LeftButton):
    pixel = canvas.getCoordinateTransform().transform(transform.transform(point))
    event = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, QPoint(round(pixel.x()), round(pixel.y())),
                             button, button, modifiers)
    tool.canvasReleaseEvent(event)


def test_clicks_run_jobs_and_put_the_styled_result_above_the_embeddings(backend_settings, embeddings, qtbot):
    data, layer, group = embeddings
    canvas, transform = lonlat_canvas(layer)
    tool = SimilarityMapTool(canvas, layer)
    canvas.setMapTool(tool)

    click(tool, canvas, transform, centre(4, 7))
    qtbot.waitUntil(lambda: len(tool.outcomes) == 1, timeout=TIMEOUT_MS)
    outcome = tool.outcomes[0]
    assert isinstance(outcome, Done), outcome
    (result,) = tool.result_layers
    assert [n.layer() for n in group.findLayers()] == [result, layer]      # right above the embeddings
    assert result.name() == "Similar to emb (1 point(s))"
    assert isinstance(result.renderer(), QgsSingleBandPseudoColorRenderer)
    sim = read_band(result.source())
    assert sim[4, 7] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim, cosine(data, [data[:, 4, 7]]), atol=1e-5)

    click(tool, canvas, transform, centre(15, 25), modifiers=Qt.KeyboardModifier.ShiftModifier)   # "not this"
    qtbot.waitUntil(lambda: len(tool.outcomes) == 2, timeout=TIMEOUT_MS)
    (second,) = tool.result_layers
    assert [n.layer() for n in group.findLayers()] == [second, layer]      # replaced, not stacked
    assert second.name() == "Similar to emb (1 point(s), 1 negative(s))"
    sim = read_band(second.source())
    assert sim[15, 25] == 0 and sim[4, 7] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim, cosine(data, [data[:, 4, 7]], [data[:, 15, 25]]), atol=1e-5)
    assert tool.positives and tool.negatives

    tool.keyPressEvent(_key(Qt.Key.Key_Escape))
    assert tool.positives == tool.negatives == [] and result is not None
    canvas.unsetMapTool(tool)


def test_click_on_terramesh_embeddings_made_by_the_plugin(backend_settings, qtbot, tmp_path):
    """The issue's acceptance: embeddings of a TerraMesh tile made through the plugin (TerraMindTask, tiny
    model, fp32), a click on one patch: that patch is 1.0 and every value is numpy's cosine similarity."""
    from terramind_qgis.task import TerraMindTask

    QgsProject.instance().clear()
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}}, "outputs": {"embeddings": str(tmp_path / "e.tif")},
            "options": {"precision": "fp32"}}
    outcomes = []
    QgsApplication.taskManager().addTask(TerraMindTask("TerraMind embed", spec, outcomes.append))
    qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    assert isinstance(outcomes[0], Done), outcomes[0]
    # the embeddings and their PCA false-colour composite (#18): click on the embeddings themselves
    (layer,) = [lyr for lyr in outcomes[0].layers if lyr.source().endswith("e.tif")]
    dataset = gdal.Open(layer.source())
    emb = dataset.ReadAsArray()
    gt = dataset.GetGeoTransform()
    assert emb.shape == (192, 14, 14)

    canvas, transform = lonlat_canvas(layer)
    tool = SimilarityMapTool(canvas, layer)
    point = QgsPointXY(gt[0] + 9.5 * gt[1], gt[3] + 5.5 * gt[5])      # the centre of patch row 5, column 9
    click(tool, canvas, transform, point)
    qtbot.waitUntil(lambda: bool(tool.outcomes), timeout=TIMEOUT_MS)
    assert isinstance(tool.outcomes[0], Done), tool.outcomes[0]
    sim = read_band(tool.result_layers[0].source())
    assert sim[5, 9] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sim, cosine(emb, [emb[:, 5, 9]]), atol=1e-5)
    group = QgsProject.instance().layerTreeRoot().findGroup("TerraMind embed")
    order = [n.layer() for n in group.findLayers()]   # the group also holds the PCA composite (#18)
    assert order.index(tool.result_layers[0]) == order.index(layer) - 1   # right above the embeddings


def test_polygon_example_by_ctrl_clicks_and_right_click(backend_settings, embeddings, qtbot):
    data, layer, _ = embeddings
    canvas, transform = lonlat_canvas(layer)
    tool = SimilarityMapTool(canvas, layer)
    x0, y0 = ORIGIN[0] + 10 * PATCH, ORIGIN[1] - 5 * PATCH              # patches rows 5-7, cols 10-13
    corners = [QgsPointXY(x0 + 2, y0 - 2), QgsPointXY(x0 + 4 * PATCH - 2, y0 - 2),
               QgsPointXY(x0 + 4 * PATCH - 2, y0 - 3 * PATCH + 2), QgsPointXY(x0 + 2, y0 - 3 * PATCH + 2)]
    for corner in corners:
        click(tool, canvas, transform, corner, modifiers=Qt.KeyboardModifier.ControlModifier)
    assert tool.outcomes == [] and tool.task is None                     # nothing runs while drawing
    click(tool, canvas, transform, corners[0], button=Qt.MouseButton.RightButton)
    qtbot.waitUntil(lambda: len(tool.outcomes) == 1, timeout=TIMEOUT_MS)
    assert isinstance(tool.outcomes[0], Done), tool.outcomes[0]
    patches = data[:, 5:8, 10:14].reshape(8, -1).T
    mean_unit = np.mean(patches / np.linalg.norm(patches, axis=1, keepdims=True), axis=0)
    np.testing.assert_allclose(read_band(tool.result_layers[0].source()), cosine(data, [mean_unit]), atol=1e-5)


def test_message_bar_switch_outlines_matching_areas_above_the_similarity(backend_settings, embeddings, qtbot):
    from terramind_qgis.similarity_tool import message_widget

    data, layer, group = embeddings
    canvas, transform = lonlat_canvas(layer)
    tool = SimilarityMapTool(canvas, layer)
    tool.add_example(transform.transform(centre(8, 8)), run=False)
    item = message_widget(tool)
    item.threshold_spin.setValue(0.6)
    assert tool.threshold is None and tool.task is None               # the switch is still off
    item.threshold_check.setChecked(True)                             # on: the examples run again, with areas
    qtbot.waitUntil(lambda: len(tool.outcomes) == 1, timeout=TIMEOUT_MS)
    assert isinstance(tool.outcomes[0], Done), tool.outcomes[0]
    areas, sim = tool.result_layers
    assert isinstance(areas, QgsVectorLayer) and areas.featureCount() > 0
    assert areas.name() == "Matches ≥ 0.6"
    assert [n.layer() for n in group.findLayers()] == [areas, sim, layer]
    matches = (read_band(sim.source()) >= 0.6).sum()
    assert sum(f.geometry().area() for f in areas.getFeatures()) == pytest.approx(matches * PATCH * PATCH)


def test_plugin_styler_draws_scores_like_the_engine_qml(backend_settings, embeddings, qtbot, tmp_path):
    """Without its .qml (a copied file), a similarity layer gets the same colour ramp from the plugin."""
    import shutil

    from terramind_qgis.layers import style_layer

    data, layer, _ = embeddings
    canvas, transform = lonlat_canvas(layer)
    tool = SimilarityMapTool(canvas, layer)
    tool.add_example(transform.transform(centre(2, 2)))
    qtbot.waitUntil(lambda: bool(tool.outcomes), timeout=TIMEOUT_MS)
    engine = tool.result_layers[0]
    copy = tmp_path / "copy.tif"
    shutil.copyfile(engine.source(), copy)
    plain = QgsRasterLayer(str(copy), "copy", "gdal")
    style_layer(plain, "similarity", "similarity")

    def stops(renderer):
        shader = renderer.shader().rasterShaderFunction()
        return [(round(i.value, 6), i.color.name()) for i in shader.colorRampItemList()]
    assert stops(plain.renderer()) == stops(engine.renderer())
    assert stops(plain.renderer())[0] == (0.0, "#0d0887") and stops(plain.renderer())[-1] == (1.0, "#f0f921")


def test_only_terramind_embeddings_layers_are_accepted(tmp_path, qgis_app):
    other = write_embeddings(tmp_path / "p.tif", np.ones((3, 4, 4), np.float32), tag="LULC_probabilities")
    with pytest.raises(ValueError, match="not a TerraMind embeddings raster"):
        SimilarityMapTool(QgsMapCanvas(), QgsRasterLayer(other, "p", "gdal"))
    with pytest.raises(ValueError, match="Select an embeddings raster"):
        SimilarityMapTool(QgsMapCanvas(), None)


def test_processing_similarity_with_matching_areas(backend_settings, embeddings, tmp_path, qgis_processing):
    import processing
    from terramind_qgis.processing.provider import TerraMindProvider

    provider = TerraMindProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        data, layer, _ = embeddings
        p = centre(12, 3)
        result = processing.run("terramind:similarity", {
            "EMBEDDINGS": layer, "POINT": f"{p.x()},{p.y()} [EPSG:32633]", "THRESHOLD": 0.5,
            "OUTPUT": str(tmp_path / "sim.tif"), "OUTPUT_AREAS": str(tmp_path / "areas.gpkg")})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
    sim = read_band(result["OUTPUT"])
    np.testing.assert_allclose(sim, cosine(data, [data[:, 12, 3]]), atol=1e-5)
    areas = QgsVectorLayer(result["OUTPUT_AREAS"], "areas", "ogr")
    assert areas.isValid() and areas.featureCount() > 0
    total = sum(f.geometry().area() for f in areas.getFeatures())
    assert total == pytest.approx((sim >= 0.5).sum() * PATCH * PATCH)
    assert areas.crs().authid() == "EPSG:32633"


def _key(key):
    from qgis.PyQt.QtGui import QKeyEvent

    return QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier)
