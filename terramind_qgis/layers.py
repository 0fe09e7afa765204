"""Put a job's output rasters into the project, styled, under one layer group per job (main thread).

The engine writes a QGIS style ``<output>.qml`` next to every GeoTIFF; that style wins. When it is
missing (an older backend, or a file copied without it) ``style_layer`` builds a renderer in code:
LULC paletted with class names, NDVI colour ramp over −1…1, DEM pseudocolour, SAR greyscale in dB,
Sentinel-2 true colour.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from qgis.core import (QgsColorRampShader, QgsContrastEnhancement, QgsMessageLog, QgsMultiBandColorRenderer,
                       QgsPalettedRasterRenderer, QgsProject, QgsRasterBandStats, QgsRasterLayer,
                       QgsRasterShader, QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer, Qgis)
from qgis.PyQt.QtGui import QColor

LOG_TAG = "TerraMind"

# ESRI 10 m land cover as TerraMind v1 encodes it (index → colour of IBM's plotting_utils, name).
LULC_CLASSES = [
    (0, "#000000", "No data"),
    (1, "#3171AD", "Water"),
    (2, "#469C76", "Trees"),
    (3, "#83CA70", "Flooded vegetation"),
    (4, "#EAE159", "Crops"),
    (5, "#C07CB8", "Built area"),
    (6, "#C19368", "Bare ground"),
    (7, "#6FB2E4", "Snow/ice"),
    (8, "#F1F1F1", "Clouds"),
    (9, "#C66526", "Rangeland"),
]
NDVI_RAMP = [(-1.0, "#8c510a"), (0.0, "#f6e8c3"), (0.2, "#d9ef8b"), (0.5, "#66bd63"), (1.0, "#006837")]
DEM_RAMP = ["#0b6e4f", "#6ba368", "#e9d985", "#b5793f", "#7a5230", "#ffffff"]
# 1-based (red, green, blue) band numbers and the display range of raw values, per optical modality.
TRUE_COLOUR = {"S2L2A": ((4, 3, 2), (0.0, 3000.0)), "S2L1C": ((4, 3, 2), (1000.0, 4000.0)),
               "RGB": ((1, 2, 3), (0.0, 255.0))}
SAR_DB_RANGE = (-25.0, 0.0)


def add_output_layers(result: Dict, group_name: str, project: Optional[QgsProject] = None) -> List[QgsRasterLayer]:
    """Load every output of a job result into ``project`` under a new top group ``group_name``.

    Returns the layers added, in output order. An output that cannot be opened is reported in
    the TerraMind log and skipped; the others are still added. Main thread only; a task can do
    the slow part (``load_output_layers``) in its worker thread and call ``add_layers`` after.
    """
    return add_layers(load_output_layers(result), group_name, project)


def load_output_layers(result: Dict) -> List[QgsRasterLayer]:
    """Open and style the outputs (any thread: the first GDAL open can take tens of ms). Layers
    made off the main thread are handed over to it, so the project can take them."""
    from qgis.PyQt.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    layers: List[QgsRasterLayer] = []
    for output in result.get("outputs") or []:
        path = output.get("path", "")
        name = output.get("name") or os.path.splitext(os.path.basename(path))[0]
        layer = QgsRasterLayer(path, name, "gdal")
        if not layer.isValid():
            QgsMessageLog.logMessage(f"Could not open output {name}: {path}", LOG_TAG, Qgis.Warning)
            continue
        apply_style(layer, output)
        if app is not None and QThread.currentThread() != app.thread():
            layer.moveToThread(app.thread())
        layers.append(layer)
    return layers


def add_layers(layers: List[QgsRasterLayer], group_name: str,
               project: Optional[QgsProject] = None) -> List[QgsRasterLayer]:
    """Add ready layers to ``project`` under a new top group (main thread)."""
    project = project or QgsProject.instance()
    layers = [layer for layer in layers if layer.isValid()]
    if not layers:
        return layers
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer)
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
    style_layer(layer, output.get("name") or output.get("kind") or "")


def style_layer(layer: QgsRasterLayer, name: str) -> None:
    """Built-in renderer for an output by modality name (LULC, NDVI, DEM, S1GRD/S1RTC, S2L2A…) or kind."""
    key = (name or "").upper()
    provider = layer.dataProvider()
    if key == "LULC":
        classes = [QgsPalettedRasterRenderer.Class(v, QColor(c), label) for v, c, label in LULC_CLASSES]
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
