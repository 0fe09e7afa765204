"""Rules that live in the dialog's sections (`terramind_qgis/widgets/*_section.py`), on real headless QGIS: the
pixel size follows the first input until the user sets it, and the task choices are remembered."""
from __future__ import annotations

import pytest
from osgeo import gdal
from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer

from test_dialog import dialog, layers  # noqa: F401  (fixtures)
from tests.conftest import sample
from terramind_qgis.dialog import TerraMindDialog


def _coarse_layer(tmp_path) -> QgsRasterLayer:
    """The S2L2A sample resampled to 20 m pixels."""
    path = str(tmp_path / "s2_20m.tif")
    gdal.Translate(path, str(sample("S2L2A")), xRes=20, yRes=20)
    layer = QgsRasterLayer(path, "S2L2A 20 m")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _first_input(dialog, layer) -> None:  # noqa: F811
    dialog.input_list.rows[0].set_layer(layer)
    dialog.refresh()


def test_pixel_size_follows_the_first_input_until_the_user_sets_it(dialog, layers, tmp_path):  # noqa: F811
    coarse = _coarse_layer(tmp_path)
    _first_input(dialog, layers["S2L2A"])
    assert dialog.resolution_spin.value() == pytest.approx(10.0)
    _first_input(dialog, coarse)
    assert dialog.resolution_spin.value() == pytest.approx(20.0)

    dialog.resolution_spin.setValue(15.0)           # the user's choice outlives a new first input
    _first_input(dialog, layers["S2L2A"])
    assert dialog.resolution_spin.value() == pytest.approx(15.0)

    dialog.crs_widget.setCrs(layers["S2L2A"].crs())  # a new CRS makes the pixel size nobody's choice again
    dialog.crs_widget.setCrs(QgsCoordinateReferenceSystem())
    _first_input(dialog, coarse)
    assert dialog.resolution_spin.value() == pytest.approx(20.0)


def test_task_tim_modalities_and_temporary_files_are_remembered(dialog, layers, qgis_iface, qtbot):  # noqa: F811
    dialog.embed_radio.setChecked(True)
    dialog.embed_mode_combo.setCurrentIndex(dialog.embed_mode_combo.findData("tim-embed"))
    for name, check in dialog.tim_checks.items():
        check.setChecked(name in ("NDVI", "DEM"))
    dialog.temporary_radio.setChecked(True)
    dialog._save_settings()
    again = TerraMindDialog(qgis_iface)
    qtbot.addWidget(again)
    assert again.task() == "tim-embed" and again.embed_radio.isChecked()
    assert [name for name, check in again.tim_checks.items() if check.isChecked()] == ["NDVI", "DEM"]
    assert again.tim_checks["NDVI"].isEnabled()
    assert again.temporary_radio.isChecked() and not again.folder_widget.isEnabled()

    dialog.train_radio.setChecked(True)
    dialog._save_settings()
    trained = TerraMindDialog(qgis_iface)
    qtbot.addWidget(trained)
    assert trained.task() == "finetune" and trained.output_box.isHidden()
    assert trained.run_button.text() == "Train"
