"""Give the layers the toolbox loads after a run the engine's sidecar .qml style.

Processing loads result layers without their default style, then calls the post-processor of each
layer's ``LayerDetails`` on the main thread; ours applies the .qml the engine wrote beside the file and,
for a DEM with the plugin's ``dem_hillshade`` setting on, adds its hillshade below it (as dialog jobs do).
"""
from __future__ import annotations

from collections import deque

from qgis.core import QgsProcessingLayerPostProcessorInterface

# LayerDetails takes ownership on the C++ side, but a Python subclass must also stay referenced on
# the Python side until the toolbox has called it (PyQGIS otherwise collects it early).
_ALIVE = deque(maxlen=256)


class SidecarStyle(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, qml: str, hillshade: bool = False):
        super().__init__()
        self.qml = qml
        self.hillshade = hillshade

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        message, ok = layer.loadNamedStyle(self.qml)
        if not ok:
            feedback.reportError(f"Could not apply style {self.qml} to {layer.name()}: {message}", False)
            return
        layer.triggerRepaint()
        project = context.project()
        if self.hillshade and project is not None:
            from ..layers import add_hillshade_below

            if add_hillshade_below(layer, project) is None:
                feedback.reportError(f"Could not add a hillshade for {layer.name()}", False)


def attach_style(context, layer_key: str, qml: str, hillshade: bool = False) -> None:
    """Apply ``qml`` to the layer ``layer_key`` when Processing loads it into the project (and add its
    hillshade below it when ``hillshade``)."""
    details = context.layerToLoadOnCompletionDetails(layer_key)
    processor = SidecarStyle(qml, hillshade)
    _ALIVE.append(processor)
    details.setPostProcessor(processor)
