"""Fine-tuning end to end in headless QGIS 3.22 with the real backend process (.venv-backend, tiny random-weight
model from the fake hub, a TerraMesh S2L2A tile): polygons drawn in a memory layer → train in the dialog (live
curve) → apply → a class layer in the user's class names and colours, linked to the report; cancel during
training; terramind:finetune in Processing. CI cost is kept low: 2 epochs of 32 px chips, FCN decoder."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsSettings

from tests.conftest import sample
from tests.plugin.test_finetune_labels import categorize
from terramind_qgis.dialog import TerraMindDialog
from terramind_qgis.task import Cancelled, Done

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("stop_backend_after_module")]
CLASSES = [(1, "Water", "#3171ad"), (2, "Forest", "#1a7a3a")]
CHIP = 32


@pytest.fixture
def backend(backend_python):
    """The real backend, which must read polygon labels (with fiona: backend/pyproject.toml)."""
    probe = subprocess.run([str(backend_python), "-c", "import fiona"], capture_output=True)
    if probe.returncode:
        pytest.fail(f"fiona missing in {backend_python}: run scripts/setup.sh")
    return backend_python


@pytest.fixture
def scene(qgis_app, qgis_new_project):
    layer = QgsRasterLayer(str(sample("S2L2A")), "Sentinel-2")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def drawn(scene):
    """Eight squares of two classes, drawn in an unsaved memory layer in another CRS, styled by class. Each lies
    inside one 32 px training chip, so training reads eight chips (CI time)."""
    from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsGeometry,
                           QgsRectangle, QgsVectorLayer)

    crs = QgsCoordinateReferenceSystem("EPSG:4326")
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=cls:integer", "drawn", "memory")
    to_layer = QgsCoordinateTransform(scene.crs(), crs, QgsProject.instance())
    extent, chip = scene.extent(), CHIP * scene.rasterUnitsPerPixelX()
    features = []
    for i in range(8):
        left = extent.xMinimum() + chip * 2 * (i % 4) + chip / 8
        top = extent.yMaximum() - chip * 2 * (i // 4) - chip / 8
        square = QgsGeometry.fromRect(QgsRectangle(left, top - chip * 3 / 4, left + chip * 3 / 4, top))
        square.transform(to_layer)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(square)
        feature.setAttributes([1 + i % 2])
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    categorize(layer, CLASSES)
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def dialog(backend, qgis_iface, qtbot, scene, tmp_path):
    QgsSettings().remove("terramind")
    dlg = TerraMindDialog(qgis_iface)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.input_list.rows[0].set_layer(scene)
    dlg.train_radio.setChecked(True)
    dlg.size_combo.setCurrentIndex(dlg.size_combo.findData("tiny"))
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    panel = dlg.train_panel
    panel.labels_combo.setLayer(drawn(scene))
    panel.checkpoint_widget.setFilePath(str(tmp_path / "model.ckpt"))
    panel.chip_spin.setValue(CHIP)
    panel.batch_spin.setValue(4)
    panel.decoder_combo.setCurrentIndex(panel.decoder_combo.findData("FCNDecoder"))
    yield dlg
    if panel.task is not None:
        panel.task.cancel()
        qtbot.waitUntil(lambda: panel.task is None, timeout=30000)
    dlg.close()
    dlg.deleteLater()
    qtbot.wait(10)
    QgsSettings().remove("terramind")


def finished_outcome(panel, qtbot, timeout=300000):
    outcomes = []
    panel.task.on_finished = lambda outcome, done=panel.task.on_finished: (outcomes.append(outcome), done(outcome))
    qtbot.waitUntil(lambda: bool(outcomes), timeout=timeout)
    return outcomes[0]


def test_processing_finetune_trains_from_a_memory_layer(backend, qgis_processing, scene, tmp_path):
    import processing
    from qgis.core import QgsApplication, QgsProcessingFeedback

    from terramind_qgis.processing import TerraMindProvider

    provider = TerraMindProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        labels = drawn(scene)
        feedback = QgsProcessingFeedback()
        result = processing.run("terramind:finetune", {
            "S2L2A": scene.id(), "LABELS": labels.id(), "FIELD": "cls", "OUTPUT": str(tmp_path / "p.ckpt"),
            "EPOCHS": 1, "DECODER": 2, "MODEL": 0, "DEVICE": 2, "CHIP_SIZE": CHIP, "BATCH_SIZE": 4}, feedback=feedback)
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
    assert result["OUTPUT"] == str(tmp_path / "p.ckpt") and os.path.isfile(result["OUTPUT"])
    assert result["REPORT"].endswith(".report.html") and os.path.isfile(result["REPORT"])
    with open(result["METRICS"]) as handle:
        assert json.load(handle)["epochs"][0]["epoch"] == 1
    assert '"val_miou"' in feedback.textLog()       # each epoch's scores in the algorithm's log


def test_draw_train_apply_gives_a_styled_class_layer_and_the_report(dialog, qtbot, tmp_path):
    panel = dialog.train_panel
    panel.epochs_spin.setValue(2)
    assert dialog.refresh() == [], [p.message for p in dialog.problems]
    dialog.run()
    outcome = finished_outcome(panel, qtbot)
    assert isinstance(outcome, Done), getattr(outcome, "message", outcome)
    checkpoint = tmp_path / "model.ckpt"
    assert checkpoint.is_file() and (tmp_path / "model.ckpt.report.html").is_file()
    metrics = json.loads((tmp_path / "model.ckpt.metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert [e for e, _ in panel.curve.values("val_miou")] == [1, 2]       # drawn live from progress events
    assert "model saved to" in panel.status_label.text()
    from qgis.core import Qgis
    assert any(str(checkpoint) in m for m in dialog.iface.messageBar().get_messages(Qgis.Success))
    assert panel.apply_button.isEnabled() and panel.report_button.isEnabled()

    application = panel.apply()
    qtbot.waitUntil(lambda: application.outcome is not None, timeout=300000)
    outcome = application.outcome
    assert isinstance(outcome, Done), getattr(outcome, "message", outcome)
    (layer,) = outcome.layers
    assert QgsProject.instance().mapLayer(layer.id()) is layer and layer.isValid()
    assert layer.extent().intersects(dialog.input_list.rows[0].layer().extent())
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [(c.label, c.color.name()) for c in renderer.classes()] == [(n, c) for _, n, c in CLASSES]
    assert str(tmp_path / "model.ckpt.report.html") in layer.metadata().abstract()
    assert os.path.dirname(layer.source()) == str(tmp_path)


def test_cancel_mid_training_stops_within_seconds(dialog, qtbot):
    import time

    panel = dialog.train_panel
    panel.epochs_spin.setValue(50)
    dialog.run()
    steps = []
    panel.task.stepped.connect(lambda event: steps.append(event) if event.get("stage") == "train" else None)
    qtbot.waitUntil(lambda: bool(steps), timeout=300000)
    cancelled_at = time.monotonic()
    panel.cancel_button.click()
    outcome = finished_outcome(panel, qtbot, timeout=30000)
    assert isinstance(outcome, Cancelled), outcome
    assert time.monotonic() - cancelled_at < 15
    assert "cancelled" in outcome.message.lower()
    assert "cancelled" in panel.status_label.text().lower()
    assert panel.task is None and not panel.cancel_button.isEnabled()
    assert dialog.refresh() == []        # a new run can start
