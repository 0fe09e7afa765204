"""Training labels from QGIS layers (real headless QGIS, TerraMesh samples): classes from the legend, checks
before any work, and the files the backend reads (memory layers exported, GDAL rasters used in place)."""
from __future__ import annotations

import pytest
from osgeo import gdal, ogr
from qgis.core import (QgsCategorizedSymbolRenderer, QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                       QgsFeature, QgsGeometry, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer,
                       QgsRectangle, QgsRendererCategory, QgsSymbol, QgsVectorLayer, QgsWkbTypes)
from qgis.PyQt.QtGui import QColor

from tests.conftest import sample
from terramind_qgis.finetune.labels import DEFAULT_COLOURS, LabelClass, LabelsError, read_labels

gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")


def owned(layer):
    """Give ``layer`` to the project: a layer Python still owns when QGIS exits crashes the interpreter."""
    QgsProject.instance().addMapLayer(layer, False)
    return layer


@pytest.fixture
def scene(qgis_app, qgis_new_project):
    layer = owned(QgsRasterLayer(str(sample("S2L2A")), "scene"))
    assert layer.isValid()
    return layer


def polygons(scene_layer, rows, field_type="integer", crs=None, geometry="Polygon"):
    """A memory layer with one square per (class value, column) in ``rows``, inside ``scene_layer``, in ``crs``."""
    crs = crs or scene_layer.crs()
    layer = owned(QgsVectorLayer(f"{geometry}?crs={crs.authid()}&field=cls:{field_type}&field=note:string",
                                 "drawn", "memory"))
    extent = scene_layer.extent()
    to_layer = QgsCoordinateTransform(scene_layer.crs(), crs, QgsProject.instance())
    size = extent.width() / 8
    features = []
    for i, value in enumerate(rows):
        x0 = extent.xMinimum() + size * (1 + 2 * (i % 3))
        y0 = extent.yMinimum() + size * (1 + 2 * (i // 3))
        geometry_ = QgsGeometry.fromRect(QgsRectangle(x0, y0, x0 + size, y0 + size))
        if layer.geometryType() == QgsWkbTypes.PointGeometry:
            geometry_ = geometry_.centroid()
        geometry_.transform(to_layer)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry_)
        feature.setAttributes([value, "x"])
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    return layer


def categorize(layer, categories):
    cats = []
    for value, label, colour in categories:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        cats.append(QgsRendererCategory(value, symbol, label))
    layer.setRenderer(QgsCategorizedSymbolRenderer("cls", cats))


def test_categorized_memory_polygons_give_legend_classes_and_a_geopackage(scene, tmp_path):
    layer = polygons(scene, [1, 2, 1, 3])
    categorize(layer, [(2, "Forest", "#1a7a3a"), (1, "Water", "#3171ad")])   # 3 is not in the legend
    snapshot = read_labels(layer, "cls", [scene])
    assert snapshot.classes == [LabelClass(2, "Forest", "#1a7a3a"), LabelClass(1, "Water", "#3171ad"),
                                LabelClass(3, "3", DEFAULT_COLOURS[2])]
    path = snapshot.write(str(tmp_path))
    assert path.endswith(".gpkg")
    dataset = ogr.Open(path)
    assert dataset.GetLayerCount() == 1
    written = dataset.GetLayer(0)
    assert [written.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(written.GetLayerDefn().GetFieldCount())] \
        == ["cls"]   # only the class field
    assert sorted(f.GetField("cls") for f in written) == [1, 1, 2, 3]
    spec = snapshot.jobspec(path)
    assert spec == {"path": path, "field": "cls", "classes": [
        {"value": 2, "name": "Forest", "color": "#1a7a3a"}, {"value": 1, "name": "Water", "color": "#3171ad"},
        {"value": 3, "name": "3", "color": DEFAULT_COLOURS[2]}]}


def test_text_field_in_another_crs(scene, tmp_path):
    layer = polygons(scene, ["crops", "urban", "crops"], "string", QgsCoordinateReferenceSystem("EPSG:4326"))
    snapshot = read_labels(layer, "cls", [scene])
    assert [c.value for c in snapshot.classes] == ["crops", "urban"]   # no legend: sorted values
    path = snapshot.write(str(tmp_path))
    dataset = ogr.Open(path)   # keep the dataset referenced while its layer is used
    written = dataset.GetLayer(0)
    assert written.GetSpatialRef().GetAuthorityCode(None) == "4326"
    assert sorted(f.GetField("cls") for f in written) == ["crops", "crops", "urban"]


@pytest.mark.parametrize("case, message", [
    ("none", "Choose the layer"),
    ("points", "training labels are polygons"),
    ("no_field", "Choose the field"),
    ("missing_field", "has no field 'nope'"),
    ("one_class", "only the class '1'"),
    ("empty", "has no polygons yet"),
    ("elsewhere", "do not overlap the input 'scene'"),
    ("float_field", "use an integer or text field"),
])
def test_bad_labels_are_refused_with_a_message(scene, case, message):
    layer, field = polygons(scene, [1, 2]), "cls"
    if case == "none":
        layer = None
    elif case == "points":
        layer = polygons(scene, [1, 2], geometry="Point")
    elif case == "no_field":
        field = ""
    elif case == "missing_field":
        field = "nope"
    elif case == "one_class":
        layer = polygons(scene, [1, 1])
    elif case == "empty":
        layer = polygons(scene, [])
    elif case == "elsewhere":
        layer = owned(QgsVectorLayer("Polygon?crs=EPSG:4326&field=cls:integer", "far", "memory"))
        for value, x in ((1, 10.0), (2, 11.0)):
            feature = QgsFeature(layer.fields())
            feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x, 45.0, x + 0.5, 45.5)))
            feature.setAttributes([value])
            layer.dataProvider().addFeature(feature)
        layer.updateExtents()
    elif case == "float_field":
        layer = polygons(scene, [1.5, 2.5], "double")
    with pytest.raises(LabelsError, match=message):
        read_labels(layer, field, [scene])


