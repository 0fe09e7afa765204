"""Find similar places by clicking on a TerraMind embeddings layer (docs/similarity.md).

Click: a positive example. Shift-click: a negative example. Ctrl-click adds a vertex of a polygon
example, right-click closes it (the mean of the patches it covers). Every change sends one
`similarity` job to the warm backend (the engine streams the raster); its styled result replaces
the previous one right above the embeddings layer. Esc clears the examples. The embeddings are only
read; results are written to QGIS's temporary processing folder (Export → Save As to keep one).
With a threshold (the message bar's "Outline matches from"), the matching areas come as polygons too.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from qgis.core import (QgsApplication, QgsCoordinateTransform, QgsGeometry, QgsPointXY, QgsProcessingUtils,
                       QgsProject, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes)
from qgis.gui import QgsMapTool, QgsRubberBand, QgsVertexMarker
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from .similarity_job import embeddings_problem, layer_path, place_above, similarity_spec

POSITIVE_COLOUR, NEGATIVE_COLOUR = QColor("#00c853"), QColor("#d50000")


class SimilarityMapTool(QgsMapTool):
    """Examples in the embeddings layer's CRS; ``run()`` queues the job (one at a time, the latest wins)."""

    def __init__(self, canvas, embeddings: QgsRasterLayer, *, iface=None, project: Optional[QgsProject] = None,
                 task_factory: Optional[Callable] = None, on_result: Optional[Callable] = None):
        super().__init__(canvas)
        problem = embeddings_problem(embeddings)
        if problem:
            raise ValueError(problem)
        self.embeddings = embeddings
        self.iface = iface
        self.project = project or QgsProject.instance()
        self.task_factory = task_factory or _default_task
        self.on_result = on_result
        self.positives: List[Tuple[float, float]] = []
        self.negatives: List[Tuple[float, float]] = []
        self.polygons: List[str] = []
        self.vertices: List[QgsPointXY] = []      # the polygon being drawn, in map CRS
        self.result_layers: list = []
        self.task = None
        self.pending = False
        self.outcomes: list = []
        self.threshold: Optional[float] = None   # set: also outline the patches from this similarity up
        self._asked, self._asked_threshold = "", None
        self._markers: List[QgsVertexMarker] = []
        self._bands: List[QgsRubberBand] = []
        self._sketch: Optional[QgsRubberBand] = None
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- examples ---------------------------------------------------------------------------------
    def _to_layer(self, point: QgsPointXY) -> QgsPointXY:
        transform = QgsCoordinateTransform(self.canvas().mapSettings().destinationCrs(), self.embeddings.crs(),
                                           self.project)
        return transform.transform(point)

    def add_example(self, map_point: QgsPointXY, negative: bool = False, run: bool = True) -> None:
        """A click at ``map_point`` (canvas CRS): positive, or negative when ``negative``."""
        p = self._to_layer(map_point)
        (self.negatives if negative else self.positives).append((p.x(), p.y()))
        marker = QgsVertexMarker(self.canvas())
        marker.setCenter(map_point)
        marker.setColor(NEGATIVE_COLOUR if negative else POSITIVE_COLOUR)
        marker.setIconType(QgsVertexMarker.ICON_X if negative else QgsVertexMarker.ICON_CIRCLE)
        marker.setIconSize(12)
        marker.setPenWidth(3)
        self._markers.append(marker)
        if run:
            self.run()

    def add_polygon(self, map_points: List[QgsPointXY], run: bool = True) -> None:
        """A positive example area (canvas CRS vertices, at least three)."""
        if len(map_points) < 3:
            return
        geometry = QgsGeometry.fromPolygonXY([list(map_points) + [map_points[0]]])
        band = QgsRubberBand(self.canvas(), QgsWkbTypes.PolygonGeometry)
        band.setToGeometry(geometry, None)
        band.setStrokeColor(POSITIVE_COLOUR)
        band.setFillColor(QColor(0, 200, 83, 40))
        self._bands.append(band)
        layer_geometry = QgsGeometry(geometry)
        layer_geometry.transform(QgsCoordinateTransform(self.canvas().mapSettings().destinationCrs(),
                                                        self.embeddings.crs(), self.project))
        self.polygons.append(layer_geometry.asWkt())
        if run:
            self.run()

    def clear(self) -> None:
        """Forget the examples and their markers (the last result layer stays)."""
        self.positives, self.negatives, self.polygons, self.vertices = [], [], [], []
        for item in self._markers + self._bands + ([self._sketch] if self._sketch else []):
            self.canvas().scene().removeItem(item)
        self._markers, self._bands, self._sketch = [], [], None

    # -- mouse and keys ---------------------------------------------------------------------------
    def canvasReleaseEvent(self, event):  # noqa: N802 (QGIS's name)
        point = self.toMapCoordinates(event.pos())
        if event.button() == Qt.MouseButton.RightButton:
            if len(self.vertices) >= 3:
                vertices, self.vertices = self.vertices, []
                self._drop_sketch()
                self.add_polygon(vertices)
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.vertices.append(point)
            self._draw_sketch()
            return
        self.add_example(point, negative=bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))

    def keyPressEvent(self, event):  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.clear()
            event.accept()

    def deactivate(self):
        self.clear()
        super().deactivate()

    def _draw_sketch(self) -> None:
        if self._sketch is None:
            self._sketch = QgsRubberBand(self.canvas(), QgsWkbTypes.LineGeometry)
            self._sketch.setStrokeColor(POSITIVE_COLOUR)
        self._sketch.setToGeometry(QgsGeometry.fromPolylineXY(self.vertices), None)

    def _drop_sketch(self) -> None:
        if self._sketch is not None:
            self.canvas().scene().removeItem(self._sketch)
            self._sketch = None

    # -- the job ----------------------------------------------------------------------------------
    def set_threshold(self, threshold: Optional[float]) -> None:
        """Outline matching areas from ``threshold`` (0–1] up, or not (None); reruns the current examples."""
        self.threshold = threshold
        self.run()

    def spec(self) -> dict:
        out = QgsProcessingUtils.generateTempFilename("similarity.tif")
        areas = QgsProcessingUtils.generateTempFilename("matching_areas.gpkg") if self.threshold else None
        return similarity_spec(layer_path(self.embeddings), out, self.positives, self.negatives, self.polygons,
                               threshold=self.threshold, areas=areas)

    def run(self) -> None:
        """Send the current examples (negatives alone are not a query); one job at a time."""
        if not self.positives and not self.polygons:
            return
        if self.task is not None:
            self.pending = True  # rerun with every example once the running job ends
            return
        self.pending = False
        # clicks made while the job runs belong to the next one
        self._asked, self._asked_threshold = self._examples_text(), self.threshold
        name = f"Similar to {len(self.positives) + len(self.polygons)} example(s) in {self.embeddings.name()}"
        self.task = self.task_factory(name, self.spec(), self._finished, self.iface, self._place)
        QgsApplication.taskManager().addTask(self.task)

    def _place(self, layers) -> list:
        """The new result replaces the previous one, right above the embeddings (main thread)."""
        for old in self.result_layers:
            if self.project.mapLayer(old.id()) is not None:
                self.project.removeMapLayer(old.id())
        for layer in layers:  # say what the layer answers: the examples it was asked about
            if layer.name() == "similarity":
                layer.setName(f"Similar to {self.embeddings.name()} ({self._asked})")
            elif layer.name() == "areas":
                layer.setName(f"Matches ≥ {self._asked_threshold:g}")
        outlines_first = sorted(layers, key=lambda layer: not isinstance(layer, QgsVectorLayer))
        self.result_layers = place_above(outlines_first, self.embeddings, self.project)
        return self.result_layers

    def _examples_text(self) -> str:
        parts = [f"{len(self.positives)} point(s)"] if self.positives else []
        parts += [f"{len(self.polygons)} area(s)"] if self.polygons else []
        parts += [f"{len(self.negatives)} negative(s)"] if self.negatives else []
        return ", ".join(parts)

    def _finished(self, outcome) -> None:
        self.task = None
        self.outcomes.append(outcome)
        if self.on_result is not None:
            self.on_result(outcome)
        if self.pending:
            self.run()


def message_widget(tool: SimilarityMapTool):
    """The message-bar item shown while the tool is active: how to click, and the matching-areas switch."""
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QCheckBox, QDoubleSpinBox

    item = QgsMessageBar.createMessage(
        "TerraMind", f"Find similar in '{tool.embeddings.name()}': click = like this, Shift-click = not this, "
                     "Ctrl-click vertices then right-click = an area, Esc = start over.")
    check = QCheckBox("Outline matches from")
    spin = QDoubleSpinBox()
    spin.setRange(0.01, 1.0)
    spin.setSingleStep(0.05)
    spin.setValue(0.8)
    spin.setToolTip("Similarity (0–1) from which a patch counts as a match; matches are drawn as outlines")

    def changed(*_):
        tool.set_threshold(spin.value() if check.isChecked() else None)
    check.toggled.connect(changed)
    spin.valueChanged.connect(lambda _: check.isChecked() and changed())
    item.layout().addWidget(check)
    item.layout().addWidget(spin)
    item.threshold_check, item.threshold_spin = check, spin  # reachable for tests
    return item


def _default_task(name, spec, on_finished, iface, place):
    from .task import TerraMindTask

    return TerraMindTask(name, spec, on_finished, iface=iface, place_layers=place)
