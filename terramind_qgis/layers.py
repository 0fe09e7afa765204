"""Put a job's output rasters into the project, styled, under one layer group per job (main thread).

The engine writes a QGIS style ``<output>.qml`` next to every GeoTIFF; that style wins. When it is
missing (an older backend, or a file copied without it) ``style_layer`` builds a renderer in code from the
same product definitions the engine writes its .qml from (``engine/product_styles.json``): LULC paletted with
class names, NDVI colour ramp over −1…1, DEM pseudocolour, SAR greyscale in dB, Sentinel-2 true colour.

With the ``dem_hillshade`` setting on, a DEM output also gets a hillshade layer of the same file,
placed right below it; the pseudocolour layer multiplies onto it so the relief shows through.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from qgis.core import (QgsColorRampShader, QgsFillSymbol, QgsVectorLayer, QgsContrastEnhancement, QgsHillshadeRenderer, QgsMessageLog,
                       QgsMultiBandColorRenderer, QgsPalettedRasterRenderer, QgsProject, QgsRasterBandStats,
                       QgsRasterLayer, QgsRasterShader, QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer,
                       Qgis)
from qgis.PyQt.QtGui import QColor, QPainter

from .vocabulary import LULC_CLASSES, PRODUCTS as _PRODUCTS

LOG_TAG = "TerraMind"
VECTOR_KINDS = ("areas", "points")  # result kinds that are GeoPackages, not rasters
PCA_KIND = "embeddings-pca"  # the false-colour composite the backend adds to every embeddings output

# The engine's product styles (its .qml files use the same file), so a layer looks alike on every path.
NDVI_RAMP = [(float(v), c) for v, c in _PRODUCTS["ndvi_ramp"]]
DEM_RAMP = list(_PRODUCTS["terrain_ramp"])
# 1-based (red, green, blue) band numbers and the display range of raw values, per optical modality.
TRUE_COLOUR = {k: (tuple(bands), tuple(span)) for k, (bands, span) in _PRODUCTS["true_colour"].items()}
SAR_DB_RANGE = tuple(_PRODUCTS["sar_db_range"])
# 0–1 scores (similarity, confidence, entropy) and spread (bright = look here).
SCORE_RAMP = list(_PRODUCTS["score_ramp"])
SCORE_KINDS = ("similarity", "confidence", "entropy")
# Light from the north-west, 45° up: the cartographic convention, so relief does not look inverted.
HILLSHADE_AZIMUTH, HILLSHADE_ALTITUDE = 315.0, 45.0
METRES_PER_DEGREE = 111320.0  # z factor for a DEM on a geographic grid (heights in m, cells in degrees)


def add_output_layers(result: Dict, group_name: str, project: Optional[QgsProject] = None, *,
                      hillshade: Optional[bool] = None) -> List[QgsRasterLayer]:
    """Load every output of a job result into ``project`` under a new top group ``group_name``.

    Returns the layers added, top to bottom: one per output in output order, each DEM followed by
    its hillshade when ``hillshade`` (default: the ``dem_hillshade`` setting) is on. An output that
    cannot be opened is reported in the TerraMind log and skipped; the others are still added.
    Main thread only; a task can do the slow part (``load_output_layers``) in its worker thread
    and call ``add_layers`` after.
    """
    return add_layers(load_output_layers(result, hillshade=hillshade), group_name, project)


def load_output_layers(result: Dict, *, hillshade: Optional[bool] = None) -> List[QgsRasterLayer]:
    """Open and style the outputs (any thread: the first GDAL open can take tens of ms). Layers
    made off the main thread are handed over to it, so the project can take them. ``hillshade``
    None reads the setting; a task reads it on the main thread and passes it in."""
    from qgis.PyQt.QtCore import QCoreApplication, QThread

    if hillshade is None:
        from .settings import Settings

        hillshade = Settings().dem_hillshade
    app = QCoreApplication.instance()
    layers: List[QgsRasterLayer] = []
    for output in result.get("outputs") or []:
        path = output.get("path", "")
        name = output.get("name") or os.path.splitext(os.path.basename(path))[0]
        if output.get("kind") in VECTOR_KINDS:  # GeoPackage outputs: matching areas, generated Coordinates
            layer = areas_layer(path, name) if output["kind"] == "areas" else points_layer(path, name, output)
            if layer is not None:
                if app is not None and QThread.currentThread() != app.thread():
                    layer.moveToThread(app.thread())
                layers.append(layer)
            continue
        layer = QgsRasterLayer(path, name, "gdal")
        if not layer.isValid():
            QgsMessageLog.logMessage(f"Could not open output {name}: {path}", LOG_TAG, Qgis.Warning)
            continue
        apply_style(layer, output)
        made = [layer]
        if hillshade and (output.get("name") or "").upper() == "DEM":
            shade = paired_hillshade(layer)
            if shade is not None:
                made.append(shade)  # after the DEM: add_layers puts it right below
        for each in made:
            if app is not None and QThread.currentThread() != app.thread():
                each.moveToThread(app.thread())
        layers += made
    return layers


def points_layer(path: str, name: str, output: Dict) -> Optional[QgsVectorLayer]:
    """Generated Coordinates (one point per window), drawn with the engine's sidecar style when it loads."""
    layer = QgsVectorLayer(path, name, "ogr")
    if not layer.isValid():
        QgsMessageLog.logMessage(f"Could not open output {name}: {path}", LOG_TAG, Qgis.Warning)
        return None
    style = output.get("style") or (os.path.splitext(path)[0] + ".qml")
    if os.path.isfile(style):
        message, ok = layer.loadNamedStyle(style)
        if not ok:
            QgsMessageLog.logMessage(f"Style {style} did not load ({message})", LOG_TAG, Qgis.Warning)
    return layer


