"""Section 4 of the TerraMind dialog, "Area and pixel grid": extent or clip polygons, target CRS and pixel size.

The section follows the first input (its extent and pixel size are the defaults) and holds the checks that need
QGIS geometry: the processed area in the target CRS, and whether it overlaps the inputs.
"""
from __future__ import annotations

import json
from typing import Callable

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry, QgsMapLayerProxyModel,
                       QgsProject, QgsRectangle, QgsUnitTypes, QgsWkbTypes)
from qgis.gui import QgsDoubleSpinBox, QgsExtentGroupBox, QgsMapLayerComboBox, QgsProjectionSelectionWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout

from ..jobspec_builder import JobChoices, Problem
from ..layer_sources import crs_string
from .messages import MessageLabel
from .section_box import SectionBox


class AreaSection(SectionBox):
    """Where and on which grid the job runs; ``first_layer()`` gives the first input layer (or None)."""

    changed = pyqtSignal()   # the area or the grid changed: the job needs checking again

    def __init__(self, iface, first_layer: Callable, parent=None):
        super().__init__("4 · Area and pixel grid", parent)
        self._iface = iface
        self._first_layer = first_layer
        self._resolution_touched = False   # the user set the pixel size: new inputs no longer change it
        self._following_input = False      # the pixel size is being set from the first input, not by the user
        self._polygon_cache = (None, (None, None, None))
        self.extent_box = QgsExtentGroupBox()
        self.extent_box.setObjectName("extent")
        self.extent_box.setTitleBase("Limit to an extent")
        self.extent_box.setCheckable(True)
        self.extent_box.setChecked(False)
        self.extent_box.setCollapsed(True)
        self.extent_box.setToolTip("Unchecked: the whole first input. Checked: the canvas, a layer's extent "
                                   "or a rectangle you draw")
        if iface is not None and iface.mapCanvas() is not None:
            self.extent_box.setMapCanvas(iface.mapCanvas())
        self.body.addWidget(self.extent_box)
        self.extent_error = MessageLabel("error")
        self.body.addWidget(self.extent_error)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.polygon_combo = QgsMapLayerComboBox()
        self.polygon_combo.setObjectName("polygon")
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        self.polygon_combo.setLayer(None)
        self.polygon_combo.setToolTip("Optional: only process inside these polygons (selected features if any "
                                      "are selected, else all)")
        self.crs_widget = QgsProjectionSelectionWidget()
        self.crs_widget.setObjectName("crs")
        self.crs_widget.setOptionVisible(QgsProjectionSelectionWidget.CrsNotSet, True)
        self.crs_widget.setNotSetText("Same as the first input")
        self.crs_widget.setCrs(QgsCoordinateReferenceSystem())
        self.crs_widget.setToolTip("The CRS of the outputs; inputs are reprojected onto it")
        self.resolution_spin = QgsDoubleSpinBox()
        self.resolution_spin.setObjectName("resolution")
        self.resolution_spin.setRange(0.0, 1e7)
        self.resolution_spin.setDecimals(2)
        self.resolution_spin.setValue(10.0)
        self.resolution_spin.setClearValue(10.0)
        self.resolution_spin.setToolTip("Output pixel size in the target CRS's units. TerraMind was trained on "
                                        "10 m Sentinel pixels")
        form.addRow("Clip to polygons", self.polygon_combo)
        form.addRow("Target CRS", self.crs_widget)
        form.addRow("Pixel size", self.resolution_spin)
        self.body.addLayout(form)
        self.grid_error = MessageLabel("error")
        self.grid_hint = MessageLabel("warning")
        self.body.addWidget(self.grid_error)
        self.body.addWidget(self.grid_hint)

    def connect_changes(self) -> None:
        """Report changes from now on (the dialog calls it once its remembered choices are restored)."""
        self.extent_box.extentChanged.connect(self.changed)
        self.extent_box.toggled.connect(self.changed)
        self.polygon_combo.layerChanged.connect(self.changed)
        self.crs_widget.crsChanged.connect(self._crs_changed)
        self.resolution_spin.valueChanged.connect(self._resolution_edited)

    def _resolution_edited(self, *_) -> None:
        if not self._following_input:
            self._resolution_touched = True
        self.changed.emit()

    def _crs_changed(self, *_) -> None:
        self._resolution_touched = False
        self.extent_box.setOutputCrs(self.target_crs())   # reprojects a chosen extent into the new CRS
        self.changed.emit()

    def follow_first_input(self) -> None:
        """The first input decides the default area and pixel size."""
        first = self._first_layer()
        if first is None:
            return
        self.extent_box.setOriginalExtent(first.extent(), first.crs())
        canvas = self._iface.mapCanvas() if self._iface is not None else None
        if canvas is not None:
            self.extent_box.setCurrentExtent(canvas.extent(), canvas.mapSettings().destinationCrs())
        else:
            self.extent_box.setCurrentExtent(first.extent(), first.crs())
        self.extent_box.setOutputCrs(self.target_crs())
        if not self._resolution_touched and not self.crs_widget.crs().isValid():
            self._following_input = True
            self.resolution_spin.setValue(first.rasterUnitsPerPixelX())
            self._following_input = False

    # -- values -----------------------------------------------------------------------------------
    def target_crs(self) -> QgsCoordinateReferenceSystem:
        """The chosen CRS, else the first input's, else the project's."""
        crs = self.crs_widget.crs()
        if crs.isValid():
            return crs
        first = self._first_layer()
        return first.crs() if first is not None else QgsProject.instance().crs()

    def clip_polygon(self):
        """(GeoJSON geometry, CRS, bounding box) of the clip polygons ({} and an empty box when the layer has
        none), or (None, None, None) without a layer. The union is cached per layer and selection, since checks
        run on every widget change."""
        layer = self.polygon_combo.currentLayer()
        if layer is None:
            return None, None, None
        selected = tuple(sorted(layer.selectedFeatureIds()))
        key = (layer.id(), selected, layer.featureCount(), layer.crs().toWkt())
        if self._polygon_cache[0] != key:
            features = layer.getSelectedFeatures() if selected else layer.getFeatures()
            geometries = [f.geometry() for f in features if f.hasGeometry()]
            geometry = QgsGeometry.unaryUnion(geometries) if geometries else QgsGeometry()
            usable = not (geometry.isNull() or geometry.isEmpty()) and \
                geometry.type() == QgsWkbTypes.PolygonGeometry
            self._polygon_cache = (key, (json.loads(geometry.asJson()) if usable else {}, crs_string(layer.crs()),
                                         geometry.boundingBox() if usable else QgsRectangle()))
        return self._polygon_cache[1]

    def fill_extent(self, choices: JobChoices) -> None:
        """The clip polygons if a layer is chosen, else the extent if limited to one; else the whole first input."""
        polygon, crs, _ = self.clip_polygon()
        if polygon is not None:
            choices.extent_polygon, choices.extent_crs = polygon, crs
        elif self.extent_box.isChecked():
            rect = self.extent_box.outputExtent()
            choices.extent_bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            choices.extent_crs = crs_string(self.extent_box.outputCrs())

    # -- checks -----------------------------------------------------------------------------------
    def area_in_target(self, choices: JobChoices) -> QgsRectangle | None:
        """The processed area in the target CRS: the chosen extent or polygon, else the first input."""
        target = self.target_crs()
        if choices.extent_polygon:
            rect = self.clip_polygon()[2]
            source = QgsCoordinateReferenceSystem(choices.extent_crs)
        elif choices.extent_bounds is not None:
            rect = QgsRectangle(*choices.extent_bounds)
            source = QgsCoordinateReferenceSystem(choices.extent_crs)
        else:
            first = self._first_layer()
            if first is None:
                return None
            rect, source = first.extent(), first.crs()
        if source.isValid() and target.isValid() and source != target:
            try:
                rect = QgsCoordinateTransform(source, target, QgsProject.instance()).transformBoundingBox(rect)
            except Exception:  # noqa: BLE001 (QgsCsException: area outside the target CRS)
                return None
        return rect

    def overlap_problems(self, choices: JobChoices, layers: list) -> list[Problem]:
        """A chosen area must overlap every input layer."""
        if not choices.inputs or (choices.extent_bounds is None and not choices.extent_polygon):
            return []
        area = self.area_in_target(choices)
        if area is None or area.isEmpty():
            return []
        target = self.target_crs()
        for layer in layers:
            extent = layer.extent()
            if layer.crs() != target:
                try:
                    extent = QgsCoordinateTransform(layer.crs(), target, QgsProject.instance()) \
                        .transformBoundingBox(extent)
                except Exception:  # noqa: BLE001 # nosec B112: no transform, no overlap check; the backend validates
                    continue
            if not extent.intersects(area):
                return [Problem("extent", f"The area does not overlap the input layer '{layer.name()}'")]
        return []

    def show_grid_hint(self, resolution: float) -> None:
        """Warn about a pixel size far from TerraMind's 10 m or a CRS in degrees; label the size in CRS units."""
        units = self.target_crs().mapUnits()
        grid_hint = None
        undecided = self._first_layer() is None and not self.crs_widget.crs().isValid()
        # no input and no CRS chosen yet: the project's CRS is nobody's choice, so neither its units nor a
        # warning mean anything; the pixel size waits (greyed, unitless) for the first input to set it
        self.resolution_spin.setEnabled(not undecided)
        if undecided:
            self.resolution_spin.setSuffix("")
            self.grid_hint.show_message(None)
            return
        if units == QgsUnitTypes.DistanceMeters and resolution > 0 and not 5 <= resolution <= 30:
            grid_hint = f"TerraMind was trained on 10 m pixels; {resolution:g} m may give poor results"
        elif units == QgsUnitTypes.DistanceDegrees:
            grid_hint = "The target CRS is in degrees: choose a projected CRS (e.g. UTM) for 10 m pixels"
        self.grid_hint.show_message(grid_hint)
        self.resolution_spin.setSuffix(f" {QgsUnitTypes.toAbbreviatedString(units)}")
        self.resolution_spin.setDecimals(8 if units == QgsUnitTypes.DistanceDegrees else 2)
