"""The dialog's first minute on real headless QGIS (#18): an input preselected, same-named layers told apart,
no grid warning before the user chose anything, an unwritable folder reported before Run, visible colour chips."""
from __future__ import annotations

import os

import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer, QgsSettings
from qgis.PyQt.QtCore import QModelIndex
from qgis.PyQt.QtGui import QColor, QImage, QPainter, QTextDocument
from qgis.PyQt.QtWidgets import QStyleOptionViewItem

from tests.conftest import sample
from terramind_qgis.dialog import TerraMindDialog
from terramind_qgis.vocabulary import LULC_CLASSES
from terramind_qgis.widgets.colour_chip import CHIP_OUTLINE, colour_chip

gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")


def _add(modality, name=None) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(sample(modality)), name or modality)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def open_dialog(qgis_app, qgis_iface, qgis_new_project, qtbot):
    QgsSettings().remove("terramind")
    made = []

    def make():
        dlg = TerraMindDialog(qgis_iface)
        qtbot.addWidget(dlg)
        dlg.show()
        made.append(dlg)
        return dlg
    yield make
    for dlg in made:
        dlg.close()
    QgsSettings().remove("terramind")


def test_first_input_starts_from_the_active_raster_else_the_topmost(open_dialog, qgis_iface, monkeypatch):
    s2, s1 = _add("S2L2A"), _add("S1RTC")
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: s1)
    dlg = open_dialog()
    row = dlg.input_list.rows[0]
    assert row.layer().id() == s1.id() and row.modality() == "S1RTC"
    assert dlg.resolution_spin.value() == pytest.approx(s1.rasterUnitsPerPixelX())   # the grid followed it
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: None)
    topmost = QgsProject.instance().layerTreeRoot().findLayers()[0].layer()
    assert open_dialog().input_list.rows[0].layer().id() == topmost.id()


def test_no_raster_means_an_empty_row_and_no_grid_warning(open_dialog, qgis_iface, monkeypatch):
    QgsProject.instance().setCrs(QgsProject.instance().crs().fromEpsgId(4326))   # degrees: once warned at once
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: None)
    dlg = open_dialog()
    assert dlg.input_list.rows[0].layer() is None
    assert dlg.grid_hint.message() == ""
    # the pixel size waits, greyed and unitless, for the first input (not "10 deg" in the project's CRS)
    assert not dlg.resolution_spin.isEnabled() and dlg.resolution_spin.suffix() == ""
    dlg.crs_widget.setCrs(QgsProject.instance().crs().fromEpsgId(4326))   # the user chose degrees: now warn
    dlg.refresh()
    assert "degrees" in dlg.grid_hint.message()
    assert dlg.resolution_spin.isEnabled() and dlg.resolution_spin.suffix() == " deg"


def test_layers_with_the_same_name_show_their_source(open_dialog, qgis_iface, monkeypatch):
    a, b = _add("S2L2A", "scene"), _add("S1RTC", "scene")
    _add("DEM", "dem")
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: None)
    row = open_dialog().input_list.rows[0]
    combo = row.layer_combo
    delegate = combo.itemDelegate()
    shown = {}
    for i in range(combo.count()):
        option = QStyleOptionViewItem()
        index = combo.model().index(i, 0, QModelIndex())
        delegate.initStyleOption(option, index)
        if combo.layer(i) is not None:
            shown[combo.layer(i).id()] = option.text
    assert shown[a.id()] != shown[b.id()]
    assert os.path.basename(sample("S2L2A")) in shown[a.id()] and shown[a.id()].startswith("scene — ")
    assert [t for t in shown.values() if t.startswith("dem")] == ["dem"]   # a unique name stays as it is
    row.set_layer(b)
    assert os.path.basename(sample("S1RTC")) in row.guess_label.message()
    assert combo.toolTip() == b.source()


def test_an_unwritable_output_folder_is_reported_before_run(open_dialog, qgis_iface, monkeypatch, tmp_path):
    _add("S2L2A")
    monkeypatch.setattr(qgis_iface, "activeLayer", lambda: None)
    blocker = tmp_path / "a_file"
    blocker.write_text("")   # a folder cannot be made under a file, whoever runs the test (root included)
    dlg = open_dialog()
    dlg.output_checks["LULC"].setChecked(True)
    dlg.folder_radio.setChecked(True)
    dlg.folder_widget.setFilePath(str(blocker / "out"))
    dlg.refresh()
    assert "not writable" in dlg.output_error.message() and not dlg.run_button.isEnabled()
    dlg.folder_widget.setFilePath(str(tmp_path / "out"))
    assert dlg.refresh() == [] and dlg.run_button.isEnabled()
    assert not (tmp_path / "out").exists()   # checking writes nothing


def _rendered_colours(html: str) -> set:
    doc = QTextDocument()
    doc.setHtml(html)
    image = QImage(doc.size().toSize(), QImage.Format_RGB32)
    image.fill(QColor("#efefef"))   # the dialog's grey
    painter = QPainter(image)
    doc.drawContents(painter)
    painter.end()
    return {QColor(image.pixel(x, y)).name() for x in range(image.width()) for y in range(image.height())}


def test_colour_chips_have_an_outline_so_light_classes_show_on_grey(qgis_app):
    light = max(LULC_CLASSES, key=lambda c: sum(QColor(c.colour).getRgb()[:3]))
    colours = _rendered_colours(colour_chip(light.colour))
    assert CHIP_OUTLINE in colours and QColor(light.colour).name() in colours
