"""Settings and backend dialog: interpreter, device, weights cache, offline mode, HF token, tiling,
DEM hillshade; a backend check (``terramind doctor --json``) and the one-click install (asked first, run in
``install_dialog.InstallDialog``).

Everything slow runs in QgsTasks (doctor, probing for a base Python and a GPU, install); the dialog only
moves values between widgets and ``Settings``. The token field is never pre-filled: a stored token shows as a placeholder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                                 QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                                 QSpinBox, QVBoxLayout, QWidget)

from .settings import Settings, Tiling, inherited_hf_settings
from .vocabulary import DEVICES

STORED_IN_AUTH_DB_HINT = "stored in the QGIS authentication database — type to replace"
_DEFAULT_CACHE_HINT = "Hugging Face default (~/.cache/huggingface/hub)"


class DoctorTask(QgsTask):
    """``<interpreter> -m terramind_backend doctor --json`` in the background."""

    def __init__(self, interpreter: str, env: dict, on_finished):
        super().__init__("Check the TerraMind backend", QgsTask.CanCancel)
        self.interpreter, self.env, self.on_finished = interpreter, env, on_finished
        self.info: Optional[dict] = None
        self.error: Optional[str] = None

    def run(self) -> bool:
        try:
            flags = 0x08000000 if sys.platform == "win32" else 0
            done = subprocess.run(  # nosec B603: argv list, no shell; the configured backend interpreter
                [self.interpreter, "-m", "terramind_backend", "doctor", "--json"],
                capture_output=True, text=True, env=self.env, timeout=300, creationflags=flags)
        except (OSError, subprocess.SubprocessError) as exc:
            self.error = f"Could not run {self.interpreter}: {exc}"
            return False
        if done.returncode != 0:
            self.error = (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"
            return False
        try:
            self.info = json.loads(done.stdout[done.stdout.index("{"):])
        except ValueError:
            self.error = f"Unexpected doctor output: {done.stdout[:500]}"
            return False
        return True

    def finished(self, ok: bool) -> None:
        self.on_finished(self.info, self.error)


def describe_doctor(info: dict) -> str:
    """Human-readable lines for the doctor report (shown in the dialog)."""
    lines = [f"Backend {info.get('terramind_backend')}  ·  Python {info.get('python')}  ·  torch {info.get('torch')}",
             f"rasterio {info.get('rasterio')} / GDAL {info.get('gdal')}  ·  huggingface_hub {info.get('huggingface_hub')}"]
    if info.get("cuda"):
        lines += [f"Device: cuda:{g['index']} {g['name']} ({g['memory_gib']} GiB)" for g in info["cuda"]]
    elif info.get("mps"):
        lines.append("Device: mps (Apple Metal)")
    else:
        lines.append("Device: CPU only (no CUDA GPU or Apple Metal found)")
    lines.append(f"Weights cache: {info.get('hf_cache')}  ·  offline: {'yes' if info.get('hf_offline') else 'no'}"
                 f"  ·  HF token: {'set' if info.get('hf_token') else 'not set'}")
    cached = info.get("cached_weights") or []
    lines.append(f"Cached weights: {len(cached)}" + ("" if cached else " (they download on first use)"))
    lines += [f"  {c['name']}  ({c['size_mb']:.0f} MB)" for c in cached]
    return "\n".join(lines)


class SettingsDialog(QDialog):
    def __init__(self, parent=None, settings: Optional[Settings] = None):
        super().__init__(parent)
        self.setWindowTitle("TerraMind — settings and backend")
        self.settings = settings or Settings()
        self._tasks = []  # keep running tasks referenced until they finish
        self._build()
        self.load()

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)

        backend = QGroupBox("Backend")
        form = QFormLayout(backend)
        self.interpreter = QLineEdit()
        self.interpreter.setPlaceholderText("automatic")
        self.interpreter.setToolTip("Python of the environment where terramind-backend is installed. Empty: "
                                    "$TERRAMIND_BACKEND_PYTHON, then the environment installed below.")
        form.addRow("Python interpreter", self._with_browse(self.interpreter, self._browse_interpreter))
        self.resolved = QLabel()
        self.resolved.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("", self.resolved)
        self.device = QComboBox()
        for choice in DEVICES:
            self.device.addItem(choice.label, choice.value)
        form.addRow("Device", self.device)
        self.ray_address = QLineEdit()
        self.ray_address.setPlaceholderText("none: jobs run in the backend process")
        self.ray_address.setToolTip("HOST:PORT of a Ray cluster's head: dialog and Processing jobs then run on the "
                                    "cluster (the backend needs the [ray] extra; see docs/scale.md)")
        form.addRow("Ray cluster", self.ray_address)
        root.addWidget(backend)

        weights = QGroupBox("Model weights (Hugging Face)")
        form = QFormLayout(weights)
        self.cache_dir = QLineEdit()
        self.cache_dir.setPlaceholderText(_DEFAULT_CACHE_HINT)
        form.addRow("Cache folder", self._with_browse(self.cache_dir, self._browse_cache))
        self.offline = QCheckBox("Offline: use cached weights only, never download")
        form.addRow("", self.offline)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.clear_token = QPushButton("Remove")
        self.clear_token.clicked.connect(self._remove_token)
        row = QHBoxLayout()
        row.addWidget(self.token)
        row.addWidget(self.clear_token)
        form.addRow("Access token", self._wrap(row))
        root.addWidget(weights)

        tiling = QGroupBox("Default tiling")
        form = QFormLayout(tiling)
        self.window = self._spin(32, 2048, 16, " px")
        self.overlap = self._spin(0, 1024, 8, " px")
        self.batch = self._spin(1, 256, 1, "")
        form.addRow("Window", self.window)
        form.addRow("Overlap", self.overlap)
        form.addRow("Batch size", self.batch)
        root.addWidget(tiling)

        results = QGroupBox("Results")
        box = QVBoxLayout(results)
        self.dem_hillshade = QCheckBox("Add a hillshade under generated DEMs")
        self.dem_hillshade.setToolTip("Generated elevation gets a second layer, shaded relief, below the colour "
                                      "layer, which multiplies onto it so the terrain shows through.")
        box.addWidget(self.dem_hillshade)
        root.addWidget(results)

        status = QGroupBox("Backend status and installation")
        box = QVBoxLayout(status)
        buttons = QHBoxLayout()
        self.check_button = QPushButton("Check backend")
        self.check_button.clicked.connect(self.check_backend)
        self.install_button = QPushButton("Install backend…")
        self.install_button.setToolTip("Create a Python environment in the QGIS profile and install PyTorch "
                                       "(CUDA build when an NVIDIA GPU is present) and the TerraMind backend.")
        self.install_button.clicked.connect(self.install_backend)
        self.torch_pin = QLineEdit()
        self.torch_pin.setToolTip("pip requirement for PyTorch used by the installer")
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.install_button)
        buttons.addWidget(QLabel("PyTorch:"))
        buttons.addWidget(self.torch_pin)
        box.addLayout(buttons)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setMinimumHeight(160)
        self.report.setPlaceholderText("Press “Check backend” to see versions, the device and cached weights.")
        box.addWidget(self.report)
        root.addWidget(status)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        root.addWidget(self.buttons)
        self.resize(620, 680)

    @staticmethod
    def _spin(low, high, step, suffix) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setSuffix(suffix)
        return spin

    @staticmethod
    def _wrap(layout) -> QWidget:
        layout.setContentsMargins(0, 0, 0, 0)
        widget = QWidget()
        widget.setLayout(layout)
        return widget

    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        row = QHBoxLayout()
        row.addWidget(edit)
        button = QPushButton("…")
        button.setFixedWidth(32)
        button.clicked.connect(slot)
        row.addWidget(button)
        return self._wrap(row)

    def _browse_interpreter(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Backend Python interpreter", self.interpreter.text())
        if path:
            self.interpreter.setText(path)

    def _browse_cache(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Hugging Face cache folder", self.cache_dir.text())
        if path:
            self.cache_dir.setText(path)

    # -- values ---------------------------------------------------------------------------
    def load(self) -> None:
        s = self.settings
        self.interpreter.setText(s.backend_python)
        if self.device.findData(s.device) < 0:  # e.g. cuda:1
            self.device.addItem(s.device, s.device)
        self.device.setCurrentIndex(self.device.findData(s.device))
        self.cache_dir.setText(s.cache_dir)
        self.offline.setChecked(s.offline)
        self._show_inherited_hf()
        self.ray_address.setText(s.ray_address)
        self.token.clear()
        self.token.setPlaceholderText(STORED_IN_AUTH_DB_HINT if s.token_config_id else "hf_… (only for gated or private models)")
        self.clear_token.setEnabled(bool(s.token_config_id))
        t = s.tiling
        self.window.setValue(t.window)
        self.overlap.setValue(t.overlap)
        self.batch.setValue(t.batch_size)
        self.dem_hillshade.setChecked(s.dem_hillshade)
        self.torch_pin.setText(s.torch_pin)
        resolved = s.resolve_interpreter()
        self.resolved.setText(f"Using: {resolved}" if resolved else
                              "No backend found yet: install it below or choose an interpreter.")

    def _show_inherited_hf(self) -> None:
        """Empty fields show what is in effect: the cache and offline mode QGIS's environment gives the backend."""
        cache, offline = inherited_hf_settings()
        self.cache_dir.setPlaceholderText(f"{cache[1]} (from {cache[0]})" if cache else _DEFAULT_CACHE_HINT)
        if offline:
            self.offline.setChecked(True)
            self.offline.setEnabled(False)
            self.offline.setToolTip("HF_HUB_OFFLINE is set in QGIS's environment: the backend runs offline; "
                                    "unset it and restart QGIS to allow downloads")

    def save(self) -> None:
        s = self.settings
        s.backend_python = self.interpreter.text().strip()
        s.device = self.device.currentData()
        s.cache_dir = self.cache_dir.text().strip()
        if self.offline.isEnabled():   # disabled: QGIS's environment decides, the stored choice stays
            s.offline = self.offline.isChecked()
        s.ray_address = self.ray_address.text()
        s.tiling = Tiling(self.window.value(), self.overlap.value(), self.batch.value())
        s.dem_hillshade = self.dem_hillshade.isChecked()
        s.torch_pin = self.torch_pin.text().strip()
        if self.token.text().strip():
            s.set_hf_token(self.token.text().strip())
            self.token.clear()

    def accept(self) -> None:
        try:
            self.save()
        except (ValueError, RuntimeError) as exc:
            self.report.setPlainText(f"Not saved: {exc}")
            return
        super().accept()

    def _remove_token(self) -> None:
        self.settings.set_hf_token(None)
        self.load()

    # -- background work ------------------------------------------------------------------
    def _start(self, task: QgsTask) -> None:
        self._tasks.append(task)
        QgsApplication.taskManager().addTask(task)

    def check_backend(self) -> None:
        interpreter = self.interpreter.text().strip() or self.settings.resolve_interpreter()
        if not interpreter:
            self.report.setPlainText("No backend interpreter found. Press “Install backend…”, or choose the "
                                     "Python of an environment where terramind-backend is installed.")
            return
        self.check_button.setEnabled(False)
        self.report.setPlainText(f"Running {interpreter} -m terramind_backend doctor --json …")
        env = self.settings.backend_environment()
        self._start(DoctorTask(interpreter, env, self._doctor_done))

    def _doctor_done(self, info: Optional[dict], error: Optional[str]) -> None:
        self.check_button.setEnabled(True)
        self.doctor_info = info
        self.report.setPlainText(describe_doctor(info) if info else f"The backend check failed:\n{error}")

    def install_backend(self) -> None:
        """Probe (in a task) → ask (size, folder, free space) → run in the install dialog."""
        from .installer import ProbeTask

        self.settings.torch_pin = self.torch_pin.text().strip()
        self.install_button.setEnabled(False)
        self.report.setPlainText("Looking for a Python to build the backend environment from, and for a GPU …")
        self._start(ProbeTask(self._install_probed))

    def _install_probed(self, base_python: Optional[str], cuda: bool) -> None:
        from .install_dialog import InstallDialog, ask_to_install
        from .installer import NO_BASE_PYTHON, InstallPlan

        if base_python is None:
            self.install_button.setEnabled(True)
            self.report.setPlainText(NO_BASE_PYTHON)
            return
        plan = InstallPlan.default(self.settings, cuda=cuda, base_python=base_python)
        if not ask_to_install(self, plan):
            self.install_button.setEnabled(True)
            self.report.setPlainText("The backend was not installed.")
            return
        self.report.setPlainText(f"Installing the backend into {plan.venv_dir} (see the install window) …")
        self.install_dialog = InstallDialog(plan, self._install_done, parent=self)
        self.install_dialog.show()

    def _install_done(self, ok: bool, error: Optional[str], doctor: Optional[dict]) -> None:
        self.install_button.setEnabled(True)
        if ok:
            self.report.setPlainText("The backend is installed.\n" + (describe_doctor(doctor) if doctor else ""))
            self.load()
        else:
            self.report.setPlainText(f"Installation failed: {error}")
