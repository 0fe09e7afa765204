"""FinetuneTask: training in QGIS's task manager, with live progress for the dialog's curve.

``run()`` (worker thread) writes the labels snapshot to a file, builds the finetune JobSpec and runs it on the
warm backend; every training step moves the task's progress (QGIS's task manager derives the remaining time
from it) and is re-emitted as ``stepped``; every finished epoch is emitted as ``epochFinished`` (its metrics
dict). ``finished()`` (main thread) reports in the message bar, with buttons to open the report and to apply
the model, and calls ``on_finished(outcome)``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from typing import Any, Callable, Dict, Optional

from qgis.core import Qgis, QgsTask
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton

from ..client import BackendCancelled, BackendClient, BackendError, get_client
from ..lifecycle import consumed_by_shell, forget, quitting, track
from ..log import log
from ..stages import TRAIN_STAGES, stage_percent
from ..task import Cancelled, Done, Failed
from .spec import FinetuneChoices, build_finetune_spec


def output_of(result: Dict[str, Any], kind: str) -> Optional[str]:
    """The path of the result output of ``kind`` (checkpoint, metrics, report), or None."""
    return next((o.get("path") for o in result.get("outputs") or [] if o.get("kind") == kind), None)


def eta_text(seconds) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s left"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min left"


class FinetuneTask(QgsTask):
    """Train one model. ``snapshots`` holds one ``labels.LabelsSnapshot`` per scene of ``choices``."""

    stepped = pyqtSignal(dict)          # every progress event (stage, done/total, eta_s, message …)
    epochFinished = pyqtSignal(dict)    # the metrics of each finished epoch (docs/finetune.md)

    def __init__(self, description: str, choices: FinetuneChoices, snapshots: list,
                 on_finished: Optional[Callable[[Any], None]] = None, *, iface=None,
                 client: Optional[BackendClient] = None, on_apply: Optional[Callable[[], None]] = None):
        super().__init__(description, QgsTask.CanCancel)
        self.choices = choices
        self.snapshots = snapshots
        self.on_finished = on_finished
        self.on_apply = on_apply
        self.iface = iface
        self.client = client or get_client()   # on the main thread: settings and token are read now
        self.spec: Optional[Dict[str, Any]] = None
        self.outcome: Any = None
        track(self)  # QGIS quitting cancels it and silences its reports (lifecycle.py)
        self.labels_folder = tempfile.mkdtemp(prefix="terramind-labels-")

    # -- worker thread --------------------------------------------------------------------
    def run(self) -> bool:
        try:
            scenes = [replace(scene, labels=snapshot.jobspec(snapshot.write(
                os.path.join(self.labels_folder, str(i)), self)))
                for i, (scene, snapshot) in enumerate(zip(self.choices.scenes, self.snapshots))]
            if self.isCanceled():
                self.outcome = Cancelled("Training cancelled before it started; nothing was written.")
                return False
            self.spec = build_finetune_spec(replace(self.choices, scenes=scenes))
            result = self.client.run_job(self.spec, on_event=self._on_event, is_cancelled=self._stop_requested)
        except BackendCancelled as exc:
            self.outcome = Cancelled(exc.message)
            return False
        except BackendError as exc:
            self.outcome = Failed(exc.kind, exc.message, exc.field, exc.detail)
            return False
        except Exception as exc:  # noqa: BLE001 (labels could not be written, a bad spec: never escape a task)
            self.outcome = Failed("runtime", f"{type(exc).__name__}: {exc}")
            return False
        finally:
            shutil.rmtree(self.labels_folder, ignore_errors=True)
        self.outcome = Done(result)
        return True

    def _stop_requested(self) -> bool:
        return self.isCanceled() or quitting()

    def _on_event(self, event: Dict[str, Any]) -> None:
        if consumed_by_shell(event):
            return
        self.setProgress(stage_percent(event, TRAIN_STAGES, "train")[1])
        self.stepped.emit(dict(event))
        metrics = event.get("metrics")
        if isinstance(metrics, dict):
            self.epochFinished.emit(dict(metrics))
            log(f"{self.description()}: {event.get('message', '')}")

    # -- main thread ----------------------------------------------------------------------
    def finished(self, ok: bool) -> None:
        forget(self)
        if quitting():  # QGIS is quitting: iface, message bar, log and the caller's widgets may be gone
            return
        outcome = self.outcome
        if outcome is None:
            outcome = self.outcome = Cancelled("Training cancelled before it started; nothing was written.")
        try:
            self._report(outcome)
        finally:   # the dialog must hear of the end even if the message bar failed
            if self.on_finished is not None:
                self.on_finished(outcome)

    def _report(self, outcome) -> None:
        name = self.description()
        if isinstance(outcome, Done):
            text = summary(outcome.result)
            log(f"{name}: {text}", "success")
            self._push_done(name, text, outcome.result)
            return
        if isinstance(outcome, Cancelled):
            text, level, bar = f"{name}: {outcome.message}", "info", Qgis.Info
        else:
            where = f" ({outcome.field})" if outcome.field else ""
            text, level, bar = f"{name} failed{where}: {outcome.message}", "error", Qgis.Critical
            if outcome.detail:
                log(outcome.detail, "info")
        log(text, level)
        if self.iface is not None:
            self.iface.messageBar().pushMessage("TerraMind", text.splitlines()[0], bar, 10)

    def _push_done(self, name: str, text: str, result: Dict[str, Any]) -> None:
        if self.iface is None:
            return
        bar = self.iface.messageBar()
        if not hasattr(bar, "pushWidget"):   # a minimal message bar (tests' iface): text only
            bar.pushMessage("TerraMind", f"{name}: {text}", Qgis.Success, 0)
            return
        item = QgsMessageBar.createMessage("TerraMind", f"{name}: {text}")
        report = output_of(result, "report")
        if report:
            button = QPushButton("Open report")
            button.clicked.connect(lambda: open_file(report))
            item.layout().addWidget(button)
        if self.on_apply is not None:
            button = QPushButton("Apply to map")
            button.setToolTip("Segment the inputs with the new model and add the class layer")
            button.clicked.connect(self.on_apply)
            item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.Success, 0)


def summary(result: Dict[str, Any]) -> str:
    """'Model saved to /abs/model.ckpt · best validation mIoU 0.71 (epoch 9 of 12)'."""
    checkpoint = output_of(result, "checkpoint") or "?"
    text = f"model saved to {checkpoint}"
    miou, best, run = result.get("best_val_miou"), result.get("best_epoch"), result.get("epochs_run")
    if isinstance(miou, (int, float)):
        text += f" · best validation mIoU {miou:.3f}"
        if best:
            text += f" (epoch {best}{f' of {run}' if run else ''})"
    if result.get("stopped") == "early_stopping":
        text += " · stopped early"
    return text


def open_file(path: str) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(path))
