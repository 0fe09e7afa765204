"""Training labels as GIS users have them: a polygon layer with a class field, or a class raster.

``read_labels`` (main thread) checks the layer before any work, takes the class names and colours from its
legend (a categorized renderer on the class field; a paletted raster renderer) and snapshots what the backend
must read. ``LabelsSnapshot.write`` (any thread) then puts it in a file: polygons always go to a small temporary
GeoPackage holding only the class field (so unsaved memory layers, edits, filters and multi-layer files all take
one road), a raster is used in place when it is a plain GDAL file and copied to a GeoTIFF otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from qgis.core import (Qgis, QgsCategorizedSymbolRenderer, QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsFeatureRequest, QgsFields, QgsMapLayer, QgsPalettedRasterRenderer, QgsProject,
                       QgsProviderRegistry, QgsRasterFileWriter, QgsRasterLayer, QgsRasterPipe, QgsVectorFileWriter,
                       QgsVectorLayer, QgsVectorLayerFeatureSource, QgsWkbTypes)
from qgis.PyQt.QtCore import QVariant

# Colours for classes the layer's legend does not colour (ColorBrewer Set1 + Dark2: distinct on a map).
DEFAULT_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf",
                   "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
INTEGER_TYPES = (QVariant.Int, QVariant.UInt, QVariant.LongLong, QVariant.ULongLong)
TEXT_TYPES = (QVariant.String,)
FLOAT_TYPES = (Qgis.Float32, Qgis.Float64, Qgis.CFloat32, Qgis.CFloat64)
# Reading every pixel for the codes of a raster without a palette is only done below this size; larger
# rasters keep their classes unknown here and the backend finds the codes while it reads the labels.
MAX_SCANNED_PIXELS = 4096 * 4096
LABELS_LAYER_NAME = "labels"


class LabelsError(ValueError):
    """The labels cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class LabelClass:
    value: Any          # the field value (int or str) or raster code (int)
    name: str
    color: str          # "#rrggbb"

    def to_json(self) -> dict:
        return {"value": self.value, "name": self.name, "color": self.color}


@dataclass
class LabelsSnapshot:
    """What the backend needs from a labels layer, captured on the main thread; ``write`` is thread-safe."""

    kind: str                               # "polygons" | "raster"
    layer_name: str
    field: Optional[str]
    classes: list                           # [LabelClass]; empty when a large raster's codes are unknown here
    crs_wkt: str
    path: Optional[str] = None              # a raster read in place
    _source: Any = None                     # polygons: QgsVectorLayerFeatureSource; raster: a provider clone
    _fields: Any = None
    _wkb_type: Any = None
    _crs: Any = None
    _extent: Any = None
    _size: tuple = (0, 0)

    def write(self, folder: str, feedback=None) -> str:
        """The labels as a file the backend reads: ``path`` when usable in place, else a new file in ``folder``."""
        if self.path:
            return self.path
        os.makedirs(folder, exist_ok=True)
        if self.kind == "polygons":
            return _write_polygons(self, os.path.join(folder, "labels.gpkg"), feedback)
        return _write_raster(self, os.path.join(folder, "labels.tif"))

    def jobspec(self, path: str) -> dict:
        """The JobSpec ``labels`` object for the written file."""
        spec = {"path": path}
        if self.field:
            spec["field"] = self.field
        if self.classes:
            spec["classes"] = [c.to_json() for c in self.classes]
        return spec


def _colour(index: int) -> str:
    return DEFAULT_COLOURS[index % len(DEFAULT_COLOURS)]


def _typed(value, numeric: bool):
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    if numeric:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if number.is_integer() else None
    text = str(value).strip()
    return text or None


def classes_from_legend(values: Iterable, legend: Iterable[tuple], numeric: bool, keep_absent: bool = False) -> list:
    """Classes in legend order (value, name, colour), then values the legend does not list, sorted, named by
    their value and coloured from ``DEFAULT_COLOURS``. Legend entries without a labelled value are dropped
    unless ``keep_absent`` (a raster's palette, whose values are not scanned). Empty values are never a class."""
    present = {v for v in (_typed(v, numeric) for v in values) if v is not None}
    classes, seen = [], set()
    for value, name, colour in legend:
        value = _typed(value, numeric)
        if value is None or value in seen or (value not in present and not keep_absent):
            continue
        seen.add(value)
        classes.append(LabelClass(value, (name or "").strip() or str(value), colour or _colour(len(classes))))
    rest = sorted(present - seen, key=lambda v: (str(type(v)), v))
    for value in rest:
        classes.append(LabelClass(value, str(value), _colour(len(classes))))
    return classes