def test_class_raster_used_in_place_with_its_palette(scene, qgis_app):
    layer = owned(QgsRasterLayer(str(sample("LULC")), "lulc"))
    assert layer.isValid()
    palette = [QgsPalettedRasterRenderer.Class(1, QColor("#3171ad"), "Water"),
               QgsPalettedRasterRenderer.Class(2, QColor("#469c76"), "Trees"),
               QgsPalettedRasterRenderer.Class(5, QColor("#c07cb8"), "Built")]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, palette))
    snapshot = read_labels(layer, None, [scene])
    assert [(c.value, c.name, c.color) for c in snapshot.classes] == \
        [(1, "Water", "#3171ad"), (2, "Trees", "#469c76"), (5, "Built", "#c07cb8")]
    assert snapshot.write("/nonexistent") == str(sample("LULC"))   # read in place, nothing written
    assert snapshot.jobspec(snapshot.path) == {"path": str(sample("LULC")), "classes": [
        {"value": 1, "name": "Water", "color": "#3171ad"}, {"value": 2, "name": "Trees", "color": "#469c76"},
        {"value": 5, "name": "Built", "color": "#c07cb8"}]}


def test_class_raster_without_palette_scans_codes_without_zero(scene):
    layer = owned(QgsRasterLayer(str(sample("LULC")), "lulc"))
    codes = set(gdal.Open(str(sample("LULC"))).ReadAsArray().ravel().tolist()) - {0}
    snapshot = read_labels(layer, None, [scene])
    assert [c.value for c in snapshot.classes] == sorted(codes)


def test_float_raster_is_refused(scene):
    with pytest.raises(LabelsError, match="decimal values"):
        read_labels(owned(QgsRasterLayer(str(sample("NDVI")), "ndvi")), None, [scene])


def test_non_file_raster_is_copied_to_a_geotiff(scene, tmp_path):
    source = gdal.Open(str(sample("LULC")))
    gdal.Translate("/vsimem/labels_in_memory.tif", source)
    layer = owned(QgsRasterLayer("/vsimem/labels_in_memory.tif", "in memory"))
    assert layer.isValid()
    snapshot = read_labels(layer, None, [scene])
    assert snapshot.path is None
    path = snapshot.write(str(tmp_path))
    copied = gdal.Open(path)
    assert (copied.ReadAsArray() == source.ReadAsArray()).all()
    assert copied.GetGeoTransform() == pytest.approx(source.GetGeoTransform())
    del snapshot                                       # its provider clone reads the in-memory file
    QgsProject.instance().removeMapLayer(layer.id())
    gdal.Unlink("/vsimem/labels_in_memory.tif")
