"""The backend install, asked first and cancellable: the size estimate and free-space check shown in the
confirmation, and the small dialog that runs an ``InstallTask`` with its log, progress and a Cancel button.

Sizes are estimates (PyTorch's wheels change size between releases and platforms); they are rounded up
so the disk check errs on the safe side.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QMessageBox, QPlainTextEdit, QProgressBar,
                                 QVBoxLayout)

from .installer import InstallPlan, InstallTask

GIB = 1024 ** 3


@dataclass(frozen=True)
class SizeEstimate:
    download_gib: float   # what pip fetches
    disk_gib: float       # what the finished venv takes (plus pip's unpacking room)
    what: str


# torch + the backend's own dependencies (numpy, rasterio, huggingface_hub, safetensors: ~0.1 GiB)
_CPU = SizeEstimate(0.4, 1.5, "PyTorch CPU build")
_CUDA = SizeEstimate(3.5, 8.0, "PyTorch CUDA build (with NVIDIA's libraries)")
_NO_TORCH = SizeEstimate(0.1, 0.4, "the backend without PyTorch")


def size_estimate(plan: InstallPlan) -> SizeEstimate:
    if not plan.torch_requirement:
        return _NO_TORCH
    return _CUDA if plan.cuda else _CPU


def free_bytes(path: Path) -> int:
    """Free space where ``path`` will be created (measured on its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def space_problem(plan: InstallPlan, free: int) -> Optional[str]:
    """A refusal message when the target disk has less free space than the install needs, else None."""
    need = size_estimate(plan).disk_gib
    if free >= need * GIB:
        return None
    return (f"Not enough free disk space to install the backend: {plan.venv_dir} needs about {need:.1f} GiB "
            f"(an estimate), {free / GIB:.1f} GiB are free there. Free some space and try again, or choose an "
            "existing backend interpreter in the settings.")


def confirmation_text(plan: InstallPlan, free: int) -> str:
    estimate = size_estimate(plan)
    return (f"Install the TerraMind backend with {estimate.what}?\n\n"
            f"Download: about {estimate.download_gib:.1f} GiB (an estimate)\n"
            f"Disk space needed: about {estimate.disk_gib:.1f} GiB\n"
            f"Target folder: {plan.venv_dir}\n"
            f"Free there: {free / GIB:.1f} GiB\n\n"
            "The install runs in the background and can be cancelled.")


def ask_to_install(parent, plan: InstallPlan) -> bool:
    """Show the confirmation (or the refusal when space is short); True only when the user says Yes."""
    free = free_bytes(plan.venv_dir)
    problem = space_problem(plan, free)
    if problem:
        QMessageBox.warning(parent, "Install the TerraMind backend", problem)
        return False
    answer = QMessageBox.question(parent, "Install the TerraMind backend", confirmation_text(plan, free),
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class InstallDialog(QDialog):
    """Runs one InstallTask: pip's log, a progress bar, Cancel (stops the running step) and then Close.
    ``on_finished(ok, error, doctor)`` is the task's outcome, called once on the GUI thread."""

    def __init__(self, plan: InstallPlan, on_finished: Callable, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Installing the TerraMind backend")
        self._on_finished = on_finished
        self.outcome: Optional[tuple] = None
        layout = QVBoxLayout(self)
        self.status = QLabel(f"Installing into {plan.venv_dir} …")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.progress = QProgressBar()
        layout.addWidget(self.progress)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMinimumHeight(240)
        layout.addWidget(self.log)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self._cancel_or_close)
        layout.addWidget(self.buttons)
        self.resize(640, 420)
        self.task = InstallTask(plan, on_finished=self._done)
        self.task.line.connect(self.log.appendPlainText)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        QgsApplication.taskManager().addTask(self.task)

    @property
    def running(self) -> bool:
        return self.outcome is None

    def _cancel_or_close(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.accept()

    def cancel(self) -> None:
        self.status.setText("Cancelling: stopping the running step …")
        self.buttons.setEnabled(False)
        self.task.cancel()

    def reject(self) -> None:  # Esc / the window's close button: cancel first, close once it stopped
        self._cancel_or_close()

    def _done(self, ok: bool, error: Optional[str], doctor: Optional[dict]) -> None:
        self.outcome = (ok, error, doctor)
        self.status.setText("The backend is installed." if ok else f"Installation failed: {error}"
                            if error != InstallTask.CANCELLED else
                            "Installation cancelled: the environment is as it was before. Press “Install backend…” to start again.")
        self.progress.setValue(100 if ok else self.progress.value())
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)
        self.buttons.setEnabled(True)
        self._on_finished(ok, error, doctor)
