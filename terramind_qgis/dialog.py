"""The TerraMind dialog: raster layers become modalities, choices become a JobSpec, Run queues a QgsTask.

This module only moves values between widgets and `jobspec_builder.JobChoices`. Guessing lives in
`modalities.py`, checks in `jobspec_builder.check_job` (plus the few that need QGIS geometry, in
`widgets/area_section.py`), and the job itself runs in `task.TerraMindTask` on QGIS's task manager, so the UI
thread never waits for the backend. Every problem is shown under the widget that causes it; Run is enabled only
when there are none.
Each section is its own widget in `widgets/` (`inputs_section`, `what_to_make_section`, `model_section`,
`area_section`, `advanced_section`, `output_files_section`); the dialog lays them out, exposes the widgets it and
its tests address, and wires them together; `widgets/section_columns.py` puts them in two columns that never
clip on the right. The plain fields (model, device, tiling, sampling, precision,
folder, …) are one table in `widgets/dialog_fields.py`, which saves, restores and watches them; the choice lists
come from `vocabulary.py`.
"""
from __future__ import annotations

import os
import time

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from .jobspec_builder import InputChoice, JobChoices, Problem, build_jobspec, check_job, output_folder, \
    output_paths, tile_count
from .layer_sources import crs_string
from .paths import icon_path
from .settings import PREFIX, Settings
from .widgets import dialog_fields
from .widgets.advanced_section import AdvancedSection
from .widgets.area_section import AreaSection
from .widgets.dialog_fields import DIALOG_KEY
from .widgets.dialog_header import dialog_header, header_rule
from .widgets.input_row import first_input_layer
from .widgets.inputs_section import InputsSection
from .widgets.model_section import ModelSection
from .widgets.output_files_section import OutputFilesSection
from .widgets.section_columns import SectionColumns
from .widgets.what_to_make_section import WhatToMakeSection

SETTINGS_PREFIX = PREFIX + DIALOG_KEY   # where the dialog remembers its choices


