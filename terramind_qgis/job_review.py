"""Before the dialog queues a job: ask the backend what it thinks of the JobSpec (protocol ``validate``) in a
background task, so the GUI never waits on it, and let the user decide about what it asks to confirm.

The verdict is ``{"problems": [...], "confirm": [...]}`` (client.review). A backend that cannot be reached gives
no verdict: the job is queued anyway and its own task reports why it cannot run, as it always did."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtWidgets import QMessageBox

from .client import BackendClient, get_client
from .lifecycle import forget, quitting, track

Verdict = Optional[Dict[str, Any]]   # None: the backend could not be asked


class ReviewTask(QgsTask):
    """Sends the JobSpec to the backend's ``validate`` off the GUI thread; ``on_done(verdict)`` runs on it."""

    def __init__(self, spec: Dict[str, Any], on_done: Callable[[Verdict], None],
                 client: Optional[BackendClient] = None):
        super().__init__("TerraMind: checking the job", QgsTask.CanCancel)
        self.spec = spec
        self.on_done = on_done
        self.client = client or get_client()   # main thread: settings and token are read now
        self.verdict: Verdict = None
        track(self)

    def run(self) -> bool:
        try:
            self.verdict = self.client.review(self.spec)
        except Exception:  # noqa: BLE001 (no verdict: the job's own task reports what is wrong)
            self.verdict = None
        return True

    def finished(self, ok: bool) -> None:
        forget(self)
        if not quitting():
            self.on_done(self.verdict if ok else None)


def ask_run_anyway(parent, reasons, on_yes: Callable[[], None]) -> QMessageBox:
    """A window-modal question (it never blocks QGIS's event loop) listing why the job looks like a mistake;
    ``on_yes`` runs when the user chooses Run anyway."""
    box = QMessageBox(QMessageBox.Icon.Warning, "TerraMind: run this job?",
                      "This job looks like a mistake:\n• " + "\n• ".join(reasons) + "\n\nRun it anyway?",
                      QMessageBox.StandardButton.NoButton, parent)
    run = box.addButton("Run anyway", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.buttonClicked.connect(lambda button: on_yes() if button is run else None)
    box.open()
    return box
