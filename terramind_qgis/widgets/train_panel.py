"""The dialog's "Train a model" page: labels, training options, the checkpoint file, then a live run.

The dialog keeps what every job shares (inputs, model size, device, pixel size, seed, extent) and hands it over
as a ``JobChoices``; this page adds the labels and training options, checks them (``finetune.spec`` and
``finetune.labels``), starts a ``FinetuneTask`` and follows it: status line with the time left, the live
loss/mIoU curve, Cancel, and when done Open report and Apply to map (``finetune.apply``).
"""
from __future__ import annotations

import os

from qgis.core import (QgsApplication, QgsFieldProxyModel, QgsMapLayerProxyModel, QgsProject, QgsSettings,
                       QgsVectorLayer)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox, QgsSpinBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar,
                                 QPushButton, QVBoxLayout, QWidget)

from ..finetune.labels import LabelsError, read_labels
from ..finetune.spec import DECODERS, DEFAULTS, FinetuneChoices, SceneChoice, check_finetune
from ..finetune.task import eta_text, output_of, summary
from ..jobspec_builder import JobChoices, Problem
from .colour_chip import colour_chip
from .messages import MessageLabel
from .train_curve import TrainingCurve

SETTINGS_PREFIX = "terramind/train/"
# Problem fields this page shows (the dialog shows the rest next to its own widgets).
PANEL_FIELDS = ("labels", "training", "outputs.checkpoint")
_DECODER_TEXT = {"UNetDecoder": "UNet (default: sharp boundaries)", "UperNetDecoder": "UperNet (multi-scale)",
                 "FCNDecoder": "FCN (smallest, fastest)"}


def _chips(classes) -> str:
    return " ".join(f"{colour_chip(c.color)}&nbsp;{c.name}" for c in classes)