def areas_layer(path: str, name: str) -> Optional[QgsVectorLayer]:
    """Matching areas as outlines (no fill), so the similarity raster below stays visible."""
    layer = QgsVectorLayer(path, name, "ogr")
    if not layer.isValid():
        QgsMessageLog.logMessage(f"Could not open output {name}: {path}", LOG_TAG, Qgis.Warning)
        return None
    layer.renderer().setSymbol(QgsFillSymbol.createSimple(
        {"style": "no", "outline_color": "#00e5ff", "outline_width": "0.6"}))
    return layer


def hillshade_layer(dem: QgsRasterLayer) -> Optional[QgsRasterLayer]:
    """A second layer on ``dem``'s file, named "<name> (hillshade)", drawn as multidirectional
    hillshade lit from 315°/45°; None (logged) when the file does not open again."""
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False  # the sidecar .qml is the pseudocolour style, not this one
    layer = QgsRasterLayer(dem.source(), f"{dem.name()} (hillshade)", "gdal", options)
    if not layer.isValid():
        QgsMessageLog.logMessage(f"Could not open {dem.source()} again for its hillshade", LOG_TAG, Qgis.Warning)
        return None
    renderer = QgsHillshadeRenderer(layer.dataProvider(), 1, HILLSHADE_AZIMUTH, HILLSHADE_ALTITUDE)
    renderer.setMultiDirectional(True)  # softer, and slopes facing away from the light keep detail
    if layer.crs().isGeographic():
        renderer.setZFactor(1.0 / METRES_PER_DEGREE)
    layer.setRenderer(renderer)
    return layer


def paired_hillshade(dem: QgsRasterLayer) -> Optional[QgsRasterLayer]:
    """``dem``'s hillshade layer, with the DEM set to multiply its colours onto it; None as ``hillshade_layer``."""
    shade = hillshade_layer(dem)
    if shade is not None:
        dem.setBlendMode(QPainter.CompositionMode.CompositionMode_Multiply)
    return shade


def add_hillshade_below(dem: QgsRasterLayer, project: QgsProject) -> Optional[QgsRasterLayer]:
    """Put ``dem``'s paired hillshade right below it in ``project``'s layer tree (top of the tree when ``dem``
    is not in it). Main thread. None when the file does not reopen."""
    shade = paired_hillshade(dem)
    if shade is None:
        return None
    project.addMapLayer(shade, False)
    root = project.layerTreeRoot()
    node = root.findLayer(dem.id())
    if node is None:
        root.insertLayer(0, shade)
    else:
        parent = node.parent()
        parent.insertLayer(parent.children().index(node) + 1, shade)
    dem.triggerRepaint()
    return shade