def vector_classes(layer: QgsVectorLayer, field: str, values: Optional[Iterable] = None) -> list:
    """A polygon layer's classes: its categorized renderer's categories when it classifies ``field``, plus
    the field's other values. ``values`` (the field's distinct values) is read from the layer when None."""
    index = layer.fields().indexOf(field)
    numeric = layer.fields().at(index).type() in INTEGER_TYPES
    if values is None:
        values = layer.uniqueValues(index)
    renderer = layer.renderer()
    legend = []
    if isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == field:
        legend = [(c.value(), c.label(), c.symbol().color().name() if c.symbol() else None)
                  for c in renderer.categories()]
    return classes_from_legend(values, legend, numeric)


def raster_classes(layer: QgsRasterLayer) -> list:
    """A class raster's classes: the paletted renderer's (0 is a class only when the palette lists it);
    without one, the codes found in band 1 when the raster is small enough to scan (0 = unlabelled)."""
    renderer = layer.renderer()
    if isinstance(renderer, QgsPalettedRasterRenderer) and renderer.band() == 1:
        legend = [(c.value, c.label, c.color.name()) for c in renderer.classes()]
        return classes_from_legend((), legend, numeric=True, keep_absent=True)
    if layer.width() * layer.height() > MAX_SCANNED_PIXELS:
        return []
    key = _file_version(layer)
    if key is None or key not in _SCANNED:
        found = QgsPalettedRasterRenderer.classDataFromRaster(layer.dataProvider(), 1)
        codes = tuple(c.value for c in found if c.value != 0)
        if key is None:
            return classes_from_legend(codes, (), numeric=True)
        if len(_SCANNED) >= 16:
            _SCANNED.pop(next(iter(_SCANNED)))
        _SCANNED[key] = codes
    return classes_from_legend(_SCANNED[key], (), numeric=True)


# Codes found per raster file version: the dialog checks the labels on every change, a scan is done once.
_SCANNED: dict = {}


def _file_version(layer: QgsRasterLayer):
    path = _gdal_file(layer)
    try:
        return (path, os.path.getmtime(path), os.path.getsize(path)) if path else None
    except OSError:
        return None


def _check_overlap(layer: QgsMapLayer, inputs: Iterable[QgsMapLayer]) -> None:
    for raster in inputs:
        if raster is None:
            continue
        extent = layer.extent()
        if layer.crs() != raster.crs():
            try:
                extent = QgsCoordinateTransform(layer.crs(), raster.crs(), QgsProject.instance()) \
                    .transformBoundingBox(extent)
            except Exception:  # noqa: BLE001 (QgsCsException: the labels are outside the input's CRS)
                extent = None
        if extent is None or not extent.intersects(raster.extent()):
            raise LabelsError(f"The labels in '{layer.name()}' do not overlap the input '{raster.name()}': "
                              "draw them on the area the inputs cover.")


def _check_classes(layer: QgsMapLayer, classes: list, known: bool) -> None:
    if known and len(classes) < 2:
        found = f"only the class '{classes[0].name}'" if classes else "no class values"
        raise LabelsError(f"'{layer.name()}' has {found}: training needs labels of at least two classes.")


def read_labels(layer: Optional[QgsMapLayer], field: Optional[str] = None, inputs: Iterable = (),
                snapshot: bool = True) -> LabelsSnapshot:
    """Check ``layer`` as training labels for ``inputs`` (raster layers) and snapshot it; main thread.
    Raises ``LabelsError`` with a message for the user when the labels cannot be used. ``snapshot=False``
    only checks (a memory layer's snapshot copies its features; the dialog checks on every change)."""
    if layer is None or not layer.isValid():
        raise LabelsError("Choose the layer with your training labels (polygons with a class field, or a class "
                          "raster).")
    if isinstance(layer, QgsVectorLayer):
        result = _read_polygons(layer, field, snapshot)
    elif isinstance(layer, QgsRasterLayer):
        result = _read_raster(layer, snapshot)
    else:
        raise LabelsError(f"'{layer.name()}' is neither a vector nor a raster layer.")
    _check_overlap(layer, inputs)
    return result