class TerraMindDialog(QDialog):
    """Pick layers and outputs, check them, and queue a TerraMind job without blocking QGIS."""

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("TerraMindDialog")
        self.setWindowTitle("TerraMind")
        self.setWindowIcon(QIcon(icon_path()))
        self.task_factory = None          # tests replace it; None → task.TerraMindTask
        self.review_factory = None        # tests replace it; None → job_review.ReviewTask
        self.confirm_box = None           # the open "Run anyway?" question, if any
        self.tasks = []                   # queued tasks stay referenced until they finish
        self.problems: list[Problem] = []
        self._refreshing = False
        self._backend_problem: Problem | None = None   # the backend's last validation error, until a change
        self._job_name = self._new_job_name()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self._inputs_timer = QTimer(self)
        self._inputs_timer.setSingleShot(True)
        self._inputs_timer.setInterval(0)
        self._inputs_timer.timeout.connect(self._inputs_changed)

        self._build()
        self._restore_settings()
        self._preselect_input()
        self._connect()
        self.refresh()

    # -- construction -----------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(14, 12, 14, 12)
        root.setSpacing(10)
        root.addLayout(dialog_header())
        root.addWidget(header_rule())

        self.inputs_section = InputsSection()
        self.what_to_make = WhatToMakeSection(self.iface)
        self.model_section = ModelSection()
        self.area_section = AreaSection(self.iface, first_layer=self.inputs_section.first_layer)
        self.advanced_box = AdvancedSection()
        self.output_box = OutputFilesSection(self._job_name)
        self._expose_widgets()
        self.sections = SectionColumns(
            left=(self.inputs_section, self.model_section),
            right=(self.what_to_make, self.area_section, self.advanced_box, self.output_box))
        root.addWidget(self.sections, 1)

        footer = QHBoxLayout()
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setObjectName("summary")
        footer.addWidget(self.summary_label, 1)
        self.buttons = QDialogButtonBox()
        self.run_button = QPushButton(QIcon(icon_path()), "Run")
        self.run_button.setObjectName("run")
        self.run_button.setDefault(True)
        self.run_button.setMinimumWidth(110)
        self.run_button.setStyleSheet(
            "QPushButton#run { background: #1d6f8f; color: white; font-weight: 600; border: 1px solid #155a75;"
            " border-radius: 4px; padding: 5px 18px; }"
            "QPushButton#run:hover { background: #237fa3; }"
            "QPushButton#run:disabled { background: #c3ccd5; color: #f4f6f8; border-color: #b3bdc7; }")
        self.run_button.setToolTip("Queue the job in QGIS's task manager; QGIS stays usable while it runs")
        self.buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        footer.addWidget(self.buttons)
        root.addLayout(footer)
        self.resize(1200, 900)

    def _expose_widgets(self) -> None:
        """The sections' widgets that the dialog's logic, `dialog_fields.FIELDS` and the tests address, as
        attributes of the dialog (the sections own them)."""
        inputs, make, model, area = self.inputs_section, self.what_to_make, self.model_section, self.area_section
        advanced, files = self.advanced_box, self.output_box
        self.input_list = inputs.input_list
        self.inputs_error = inputs.inputs_error
        self.generate_radio = make.generate_radio
        self.embed_radio = make.embed_radio
        self.train_radio = make.train_radio
        self.output_checks = make.output_checks
        self.uncertainty_row = make.uncertainty_row
        self.embed_mode_combo = make.embed_mode_combo
        self.layer_spin = make.layer_spin
        self.merge_combo = make.merge_combo
        self.tim_checks = make.tim_checks
        self.train_panel = make.train_panel
        self.outputs_error = make.outputs_error
        self.embed_error = make.embed_error
        self.size_combo = model.size_combo
        self.device_combo = model.device_combo
        self.model_error = model.model_error
        self.extent_box = area.extent_box
        self.polygon_combo = area.polygon_combo
        self.crs_widget = area.crs_widget
        self.resolution_spin = area.resolution_spin
        self.extent_error = area.extent_error
        self.grid_error = area.grid_error
        self.grid_hint = area.grid_hint
        self.window_spin = advanced.window_spin
        self.overlap_spin = advanced.overlap_spin
        self.batch_spin = advanced.batch_spin
        self.steps_spin = advanced.steps_spin
        self.seed_spin = advanced.seed_spin
        self.precision_combo = advanced.precision_combo
        self.standardize_check = advanced.standardize_check
        self.location_check = advanced.location_check
        self.advanced_error = advanced.advanced_error
        self.temporary_radio = files.temporary_radio
        self.folder_radio = files.folder_radio
        self.folder_widget = files.folder_widget
        self.name_edit = files.name_edit
        self.output_error = files.output_error

    def _connect(self) -> None:
        refresh = self.schedule_refresh
        self.input_list.changed.connect(self._inputs_timer.start)
        self.train_radio.toggled.connect(self._mode_changed)
        self.train_panel.changed.connect(refresh)
        self.train_panel.backendProblem.connect(self.show_backend_problem)
        self.train_panel.choices_source = self.choices
        self.generate_radio.toggled.connect(self._mode_changed)
        for check in list(self.output_checks.values()) + list(self.tim_checks.values()):
            check.toggled.connect(refresh)
        dialog_fields.connect(self, refresh)   # model, device, tiling, sampling, precision, folder, …
        self.embed_mode_combo.currentIndexChanged.connect(refresh)
        self.embed_mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.area_section.connect_changes()
        self.area_section.changed.connect(refresh)
        self.temporary_radio.toggled.connect(refresh)
        self.name_edit.textChanged.connect(refresh)
        self.run_button.clicked.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        self._mode_changed()

    def schedule_refresh(self, *_):
        """Widgets changed: check again once the event loop is idle (coalesces bursts of signals, and runs
        after QGIS has finished removing a layer that a combo still pointed to)."""
        self._backend_problem = None
        self._refresh_timer.start()

    # -- reactions --------------------------------------------------------------------------------
    def _mode_changed(self, *_):
        self.what_to_make.show_mode()
        training = self.train_radio.isChecked()
        self.output_box.setVisible(not training)   # the model file is chosen on the training page
        self.run_button.setText("Train" if training else "Run")
        self.steps_spin.setEnabled(self.task() != "embed")
        self.schedule_refresh()

    def _inputs_changed(self):
        self._backend_problem = None
        self.area_section.follow_first_input()
        self.refresh()

    def _preselect_input(self) -> None:
        """Start from the layer the user is looking at (the active raster, else the topmost one)."""
        active = self.iface.activeLayer() if self.iface is not None else None
        layer = first_input_layer(active)
        if layer is not None and self.input_list.rows[0].layer() is None:
            self.input_list.rows[0].set_layer(layer)
            self.area_section.follow_first_input()

    # -- values -----------------------------------------------------------------------------------
    def task(self) -> str:
        return self.what_to_make.task()

    def choices(self) -> JobChoices:
        """Everything the widgets say, as plain values."""
        inputs = []
        for row in self.input_list.rows:
            layer = row.layer()
            if layer is None:
                continue
            inputs.append(InputChoice(modality=row.modality(), path=layer.source(), band_count=layer.bandCount(),
                                      bands=row.mapping(), row=row.row_id))
        choices = JobChoices(
            task=self.task(), model_size=self.size_combo.currentData(), inputs=inputs,
            outputs=self.what_to_make.outputs(),
            job_name=self.name_edit.text().strip() or self._job_name,
            output_dir=self.folder_widget.filePath().strip() or None,
            temporary=self.temporary_radio.isChecked(),
            crs=crs_string(self.crs_widget.crs()) if self.crs_widget.crs().isValid() else None,
            resolution=self.resolution_spin.value(), window=self.window_spin.value(),
            overlap=self.overlap_spin.value(), batch_size=self.batch_spin.value(),
            device=self.device_combo.currentData(), timesteps=self.steps_spin.value(), seed=self.seed_spin.value(),
            layer=self.layer_spin.value(), merge_method=self.merge_combo.currentData(),
            tim_modalities=self.what_to_make.tim_modalities(),
            standardize=self.standardize_check.isChecked(),
            precision=self.precision_combo.currentData(),
            uncertainty=self.uncertainty_row.options(),
            use_location=self.location_check.isChecked(),
        )
        self.area_section.fill_extent(choices)
        return choices

    def jobspec(self) -> dict:
        """The JobSpec for the current widgets; raises jobspec_builder.JobSpecError when something is wrong."""
        return build_jobspec(self.choices())

    # -- checks -----------------------------------------------------------------------------------
    def refresh(self) -> list[Problem]:
        """Check the job, show each problem next to its widget, and enable Run when there are none."""
        if self._refreshing:
            return self.problems
        self._refreshing = True
        try:
            for row in self.input_list.rows:
                row.ensure_current()
        finally:
            self._refreshing = False
        if self._inputs_timer.isActive():
            self._inputs_timer.stop()
            self.area_section.follow_first_input()
        self._refresh_timer.stop()
        choices = self.choices()
        layers = self.inputs_section.layers()
        if choices.task == "finetune":
            problems = self.train_panel.problems(choices, layers)
        else:
            problems = check_job(choices)
        problems += self.area_section.overlap_problems(choices, layers)
        if self._backend_problem is not None:
            problems.append(self._backend_problem)
        self.problems = problems
        self._show_problems(problems)
        self._show_hints(choices)
        self.run_button.setEnabled(not problems)
        self._show_summary(choices, problems)
        return problems

    def _label_for(self, field: str):
        if self.task() == "finetune" and self.train_panel.label_for(field) is not None:
            return self.train_panel.label_for(field)
        if field.startswith("inputs."):
            row = self.input_list.row(field.split(".")[1])
            if row is not None:
                return row
        head = field.split(".")[0]
        return {
            "inputs": self.inputs_error, "outputs": self.outputs_error, "options": self.embed_error,
            "extent": self.extent_error, "crs": self.grid_error, "resolution": self.grid_error,
            "output_dir": self.output_error, "tiling": self.advanced_error, "timesteps": self.advanced_error,
            "model": self.model_error, "device": self.model_error, "task": self.outputs_error,
        }.get(head, self.outputs_error)

    def _show_problems(self, problems: list[Problem]) -> None:
        messages: dict[int, tuple[object, list[str]]] = {}
        for problem in problems:
            target = self._label_for(problem.field)
            messages.setdefault(id(target), (target, []))[1].append(problem.message)
        targets = [self.inputs_error, self.outputs_error, self.embed_error, self.extent_error, self.grid_error,
                   self.output_error, self.advanced_error, self.model_error] + list(self.input_list.rows) + \
            self.train_panel.message_labels()
        for target in targets:
            found = messages.get(id(target))
            text = "\n".join(dict.fromkeys(found[1])) if found else None
            if hasattr(target, "show_problem"):
                target.show_problem(text)
            else:
                target.show_message(text)
        if messages.get(id(self.advanced_error)):
            self.advanced_box.setCollapsed(False)
        if messages.get(id(self.extent_error)) and self.extent_box.isChecked():
            self.extent_box.setCollapsed(False)

    def _show_hints(self, choices: JobChoices) -> None:
        self.model_section.show_size_hint(choices.task, choices.outputs)
        self.area_section.show_grid_hint(choices.resolution)
        self.output_box.show_paths(output_paths(choices))

    def _show_summary(self, choices: JobChoices, problems: list[Problem]) -> None:
        if problems:
            count = len(problems)
            self.summary_label.setText(f"<span style='color:#c62828'>Fix {count} problem{'s' * (count > 1)} "
                                       f"marked above to run.</span>")
            return
        area = self.area_section.area_in_target(choices)
        what = {"generate": ", ".join(choices.outputs), "finetune": "a model trained on your labels"}.get(
            choices.task, "embeddings")
        ins = " + ".join(i.modality for i in choices.inputs)
        text = f"<b>Ready:</b> {ins} → {what}"
        if area is not None and choices.resolution > 0 and choices.task != "finetune":
            width, height = area.width() / choices.resolution, area.height() / choices.resolution
            tiles = tile_count(width, height, choices.window, choices.overlap)
            text += (f" · {int(round(width)):,} × {int(round(height)):,} px · {tiles:,} tile{'s' * (tiles > 1)}"
                     f" · {choices.model_size} model")
        self.summary_label.setText(text)

    # -- run --------------------------------------------------------------------------------------
    def _make_task(self, description: str, spec: dict):
        if self.task_factory is not None:
            return self.task_factory(description, spec, on_finished=self._job_finished)
        from .task import TerraMindTask

        return TerraMindTask(description, spec, on_finished=self._job_finished, iface=self.iface)

    def run(self) -> None:
        if self.refresh():
            return
        if self.task() == "finetune":   # the dialog stays open: its page shows the live curve
            choices = self.choices()
            self.train_panel.start(choices, self.inputs_section.layers())
            self._save_settings()
            return
        spec = self.jobspec()
        choices = self.choices()
        folder = output_folder(choices)
        try:
            os.makedirs(folder, exist_ok=True)   # the backend writes into existing folders only
        except OSError as exc:
            self.output_error.show_message(f"Cannot create {folder}: {exc.strerror}")
            self.run_button.setEnabled(False)
            return
        self._review(spec, lambda: self._queue(spec, choices))

    def _review(self, spec: dict, proceed) -> None:
        """Ask the backend about the job in the background; queue it, show its problem, or ask first."""
        def decide(verdict):
            self.tasks = [t for t in self.tasks if not _task_done(t)]
            self.run_button.setEnabled(not self.problems)
            if verdict and verdict.get("problems"):
                problem = verdict["problems"][0]
                self.show_backend_problem(problem.get("field"), problem.get("message", ""))
            elif verdict and verdict.get("confirm"):
                from .job_review import ask_run_anyway

                self.confirm_box = ask_run_anyway(self, verdict["confirm"], proceed)
            else:
                proceed()
        if self.review_factory is not None:
            review = self.review_factory(spec, decide)
        else:
            from .job_review import ReviewTask

            review = ReviewTask(spec, decide)
        self.run_button.setEnabled(False)   # one review at a time; decide() re-enables it
        self.tasks.append(review)
        QgsApplication.taskManager().addTask(review)

    def _queue(self, spec: dict, choices: JobChoices) -> None:
        what = ", ".join(choices.outputs) if choices.task == "generate" else "embeddings"
        task = self._make_task(f"TerraMind: {what} ({choices.job_name})", spec)
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        self._save_settings()
        if self.iface is not None and self.iface.messageBar() is not None:
            self.iface.messageBar().pushMessage("TerraMind", f"Job '{choices.job_name}' started; the layers "
                                                "appear when it is done.", Qgis.Info, 5)
        self._job_name = self._new_job_name()
        self.name_edit.setText(self._job_name)
        self.hide()

    def _job_finished(self, outcome=None, *_) -> None:
        self.tasks = [t for t in self.tasks if not _task_done(t)]
        if getattr(outcome, "kind", None) == "validation":
            self.show_backend_problem(getattr(outcome, "field", None), outcome.message)

    def show_backend_problem(self, field: str | None, message: str) -> None:
        """The backend refused the job: reopen the dialog with its message next to the widget at fault.
        It stays until the user changes something."""
        self._backend_problem = Problem(self._dialog_field(field, message), message)
        self.refresh()
        self.show()
        self.raise_()

    def _dialog_field(self, field: str | None, message: str = "") -> str:
        """Backend fields name inputs by modality ('inputs.S1RTC.bands'); the dialog's by row."""
        if not field:
            return "outputs"
        parts = field.split(".")
        if parts[0] == "inputs" and len(parts) > 1:
            row = next((r for r in self.input_list.rows if r.modality() == parts[1]), None)
            return ".".join(["inputs", row.row_id] + parts[2:]) if row is not None else "inputs"
        if parts[0] == "outputs" and self.task() != "finetune":
            return "output_dir" if "folder" in message.lower() else "outputs"
        return field

    # -- remembered choices -----------------------------------------------------------------------
    @staticmethod
    def _new_job_name() -> str:
        return time.strftime("terramind_%Y%m%d_%H%M%S")

    def _save_settings(self) -> None:
        settings = Settings()
        self.what_to_make.save(settings)   # task, outputs, TiM modalities, uncertainty
        dialog_fields.remember(self, settings)
        self.output_box.save(settings)     # temporary or folder

    def _restore_settings(self) -> None:
        settings = Settings()
        self.what_to_make.restore(settings)
        dialog_fields.recall(self, settings)
        self.output_box.restore(settings)

    def done(self, result: int) -> None:  # noqa: D401 (Qt override): remember choices on close too
        self._save_settings()
        super().done(result)


def _task_done(task) -> bool:
    try:
        return task.status() in (task.Complete, task.Terminated)
    except RuntimeError:  # the C++ task is already deleted
        return True
