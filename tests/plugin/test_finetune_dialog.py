"""The dialog's "Train a model" mode on real headless QGIS: labels drawn in a memory layer, checks shown next to
the widgets, the real FinetuneTask and TerraMindTask driven by a scripted backend client (the real backend runs
in test_finetune_backend.py): live curve, report, apply → a class layer in the user's names and colours."""
from __future__ import annotations

import json
import os

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsSettings

from tests.conftest import sample
from tests.plugin.test_finetune_labels import categorize, owned, polygons
from terramind_qgis.dialog import TerraMindDialog
from terramind_qgis.finetune.task import FinetuneTask
from terramind_qgis.task import Done, TerraMindTask

gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
CLASSES = [(1, "Water", "#3171ad"), (2, "Forest", "#1a7a3a")]


class ScriptedClient:
    """Stands in for the backend process: records the JobSpec, sends finetune-style events, writes outputs."""

    def __init__(self):
        self.specs = []

    def run_job(self, spec, on_event=None, is_cancelled=None):
        self.specs.append(spec)
        if spec["task"] == "finetune":
            return self._train(spec, on_event)
        return self._segment(spec)

    def _train(self, spec, on_event):
        epochs = spec["training_options"]["epochs"]
        for epoch in range(1, epochs + 1):
            on_event({"event": "progress", "stage": "train", "done": epoch, "total": epochs,
                      "fraction": epoch / epochs, "eta_s": 3.0 * (epochs - epoch),
                      "message": f"epoch {epoch}/{epochs}, step 1/1, loss {1.0 / epoch:.3f}"})
            on_event({"event": "progress", "stage": "train", "done": epoch, "total": epochs,
                      "fraction": epoch / epochs, "eta_s": 0.0, "message": f"epoch {epoch}/{epochs}",
                      "metrics": {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch,
                                  "val_miou": 0.3 * epoch, "best": True}})
        checkpoint = spec["outputs"]["checkpoint"]
        for suffix in ("", ".metrics.json", ".report.html"):
            with open(checkpoint + suffix, "w") as handle:
                handle.write("{}" if suffix.endswith("json") else "x")
        classes = [{"value": i, "name": c["name"], "color": c["color"], "label": c["value"]}
                   for i, c in enumerate(spec["classes"])]
        return {"outputs": [{"name": "checkpoint", "path": checkpoint, "kind": "checkpoint"},
                            {"name": "metrics", "path": checkpoint + ".metrics.json", "kind": "metrics"},
                            {"name": "report", "path": checkpoint + ".report.html", "kind": "report"}],
                "best_epoch": epochs, "epochs_run": epochs, "best_val_miou": 0.6, "stopped": "completed",
                "classes": classes}

    def _segment(self, spec):
        path = spec["outputs"]["classes"]
        source = gdal.Open(spec["inputs"]["S2L2A"]["path"])
        out = gdal.GetDriverByName("GTiff").Create(path, 8, 8, 1, gdal.GDT_Byte)
        out.SetGeoTransform(source.GetGeoTransform())
        out.SetProjection(source.GetProjection())
        out.GetRasterBand(1).WriteArray(__import__("numpy").array([[0, 1] * 4] * 8, dtype="uint8"))
        out = None
        return {"outputs": [{"name": "classes", "path": path, "kind": "classes"}], "elapsed_s": 0.1}


@pytest.fixture
def scene(qgis_app, qgis_new_project):
    layer = QgsRasterLayer(str(sample("S2L2A")), "scene")
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def dialog(qgis_iface, qtbot, scene, tmp_path):
    QgsSettings().remove("terramind")
    dlg = TerraMindDialog(qgis_iface)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.input_list.rows[0].set_layer(scene)
    dlg.train_radio.setChecked(True)
    client = ScriptedClient()
    panel = dlg.train_panel
    panel.task_factory = lambda name, choices, snapshots, on_finished: FinetuneTask(
        name, choices, snapshots, on_finished, client=client)
    panel.apply_task_factory = lambda name, spec, on_finished: TerraMindTask(
        name, spec, on_finished, client=client, project=QgsProject.instance())
    panel.checkpoint_widget.setFilePath(str(tmp_path / "model.ckpt"))
    dlg.client = client
    yield dlg
    dlg.close()
    dlg.deleteLater()
    qtbot.wait(10)
    QgsSettings().remove("terramind")


def drawn_labels(scene, values=(1, 2, 1, 2)):
    layer = polygons(scene, list(values))
    categorize(layer, CLASSES)
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_train_mode_shows_label_problems_next_to_the_labels(dialog, scene):
    panel = dialog.train_panel
    problems = dialog.refresh()
    assert [p.field for p in problems] == ["labels"] and not dialog.run_button.isEnabled()
    assert "Choose the layer with your training labels" in panel.labels_error.message()
    assert dialog.run_button.text() == "Train" and not dialog.output_box.isVisible()
    panel.labels_combo.setLayer(drawn_labels(scene, (1, 1)))
    dialog.refresh()
    assert "only the class 'Water'" in panel.labels_error.message()
    panel.labels_combo.setLayer(drawn_labels(scene))
    assert panel.field_combo.currentField() == "cls"   # the field the legend classifies
    panel.checkpoint_widget.setFilePath(str(os.path.dirname(panel.checkpoint_widget.filePath())) + "/model.txt")
    dialog.refresh()
    assert "end the file name with .ckpt" in panel.checkpoint_error.message()