def _read_polygons(layer: QgsVectorLayer, field: Optional[str], snapshot: bool = True) -> LabelsSnapshot:
    if layer.geometryType() != QgsWkbTypes.PolygonGeometry:
        raise LabelsError(f"'{layer.name()}' holds {QgsWkbTypes.geometryDisplayString(layer.geometryType()).lower()}"
                          " features: training labels are polygons (or a class raster).")
    if not field:
        raise LabelsError(f"Choose the field of '{layer.name()}' that holds the class of each polygon.")
    index = layer.fields().indexOf(field)
    if index < 0:
        raise LabelsError(f"'{layer.name()}' has no field '{field}'.")
    kind = layer.fields().at(index).type()
    if kind not in INTEGER_TYPES + TEXT_TYPES:
        raise LabelsError(f"The class field '{field}' is a {layer.fields().at(index).typeName()} field: use an "
                          "integer or text field.")
    if layer.featureCount() == 0:
        raise LabelsError(f"'{layer.name()}' has no polygons yet: draw some training areas first.")
    classes = vector_classes(layer, field)
    _check_classes(layer, classes, known=True)
    fields = QgsFields()
    fields.append(layer.fields().at(index))
    return LabelsSnapshot(kind="polygons", layer_name=layer.name(), field=field, classes=classes,
                          crs_wkt=layer.crs().toWkt(), _source=QgsVectorLayerFeatureSource(layer) if snapshot else None,
                          _fields=fields,
                          _wkb_type=QgsWkbTypes.multiType(layer.wkbType()), _crs=layer.crs())


def _read_raster(layer: QgsRasterLayer, snapshot: bool = True) -> LabelsSnapshot:
    provider = layer.dataProvider()
    if provider.dataType(1) in FLOAT_TYPES and not isinstance(layer.renderer(), QgsPalettedRasterRenderer):
        raise LabelsError(f"'{layer.name()}' holds decimal values: class labels are integer codes (a classified "
                          "raster, e.g. 1 = water, 2 = forest).")
    classes = raster_classes(layer)
    _check_classes(layer, classes, known=bool(classes) or layer.width() * layer.height() <= MAX_SCANNED_PIXELS)
    path = _gdal_file(layer)
    return LabelsSnapshot(kind="raster", layer_name=layer.name(), field=None, classes=classes,
                          crs_wkt=layer.crs().toWkt(), path=path,
                          _source=provider.clone() if snapshot and not path else None, _crs=layer.crs(),
                          _extent=layer.extent(),
                          _size=(layer.width(), layer.height()))


def _gdal_file(layer: QgsRasterLayer) -> Optional[str]:
    """The file behind a GDAL raster layer, when the backend can open it as it is (not /vsimem/, not a
    subdataset or a layer with GDAL open options)."""
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or ""
    if parts.get("layerName") or parts.get("openOptions") or not os.path.isfile(path):
        return None
    return path


def _write_polygons(snapshot: LabelsSnapshot, path: str, feedback=None) -> str:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = LABELS_LAYER_NAME
    writer = QgsVectorFileWriter.create(path, snapshot._fields, snapshot._wkb_type, snapshot._crs,
                                        QgsCoordinateTransformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.NoError:
        message = writer.errorMessage()
        del writer
        raise LabelsError(f"Could not write the labels to {path}: {message}")
    request = QgsFeatureRequest().setSubsetOfAttributes([snapshot.field], snapshot._source.fields())
    written = 0
    for feature in snapshot._source.getFeatures(request):
        if feedback is not None and feedback.isCanceled():
            break
        if not feature.hasGeometry():
            continue
        out = feature.__class__(snapshot._fields)
        out.setGeometry(feature.geometry())
        out.setAttribute(0, feature[snapshot.field])
        writer.addFeature(out)
        written += 1
    del writer  # closes the file
    if written == 0:
        raise LabelsError(f"'{snapshot.layer_name}' has no polygon with a geometry.")
    return path


def _write_raster(snapshot: LabelsSnapshot, path: str) -> str:
    pipe = QgsRasterPipe()
    if not pipe.set(snapshot._source):
        raise LabelsError(f"Could not read the raster '{snapshot.layer_name}'.")
    width, height = snapshot._size
    error = QgsRasterFileWriter(path).writeRaster(pipe, width, height, snapshot._extent, snapshot._crs,
                                                  QgsCoordinateTransformContext())
    if error != QgsRasterFileWriter.NoError:
        raise LabelsError(f"Could not copy the raster '{snapshot.layer_name}' to {path} (error {error}).")
    return path