class TrainPanel(QWidget):
    """Labels + training options + progress of one training run at a time."""

    changed = pyqtSignal()              # something the checks depend on changed
    runningChanged = pyqtSignal(bool)   # a training task started (True) or ended (False)
    backendProblem = pyqtSignal(str, str)   # the backend refused the job: (field, message), fields as the dialog's

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.task_factory = None        # tests replace it; None → finetune.task.FinetuneTask
        self.apply_task_factory = None  # tests replace it; None → task.TerraMindTask
        self.choices_source = None      # () -> the dialog's JobChoices now: area and tiling of "Apply to map"
        self.task = None
        self.application = None         # the ModelApplication of the last "Apply to map"
        self.last = None                # (FinetuneChoices, result) of the last finished run
        self._build()
        self._restore()
        self._connect()

    # -- construction -----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.labels_combo = QgsMapLayerComboBox()
        self.labels_combo.setObjectName("labels")
        self.labels_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer | QgsMapLayerProxyModel.RasterLayer)
        self.labels_combo.setAllowEmptyLayer(True)
        self.labels_combo.setLayer(None)
        self.labels_combo.setToolTip("Polygons you drew or have (any CRS; unsaved memory layers work) or a class "
                                     "raster. Class names and colours come from the layer's categorized or "
                                     "paletted style")
        self.field_combo = QgsFieldComboBox()
        self.field_combo.setObjectName("labels_field")
        self.field_combo.setFilters(QgsFieldProxyModel.Int | QgsFieldProxyModel.LongLong | QgsFieldProxyModel.String)
        self.field_combo.setToolTip("The attribute that holds each polygon's class (integer or text)")
        self.classes_label = QLabel()
        self.classes_label.setWordWrap(True)
        self.labels_error = MessageLabel("error")
        form.addRow("Labels", self.labels_combo)
        form.addRow("Class field", self.field_combo)
        form.addRow(self.classes_label)   # a full row: QFormLayout gives a wrapped label in the field column the
        # height of its size hint (several lines), not of its width, leaving empty lines around it
        form.addRow(self.labels_error)

        self.epochs_spin = QgsSpinBox()
        self.epochs_spin.setObjectName("epochs")
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(DEFAULTS.epochs)
        self.epochs_spin.setClearValue(DEFAULTS.epochs)
        self.epochs_spin.setToolTip("Passes over the training chips; training stops early when validation mIoU "
                                    "stops improving, and the best epoch is kept")
        self.decoder_combo = QComboBox()
        self.decoder_combo.setObjectName("decoder")
        for name in DECODERS:
            self.decoder_combo.addItem(_DECODER_TEXT.get(name, name), name)
        self.chip_spin = QgsSpinBox()
        self.chip_spin.setObjectName("chip_size")
        self.chip_spin.setRange(32, 2048)
        self.chip_spin.setSingleStep(32)
        self.chip_spin.setValue(DEFAULTS.chip_size)
        self.chip_spin.setClearValue(DEFAULTS.chip_size)
        self.chip_spin.setSuffix(" px")
        self.chip_spin.setToolTip("Side of the training chips, a multiple of 32 px")
        self.batch_spin = QgsSpinBox()
        self.batch_spin.setObjectName("train_batch")
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(DEFAULTS.batch_size)
        self.batch_spin.setClearValue(DEFAULTS.batch_size)
        self.batch_spin.setToolTip("Chips per training step; halved automatically if a GPU runs out of memory")
        self.backbone_check = QCheckBox("Train the backbone too (slower, needs more labels)")
        self.backbone_check.setChecked(not DEFAULTS.freeze_backbone)
        self.balanced_check = QCheckBox("Balance rare classes (weight by inverse frequency)")
        sizes = QHBoxLayout()
        sizes.addWidget(self.chip_spin)
        sizes.addWidget(QLabel("Batch"))
        sizes.addWidget(self.batch_spin)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Decoder", self.decoder_combo)
        form.addRow("Chips", sizes)
        form.addRow(self.backbone_check)
        form.addRow(self.balanced_check)
        self.training_error = MessageLabel("error")
        form.addRow(self.training_error)

        self.checkpoint_widget = QgsFileWidget()
        self.checkpoint_widget.setObjectName("checkpoint")
        self.checkpoint_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.checkpoint_widget.setFilter("Lightning checkpoints (*.ckpt)")
        self.checkpoint_widget.setDialogTitle("Save the trained model as")
        self.checkpoint_widget.setToolTip("The trained model (TerraTorch opens it too); its metrics (.metrics.json) "
                                          "and report (.report.html) are written beside it")
        self.checkpoint_error = MessageLabel("error")
        form.addRow("Save model as", self.checkpoint_widget)
        form.addRow(self.checkpoint_error)
        layout.addLayout(form)

        self.progress_widget = QWidget()
        progress = QVBoxLayout(self.progress_widget)
        progress.setContentsMargins(0, 6, 0, 0)
        self.status_label = QLabel()
        self.status_label.setObjectName("train_status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.curve = TrainingCurve()
        buttons = QHBoxLayout()
        self.cancel_button = QPushButton(QgsApplication.getThemeIcon("/mTaskCancel.svg"), "Cancel training")
        self.report_button = QPushButton("Open report")
        self.report_button.setToolTip("Loss and mIoU curves, per-class scores and the confusion matrix")
        self.apply_button = QPushButton("Apply to map")
        self.apply_button.setObjectName("apply")
        self.apply_button.setToolTip("Segment the inputs (or the extent chosen under Area) with the new model and "
                                     "add the class layer with your class names and colours")
        for button in (self.cancel_button, self.report_button, self.apply_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        progress.addWidget(self.status_label)
        progress.addWidget(self.progress_bar)
        progress.addWidget(self.curve)
        progress.addLayout(buttons)
        layout.addWidget(self.progress_widget)
        self.progress_widget.setVisible(False)

    def _connect(self) -> None:
        self.labels_combo.layerChanged.connect(self._labels_changed)
        self.field_combo.fieldChanged.connect(self._emit_changed)
        for spin in (self.epochs_spin, self.chip_spin, self.batch_spin):
            spin.valueChanged.connect(self._emit_changed)
        self.decoder_combo.currentIndexChanged.connect(self._emit_changed)
        self.checkpoint_widget.fileChanged.connect(self._emit_changed)
        self.cancel_button.clicked.connect(self.cancel)
        self.report_button.clicked.connect(self.open_report)
        self.apply_button.clicked.connect(self.apply)
        self._labels_changed(self.labels_combo.currentLayer())

    def _emit_changed(self, *_):
        self.changed.emit()

    def _labels_changed(self, layer) -> None:
        vector = isinstance(layer, QgsVectorLayer)
        self.field_combo.setLayer(layer if vector else None)
        self.field_combo.setEnabled(vector)
        if vector and not self.field_combo.currentField():
            renderer = layer.renderer()
            attribute = renderer.classAttribute() if hasattr(renderer, "classAttribute") else ""
            names = [f.name() for f in layer.fields()]
            self.field_combo.setField(attribute if attribute in names else next(
                (n for n in names if self.field_combo.model().indexFromName(n).isValid()), ""))
        self.changed.emit()

    # -- values and checks ----------------------------------------------------------------------
    def label_for(self, field: str):
        """The message label of a problem field on this page, None for the dialog's own fields."""
        if field.startswith("labels") or field.startswith("training.0.labels"):
            return self.labels_error
        if field.startswith("outputs"):
            return self.checkpoint_error
        if field.startswith("training"):
            return self.training_error
        return None

    def message_labels(self) -> list:
        return [self.labels_error, self.training_error, self.checkpoint_error]

    def finetune_choices(self, base: JobChoices, classes=None) -> FinetuneChoices:
        return FinetuneChoices(
            scenes=[SceneChoice(inputs=list(base.inputs))], checkpoint=self.checkpoint_widget.filePath().strip(),
            classes=classes, model_size=base.model_size, device=base.device, seed=base.seed,
            resolution=base.resolution, epochs=self.epochs_spin.value(), decoder=self.decoder_combo.currentData(),
            batch_size=self.batch_spin.value(), chip_size=self.chip_spin.value(),
            freeze_backbone=not self.backbone_check.isChecked(),
            class_weights="balanced" if self.balanced_check.isChecked() else None)

    def read_labels(self, input_layers, snapshot: bool = True):
        """The labels snapshot (raises ``LabelsError``); shows the classes found. ``snapshot=False``: checks only."""
        try:
            labels = read_labels(self.labels_combo.currentLayer(), self.field_combo.currentField() or None,
                                 input_layers, snapshot)
        except LabelsError:
            self.classes_label.clear()
            raise
        self.classes_label.setText(f"{len(labels.classes)} classes: {_chips(labels.classes)}"
                                   if labels.classes else "Classes: the codes found in the raster")
        return labels

    def problems(self, base: JobChoices, input_layers) -> list[Problem]:
        problems = check_finetune(self.finetune_choices(base))
        try:
            self.read_labels(input_layers, snapshot=False)
        except LabelsError as exc:
            problems.append(Problem("labels", str(exc)))
        if self.task is not None:
            problems.append(Problem("training", "A training run is in progress: wait for it or cancel it"))
        return problems

    # -- running ------------------------------------------------------------------------------------
    def start(self, base: JobChoices, input_layers) -> bool:
        """Check again, then queue the training task. False (with the message shown) when it cannot start."""
        try:
            snapshot = self.read_labels(input_layers)
        except LabelsError as exc:
            self.labels_error.show_message(str(exc))
            return False
        choices = self.finetune_choices(base, [c.to_json() for c in snapshot.classes] or None)
        if check_finetune(choices):
            return False
        self._save()
        name = f"TerraMind: train {os.path.basename(choices.checkpoint)}"
        if self.task_factory is not None:
            self.task = self.task_factory(name, choices, [snapshot], on_finished=self._finished)
        else:
            from ..finetune.task import FinetuneTask

            self.task = FinetuneTask(name, choices, [snapshot], on_finished=self._finished, iface=self.iface,
                                     on_apply=self.apply)
        self.task.stepped.connect(self._stepped)
        self.task.epochFinished.connect(self.curve.add_epoch)
        self.task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        self.curve.clear(choices.epochs)
        self.progress_bar.setValue(0)
        self.status_label.setText("Starting the backend and loading the model…")
        self.progress_widget.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.report_button.setEnabled(False)
        self.apply_button.setEnabled(False)
        self.last = None
        QgsApplication.taskManager().addTask(self.task)
        self.runningChanged.emit(True)
        return True

    def _stepped(self, event: dict) -> None:
        left = eta_text(event.get("eta_s"))
        text = event.get("message") or event.get("stage") or ""
        self.status_label.setText(f"{text}{f' · {left}' if left else ''}")

    def cancel(self) -> None:
        if self.task is not None:
            self.status_label.setText("Cancelling… the best checkpoint so far is kept when an epoch has finished")
            self.task.cancel()

    def _finished(self, outcome) -> None:
        from ..task import Done

        task, self.task = self.task, None
        self.cancel_button.setEnabled(False)
        if isinstance(outcome, Done):
            self.last = (task.choices, outcome.result)
            self.status_label.setText(f"<b>Done:</b> {summary(outcome.result)}")
            self.progress_bar.setValue(100)
            self.report_button.setEnabled(bool(output_of(outcome.result, "report")))
            self.apply_button.setEnabled(bool(output_of(outcome.result, "checkpoint")))
        else:
            self.status_label.setText(f"<span style='color:#c62828'>{outcome.message}</span>")
            self._enable_kept_checkpoint(outcome)
        self.runningChanged.emit(False)
        if getattr(outcome, "kind", None) == "validation":
            self.backendProblem.emit(_single_scene_field(outcome.field or "training"), outcome.message)
        else:
            self.changed.emit()

    def _enable_kept_checkpoint(self, outcome) -> None:
        """A cancelled run may have kept its best checkpoint; the report shows how far it got."""
        checkpoint = self.checkpoint_widget.filePath().strip()
        report = f"{checkpoint}.report.html"
        self.report_button.setEnabled(os.path.isfile(report))

    def open_report(self) -> None:
        from ..finetune.task import open_file

        report = output_of(self.last[1], "report") if self.last else \
            f"{self.checkpoint_widget.filePath().strip()}.report.html"
        if report and os.path.isfile(report):
            open_file(report)

    def apply(self, *_):
        """Segment with the new model (over the area and with the tiling the dialog shows now) and add the styled
        class layer."""
        if not self.last:
            return None
        from ..finetune.apply import ModelApplication
        from ..jobspec_builder import JobSpecError

        training, result = self.last
        self.application = ModelApplication(training, result, iface=self.iface, project=QgsProject.instance(),
                                            task_factory=self.apply_task_factory)
        try:
            self.application.start(self.choices_source() if self.choices_source is not None else None)
        except JobSpecError as exc:
            self.status_label.setText(f"<span style='color:#c62828'>Cannot apply the model: "
                                      f"{'; '.join(p.message for p in exc.problems)}</span>")
        return self.application

    # -- remembered choices ---------------------------------------------------------------------------
    def _save(self) -> None:
        s = QgsSettings()
        s.setValue(SETTINGS_PREFIX + "epochs", self.epochs_spin.value())
        s.setValue(SETTINGS_PREFIX + "decoder", self.decoder_combo.currentData())
        s.setValue(SETTINGS_PREFIX + "chip_size", self.chip_spin.value())
        s.setValue(SETTINGS_PREFIX + "batch_size", self.batch_spin.value())
        s.setValue(SETTINGS_PREFIX + "checkpoint", self.checkpoint_widget.filePath())

    def _restore(self) -> None:
        s = QgsSettings()

        def get(key, default):
            try:
                return type(default)(s.value(SETTINGS_PREFIX + key, default))
            except (TypeError, ValueError):
                return default

        self.epochs_spin.setValue(get("epochs", DEFAULTS.epochs))
        self.decoder_combo.setCurrentIndex(max(0, self.decoder_combo.findData(get("decoder", DEFAULTS.decoder))))
        self.chip_spin.setValue(get("chip_size", DEFAULTS.chip_size))
        self.batch_spin.setValue(get("batch_size", DEFAULTS.batch_size))
        self.checkpoint_widget.setFilePath(get("checkpoint", ""))


def _single_scene_field(field: str) -> str:
    """The dialog trains one scene: 'training.0.inputs.S2L2A.bands' is its 'inputs.S2L2A.bands'."""
    parts = field.split(".")
    if len(parts) > 2 and parts[0] == "training" and parts[1].isdigit() and parts[2] == "inputs":
        return ".".join(parts[2:])
    return field
