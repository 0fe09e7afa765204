"""TerraMindTask: one job in QGIS's task manager.

``run()`` (worker thread) hands the JobSpec to the warm backend through ``BackendClient.run_job``
and turns its events into ``setProgress`` and log lines; it stores an outcome and never raises.
``finished()`` (main thread) adds the styled output layers, reports in the message bar and the
"TerraMind" log tab, and calls ``on_finished(outcome)``; ``place_layers`` replaces the new layer group. Cancelling the task (its × in the task
manager) sends ``cancel`` to the backend within 100 ms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from qgis.core import Qgis, QgsProject, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .client import BackendCancelled, BackendClient, BackendError, get_client
from .job_message import output_folder, push_job_message, take_down_qgis_notice, where_text
from .layers import add_layers, load_output_layers
from .lifecycle import consumed_by_shell, forget, quitting, track
from .log import log
from .settings import Settings
from .stages import JOB_STAGES, progress_text, stage_percent


@dataclass
class Done:
    result: Dict[str, Any]
    layers: List[Any] = field(default_factory=list)


@dataclass
class Failed:
    kind: str
    message: str
    field: Optional[str] = None
    detail: Optional[str] = None


@dataclass
class Cancelled:
    message: str = "Job cancelled."


class TerraMindTask(QgsTask):
    """Run one JobSpec and add its outputs as a layer group named ``group_name`` (default: description).
    While tiles run, the task manager shows ``<description> · tiles 9–16 of 36 · diffusion step 4/10 · ~2 min left``."""

    # worker thread -> main thread: the description is a plain member the task manager reads on the GUI thread
    progressTextChanged = pyqtSignal(str)

    def __init__(self, description: str, spec: Dict[str, Any],
                 on_finished: Optional[Callable[[Any], None]] = None, *, iface=None,
                 client: Optional[BackendClient] = None, group_name: Optional[str] = None,
                 project: Optional[QgsProject] = None, place_layers: Optional[Callable[[list], list]] = None):
        super().__init__(description, QgsTask.CanCancel)
        self.spec = spec
        self.on_finished = on_finished
        self.iface = iface
        self.client = client or get_client()  # here, on the main thread: settings and token are read now
        self.group_name = group_name or description
        self.project = project
        self.place_layers = place_layers  # instead of a new group: e.g. find-similar puts its layer above the embeddings
        self.dem_hillshade = Settings().dem_hillshade  # read on the main thread, used in run()
        self.outcome: Any = None
        track(self)  # QGIS quitting cancels it and silences its reports (lifecycle.py)
        self._stage: Optional[str] = None
        self.title = description  # the description without the live progress text
        self.progressTextChanged.connect(self._show_progress_text)

    # -- worker thread --------------------------------------------------------------------
    def run(self) -> bool:
        try:
            return self._run()
        finally:
            self.progressTextChanged.emit("")   # the plain title again, before finished() and QGIS's notice

    def _run(self) -> bool:
        try:
            result = self.client.run_job(self.spec, on_event=self._on_event, is_cancelled=self._stop_requested)
        except BackendCancelled as exc:
            self.outcome = Cancelled(exc.message)
            return False
        except BackendError as exc:
            self.outcome = Failed(exc.kind, exc.message, exc.field, exc.detail)
            return False
        except Exception as exc:  # never let an exception escape into the task manager
            self.outcome = Failed("runtime", f"{type(exc).__name__}: {exc}")
            return False
        try:  # opening and styling the rasters here keeps the GUI thread free in finished()
            layers = load_output_layers(result, hillshade=self.dem_hillshade)
        except Exception as exc:
            self.outcome = Failed("runtime", f"The job ran, but its outputs could not be opened: {exc}")
            return False
        self.outcome = Done(result, layers)
        return True

    def _stop_requested(self) -> bool:
        return self.isCanceled() or quitting()

    def _on_event(self, event: Dict[str, Any]) -> None:
        if consumed_by_shell(event):
            return
        stage, percent = stage_percent(event, JOB_STAGES, "tiles")
        self.setProgress(percent)
        if stage == "tiles":
            self.progressTextChanged.emit(progress_text(event))
        if stage != self._stage:
            self._stage = stage
            if event.get("message"):
                log(f"{self.title}: {event['message']}")

    def _show_progress_text(self, text: str) -> None:  # main thread (queued from run())
        self.setDescription(f"{self.title} \u00b7 {text}" if text else self.title)

    # -- main thread ----------------------------------------------------------------------
    def finished(self, ok: bool) -> None:
        forget(self)
        if quitting():  # QGIS is quitting: iface, message bar, log and the caller's widgets may be gone
            return
        outcome = self.outcome
        if outcome is None:  # cancelled before run() started
            outcome = self.outcome = Cancelled("Job cancelled before it started.")
        if isinstance(outcome, Done):
            try:
                if self.place_layers is not None:
                    outcome.layers = self.place_layers(outcome.layers)
                else:
                    outcome.layers = add_layers(outcome.layers, self.group_name, self.project)
            except Exception as exc:
                outcome = self.outcome = Failed("runtime", f"The job ran, but its outputs could not be added: {exc}")
        self._report(outcome)
        if self.on_finished is not None:
            self.on_finished(outcome)

    def _report(self, outcome) -> None:
        name, folder = self.title, None
        if isinstance(outcome, Done):
            seconds = outcome.result.get("elapsed_s")
            took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
            made = ", ".join(layer.name() for layer in outcome.layers)
            folder = output_folder(o.get("path", "") for o in outcome.result.get("outputs", []))
            where = where_text(folder)
            text = (f"{len(outcome.layers)} layer(s) added{f' ({made})' if made else ''}{took}"
                    f"{f' · {where}' if where else ''}.")
            level, bar_level = "success", Qgis.Success
        elif isinstance(outcome, Cancelled):
            text, level, bar_level = outcome.message, "info", Qgis.Info
        else:
            where = f" ({outcome.field})" if outcome.field else ""
            text, level, bar_level = f"failed{where}: {outcome.message}", "error", Qgis.Critical
            if outcome.detail:
                log(outcome.detail, "info")
        log(f"{name}: {text}", level)
        if self.iface is not None:
            bar = self.iface.messageBar()
            take_down_qgis_notice(bar, self.description())
            # The bar shows the first line; the full message (stderr tail) is in the log tab.
            push_job_message(bar, name, text.splitlines()[0], bar_level, folder)