def add_layers(layers: List[QgsRasterLayer], group_name: str,
               project: Optional[QgsProject] = None) -> List[QgsRasterLayer]:
    """Add ready layers to ``project`` under a new top group (main thread)."""
    project = project or QgsProject.instance()
    layers = [layer for layer in layers if layer.isValid()]
    if not layers:
        return layers
    group = project.layerTreeRoot().insertGroup(0, group_name)
    group.setExpanded(True)   # results arrive open, each with its legend (classes, ramp) showing
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer).setExpanded(True)
    return layers


def apply_style(layer: QgsRasterLayer, output: Dict) -> None:
    """The engine's sidecar style if there is one that loads, else our renderer for the output."""
    style = output.get("style") or (os.path.splitext(output.get("path", ""))[0] + ".qml")
    if style and os.path.isfile(style):
        message, ok = layer.loadNamedStyle(style)
        if ok:
            return
        QgsMessageLog.logMessage(f"Style {style} did not load ({message}); using the built-in style.",
                                 LOG_TAG, Qgis.Warning)
    style_layer(layer, output.get("name") or output.get("kind") or "", output.get("kind") or "")


def style_layer(layer: QgsRasterLayer, name: str, kind: str = "") -> None:
    """Built-in renderer for an output by modality name (LULC, NDVI, DEM, S1GRD/S1RTC, S2L2A…) or kind."""
    key = (name or "").upper()
    provider = layer.dataProvider()
    if kind in SCORE_KINDS or kind == "spread":
        high = 1.0
        if kind == "spread":
            _, high = _band_range(provider, 1)
            high = high if high > 0 else 1.0
        step = high / (len(SCORE_RAMP) - 1)
        layer.setRenderer(_pseudocolour(provider, [(i * step, QColor(c)) for i, c in enumerate(SCORE_RAMP)], 0.0, high))
    elif key == "LULC":
        classes = [QgsPalettedRasterRenderer.Class(c.value, QColor(c.colour), c.label) for c in LULC_CLASSES]
        layer.setRenderer(QgsPalettedRasterRenderer(provider, 1, classes))
    elif key == "NDVI":
        layer.setRenderer(_pseudocolour(provider, [(v, QColor(c)) for v, c in NDVI_RAMP], -1.0, 1.0))
    elif key == "DEM":
        low, high = _band_range(provider, 1)
        step = (high - low) / (len(DEM_RAMP) - 1) if high > low else 1.0
        stops = [(low + i * step, QColor(c)) for i, c in enumerate(DEM_RAMP)]
        layer.setRenderer(_pseudocolour(provider, stops, low, high))
    elif key in ("S1GRD", "S1RTC"):
        renderer = QgsSingleBandGrayRenderer(provider, 1)
        renderer.setContrastEnhancement(_stretch(provider, 1, *SAR_DB_RANGE))
        layer.setRenderer(renderer)
    elif key in TRUE_COLOUR and provider.bandCount() >= max(TRUE_COLOUR[key][0]):
        (r, g, b), (low, high) = TRUE_COLOUR[key]
        renderer = QgsMultiBandColorRenderer(provider, r, g, b)
        renderer.setRedContrastEnhancement(_stretch(provider, r, low, high))
        renderer.setGreenContrastEnhancement(_stretch(provider, g, low, high))
        renderer.setBlueContrastEnhancement(_stretch(provider, b, low, high))
        layer.setRenderer(renderer)
    elif key == "CLASSES":
        classes = QgsPalettedRasterRenderer.classDataFromRaster(provider, 1)
        layer.setRenderer(QgsPalettedRasterRenderer(provider, 1, classes))
    # embeddings, probabilities and anything unknown keep QGIS's default renderer
    layer.triggerRepaint()


def _pseudocolour(provider, stops, low: float, high: float) -> QgsSingleBandPseudoColorRenderer:
    ramp = QgsColorRampShader(low, high)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, c, f"{v:g}") for v, c in stops])
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    return renderer


def _stretch(provider, band: int, low: float, high: float) -> QgsContrastEnhancement:
    enhancement = QgsContrastEnhancement(provider.dataType(band))
    enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
    enhancement.setMinimumValue(low)
    enhancement.setMaximumValue(high)
    return enhancement


def _band_range(provider, band: int):
    stats = provider.bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
    return float(stats.minimumValue), float(stats.maximumValue)