def test_train_then_apply_adds_the_class_layer_in_the_users_colours(dialog, scene, qtbot, tmp_path):
    panel = dialog.train_panel
    panel.labels_combo.setLayer(drawn_labels(scene))
    panel.epochs_spin.setValue(3)
    assert dialog.refresh() == [], [p.message for p in dialog.problems]
    assert "Water" in panel.classes_label.text() and "Forest" in panel.classes_label.text()
    with qtbot.waitSignal(panel.runningChanged, timeout=30000, check_params_cb=lambda running: not running):
        dialog.run()
    assert dialog.isVisible()                              # the page shows the run
    (spec,) = dialog.client.specs
    assert spec["task"] == "finetune" and spec["classes"] == [
        {"value": 1, "name": "Water", "color": "#3171ad"}, {"value": 2, "name": "Forest", "color": "#1a7a3a"}]
    assert spec["training"][0]["labels"]["field"] == "cls"
    assert not os.path.exists(spec["training"][0]["labels"]["path"])   # the temporary GeoPackage is gone
    assert [e for e, _ in panel.curve.values("val_miou")] == [1, 2, 3]  # one point per epoch, live
    assert "model saved to" in panel.status_label.text() and panel.progress_bar.value() == 100
    assert panel.apply_button.isEnabled() and panel.report_button.isEnabled()

    dialog.extent_box.setChecked(True)       # Apply segments the extent chosen now, under Area
    dialog.extent_box.setOutputExtentFromUser(scene.extent(), scene.crs())
    panel.apply_button.click()
    application = panel.application
    qtbot.waitUntil(lambda: application.outcome is not None, timeout=30000)
    segment = dialog.client.specs[1]
    assert segment["task"] == "segment" and segment["options"]["checkpoint"] == str(tmp_path / "model.ckpt")
    assert segment["inputs"] == spec["training"][0]["inputs"]
    assert segment["extent"]["crs"] == scene.crs().authid()
    assert segment["extent"]["bounds"] == pytest.approx([scene.extent().xMinimum(), scene.extent().yMinimum(),
                                                         scene.extent().xMaximum(), scene.extent().yMaximum()])
    outcome = application.outcome
    assert isinstance(outcome, Done)
    (layer,) = outcome.layers
    assert QgsProject.instance().mapLayer(layer.id()) is layer
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == \
        [(0, "Water", "#3171ad"), (1, "Forest", "#1a7a3a")]
    assert str(tmp_path / "model.ckpt.report.html") in layer.metadata().abstract()


def test_curve_paints_its_epochs(qgis_app, qtbot):
    from terramind_qgis.widgets.train_curve import TrainingCurve

    curve = TrainingCurve()
    qtbot.addWidget(curve)
    curve.resize(400, 180)
    curve.clear(4)
    empty = curve.grab().toImage()
    for epoch, loss, miou in ((1, 1.5, 0.2), (2, 1.0, 0.4), (2, 0.9, 0.45)):   # a repeated epoch replaces
        curve.add_epoch({"epoch": epoch, "train_loss": loss, "val_loss": loss + 0.1, "val_miou": miou,
                         "best": True})
    assert curve.values("train_loss") == [(1, 1.5), (2, 0.9)] and curve.best_epoch()["epoch"] == 2
    drawn = curve.grab().toImage()
    assert drawn != empty
    assert json.dumps(curve.epochs)   # plain data, as the metrics file holds it


def test_finished_training_message_offers_report_and_apply(scene, qtbot, tmp_path):
    """In QGIS's real message bar: the summary with the checkpoint path, and the two buttons."""
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from terramind_qgis.finetune.labels import read_labels
    from terramind_qgis.finetune.spec import FinetuneChoices, SceneChoice
    from terramind_qgis.jobspec_builder import InputChoice

    class Iface:
        bar = QgsMessageBar()

        def messageBar(self):
            return self.bar

    applied = []
    snapshot = read_labels(drawn_labels(scene), "cls", [scene])
    choices = FinetuneChoices(scenes=[SceneChoice([InputChoice("S2L2A", str(sample("S2L2A")), 12)])],
                              checkpoint=str(tmp_path / "m.ckpt"), classes=[c.to_json() for c in snapshot.classes],
                              epochs=1)
    task = FinetuneTask("train m", choices, [snapshot], iface=Iface(), client=ScriptedClient(),
                        on_apply=lambda: applied.append(True))
    with qtbot.waitSignal(task.taskCompleted, timeout=30000):
        QgsApplication.taskManager().addTask(task)
    item = Iface.bar.currentItem()
    assert str(tmp_path / "m.ckpt") in item.text() and "best validation mIoU 0.600" in item.text()
    buttons = {b.text(): b for b in item.findChildren(QPushButton)}
    assert set(buttons) == {"Open report", "Apply to map"}
    buttons["Apply to map"].click()
    assert applied == [True]


def test_backend_refusal_is_shown_under_the_widget_at_fault(dialog, scene, qtbot):
    """The backend validates again (e.g. too few labelled pixels): its message lands under the labels and Train
    stays disabled until something changes."""
    from terramind_qgis.client import BackendError

    panel = dialog.train_panel
    panel.labels_combo.setLayer(drawn_labels(scene))

    def refuse(spec, on_event=None, is_cancelled=None):
        raise BackendError("Only 576 labelled pixels; training needs at least 1000.", kind="validation",
                           field="training.0.labels")

    dialog.client.run_job = refuse
    assert dialog.refresh() == []
    with qtbot.waitSignal(panel.runningChanged, timeout=30000, check_params_cb=lambda running: not running):
        dialog.run()
    assert "at least 1000" in panel.labels_error.message()
    assert not dialog.run_button.isEnabled()
    panel.epochs_spin.setValue(panel.epochs_spin.value() + 1)   # any change lifts it
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled())
