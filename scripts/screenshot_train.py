"""Train a model in the TerraMind dialog's "Train a model" mode and save docs/images/dialog-train.png.

A real run: the TerraMesh S2L2A tile as input, its LULC map turned into polygons in an unsaved memory layer
(categorized by class, as a user's labels would be), trained by the backend in .venv-backend on the weights in
$HF_HUB_CACHE (the fake hub's random weights in a development checkout), so the curve and scores are whatever
that run gives. Run on a real X screen:
    HF_HUB_CACHE=$PWD/.cache/fake-hub HF_HUB_OFFLINE=1 TERRAMIND_BACKEND_PYTHON=$PWD/.venv-backend/bin/python \\
    xvfb-run -a -s "-screen 0 1400x1100x24" .venv-qgis/bin/python scripts/screenshot_train.py [out.png] [epochs]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from screenshot_session import REPO, SAMPLES, CanvasIface, exit_now, settle, start_qgis

PLACE = "433D_629L_3_1"
# TerraMind v1 LULC codes as the labels' legend (names and colours a user would give them).
LEGEND = {1: ("Water", "#3171ad"), 2: ("Trees", "#469c76"), 4: ("Crops", "#eae159"), 5: ("Built area", "#c07cb8"),
          6: ("Bare ground", "#c19368"), 9: ("Rangeland", "#c66526")}


def polygons_from(raster, app):
    """The LULC raster as polygons with a 'cls' field in a memory layer, categorized by class."""
    from osgeo import gdal, ogr, osr
    from qgis.core import (QgsCategorizedSymbolRenderer, QgsRendererCategory, QgsSymbol, QgsVectorLayer)
    from qgis.PyQt.QtGui import QColor

    source = gdal.Open(str(raster))
    srs = osr.SpatialReference(wkt=source.GetProjection())
    memory = ogr.GetDriverByName("Memory").CreateDataSource("labels")
    polygons = memory.CreateLayer("labels", srs, ogr.wkbPolygon)
    polygons.CreateField(ogr.FieldDefn("cls", ogr.OFTInteger))
    gdal.Polygonize(source.GetRasterBand(1), None, polygons, 0)
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:{srs.GetAuthorityCode(None)}&field=cls:integer",
                           "training polygons (unsaved)", "memory")
    from qgis.core import QgsFeature, QgsGeometry
    features = []
    for feature in polygons:
        value = feature.GetField("cls")
        if value not in LEGEND:
            continue
        out = QgsFeature(layer.fields())
        out.setGeometry(QgsGeometry.fromWkt(feature.GetGeometryRef().ExportToWkt()))
        out.setAttributes([value])
        features.append(out)
    layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    categories = []
    for value, (name, colour) in LEGEND.items():
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        categories.append(QgsRendererCategory(value, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer("cls", categories))
    return layer


def main(out: Path, epochs: int) -> None:
    app = start_qgis()
    from qgis.core import QgsProject, QgsRasterLayer

    scene = QgsRasterLayer(str(SAMPLES / "S2L2A" / f"{PLACE}.tif"), "Sentinel-2 L2A")
    assert scene.isValid()
    QgsProject.instance().addMapLayer(scene)
    labels = polygons_from(SAMPLES / "LULC" / f"{PLACE}.tif", app)
    QgsProject.instance().addMapLayer(labels)

    from terramind_qgis.dialog import TerraMindDialog

    folder = Path(tempfile.mkdtemp(prefix="terramind-train-shot-"))
    dialog = TerraMindDialog(CanvasIface(scene))
    dialog.input_list.rows[0].set_layer(scene)
    dialog.train_radio.setChecked(True)
    dialog.size_combo.setCurrentIndex(dialog.size_combo.findData("tiny"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    panel = dialog.train_panel
    panel.iface = None
    panel.labels_combo.setLayer(labels)
    panel.epochs_spin.setValue(epochs)
    panel.chip_spin.setValue(64)
    panel.batch_spin.setValue(8)
    panel.decoder_combo.setCurrentIndex(panel.decoder_combo.findData("FCNDecoder"))
    panel.checkpoint_widget.setFilePath(str(folder / "land_cover.ckpt"))
    dialog.resize(1380, 1000)
    dialog.show()
    settle(app)
    problems = dialog.refresh()
    assert not problems, problems
    dialog.run()
    started = time.monotonic()
    while panel.task is not None and time.monotonic() - started < 1800:
        app.processEvents()
        time.sleep(0.05)
    settle(app)
    dialog.refresh()
    app.processEvents()
    dialog.grab().save(str(out))
    print(f"saved {out}; {panel.status_label.text()}")
    exit_now()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images" / "dialog-train.png",
         int(sys.argv[2]) if len(sys.argv) > 2 else 8)
