"""One-click backend install: a venv outside the plugin folder, torch + the bundled backend, verified.

The venv lives in the QGIS profile (``<profile>/terramind/venv``), so plugin updates keep it; it is
created from a system Python, never QGIS's own site-packages, and pip runs in a clean environment
(QGIS's PYTHONPATH would otherwise leak its packages into the venv). ``InstallPlan`` only builds
command lines (tested without running them); ``InstallTask`` runs them in a QgsTask and streams
every output line through its ``line`` signal, so the install dialog can show pip's log live.
``ProbeTask`` looks for a base Python and a GPU in the background (both run subprocesses that can take
seconds). Cancelling stops the running step's whole process group; a venv this run created is then
removed again, so a half-made environment never passes for an installed backend.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .pip_output import failure_message, summarise_line
from .paths import BACKEND_SRC_DIR
from .settings import clean_environment, installer_venv_dir, venv_python

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"
MIN_PYTHON = (3, 9)
NO_BASE_PYTHON = ("No Python 3.9 or newer was found to create the backend environment. Install Python from "
                  "python.org (or your package manager) and try again, or choose an existing backend interpreter "
                  "in the settings.")


def cuda_available(nvidia_smi: Optional[str] = None) -> bool:
    """True when ``nvidia-smi -L`` runs and lists a GPU (the driver is there, so a CUDA torch is useful)."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=15)  # nosec B603: argv, no shell
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def find_base_python() -> Optional[str]:
    """A system Python ≥ 3.9 to create the venv from (QGIS's own executable is often qgis itself)."""
    names = ["python3.12", "python3.11", "python3.10", "python3", "python"]
    candidates = [shutil.which(n) for n in names]
    if sys.platform == "win32":  # OSGeo4W/standalone QGIS ship python.exe in their Python prefix
        candidates.append(str(Path(sys.base_prefix) / "python.exe"))
    for exe in candidates:
        if exe and Path(exe).is_file() and _python_version(exe) >= MIN_PYTHON:
            return exe
    return None


def _python_version(exe: str) -> tuple:
    try:
        out = subprocess.run(  # nosec B603: argv list, no shell; a candidate system Python
            [exe, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True, text=True, timeout=20, env=clean_environment(os.environ))
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return (0, 0)


def default_torch_index(cuda: bool, platform: str = sys.platform) -> Optional[str]:
    """Extra pip index for torch: PyPI's Linux wheel already is the CUDA build, the others are CPU-only
    (Windows) or the right one (macOS)."""
    if platform == "darwin":
        return None
    if cuda:
        return None if platform.startswith("linux") else TORCH_CUDA_INDEX
    return TORCH_CPU_INDEX


@dataclass
class InstallPlan:
    """What the installer runs, as argument lists."""

    venv_dir: Path
    base_python: str
    torch_requirement: Optional[str] = "torch==2.13.0"   # None: leave torch out (tests, offline reuse)
    torch_index: Optional[str] = None                     # extra index URL for torch, None = pip's config
    backend_src: Path = BACKEND_SRC_DIR
    backend_deps: bool = True                             # False: --no-deps (tests)
    verify_with_doctor: bool = True
    pip_options: List[str] = field(default_factory=list)
    cuda: bool = False                                    # an NVIDIA GPU was found: torch is the CUDA build

    @classmethod
    def default(cls, settings=None, cuda: Optional[bool] = None, base_python: Optional[str] = None) -> "InstallPlan":
        """The plan for this machine; ``cuda``/``base_python`` pass in what a ``ProbeTask`` found (else probed here)."""
        from .settings import Settings

        settings = settings or Settings()
        cuda = cuda_available() if cuda is None else cuda
        base = base_python or find_base_python()
        if base is None:
            raise RuntimeError(NO_BASE_PYTHON)
        index = settings._get("install/torch_index", "auto")
        return cls(venv_dir=installer_venv_dir(), base_python=base, torch_requirement=settings.torch_pin or None,
                   torch_index=default_torch_index(cuda) if index == "auto" else (index or None), cuda=cuda)

    @property
    def python(self) -> Path:
        return venv_python(self.venv_dir)

    def steps(self, backend_src: Optional[Path] = None) -> List[tuple]:
        """[(title, argv), …] in order (``backend_src`` overrides where the backend is installed from)."""
        py = str(self.python)
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", *self.pip_options]
        steps = [("Create the backend environment", [self.base_python, "-m", "venv", str(self.venv_dir)])]
        if self.torch_requirement:
            torch = pip + [self.torch_requirement]
            if self.torch_index:
                torch += ["--extra-index-url", self.torch_index]
            steps.append(("Install PyTorch", torch))
        backend = pip + ["--upgrade", str(backend_src or self.backend_src)]
        if not self.backend_deps:
            backend.append("--no-deps")
        steps.append(("Install the TerraMind backend", backend))
        steps.append(("Check the backend", [py, "-m", "terramind_backend", "--version"]))
        if self.verify_with_doctor:
            steps.append(("Run terramind doctor", [py, "-m", "terramind_backend", "doctor", "--json"]))
        return steps

    def check(self, plugin_dir: Path = Path(__file__).resolve().parent) -> None:
        """Refuse plans that would put the venv inside the plugin folder (lost on update)."""
        venv = Path(self.venv_dir).resolve()
        if venv == plugin_dir or plugin_dir in venv.parents:
            raise ValueError(f"The backend environment must live outside the plugin folder ({plugin_dir}).")


class ProbeTask(QgsTask):
    """Find a base Python and whether an NVIDIA GPU is there, off the GUI thread;
    ``on_finished(base_python or None, cuda)`` runs on the GUI thread."""

    def __init__(self, on_finished):
        super().__init__("Prepare the TerraMind backend install", QgsTask.Flag(0))
        self.on_finished = on_finished
        self.base_python: Optional[str] = None
        self.cuda = False

    def run(self) -> bool:
        self.base_python = find_base_python()
        self.cuda = cuda_available()
        return True

    def finished(self, ok: bool) -> None:
        self.on_finished(self.base_python, self.cuda)


class InstallTask(QgsTask):
    """Run an InstallPlan in the background; ``line`` carries every output line (connect it in the GUI)."""

    line = pyqtSignal(str)
    CANCELLED = "Installation cancelled."

    def __init__(self, plan: InstallPlan, on_finished=None):
        super().__init__("Install the TerraMind backend", QgsTask.CanCancel)
        self.plan = plan
        self.on_finished = on_finished
        self.error: Optional[str] = None
        self.doctor: Optional[dict] = None
        self._proc: Optional[subprocess.Popen] = None

    def run(self) -> bool:
        try:
            self.plan.check()
            env = clean_environment(os.environ)
            with tempfile.TemporaryDirectory(prefix="terramind-install-") as scratch:
                # pip builds in the source folder; the plugin folder may be read-only, so build a copy
                source = Path(scratch) / "backend"
                shutil.copytree(self.plan.backend_src, source,
                                ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
                return self._run_steps_or_clean_up(self.plan.steps(source), env)
        except Exception as exc:  # reported in finished(), never raised into the task manager
            self.error = f"{type(exc).__name__}: {exc}"
            return False

    def _run_steps_or_clean_up(self, steps, env) -> bool:
        """Run the steps; when they fail or are cancelled, remove the venv if this run created it (the
        interpreter lookup takes the installer's venv when its python exists, ready or not)."""
        existed = Path(self.plan.venv_dir).exists()
        ok = False
        try:
            ok = self._run_steps(steps, env)
        finally:
            if not ok and not existed and Path(self.plan.venv_dir).exists():
                shutil.rmtree(self.plan.venv_dir, ignore_errors=True)
                self.line.emit(f"Removed the unfinished environment {self.plan.venv_dir}.")
        return ok

    def _run_steps(self, steps, env) -> bool:
        for number, (title, argv) in enumerate(steps):
            if self.isCanceled():
                self.error = self.CANCELLED
                return False
            if number == 0 and self.plan.python.is_file():
                self.line.emit(f"== {title}: {self.plan.venv_dir} exists, reusing it")
                continue
            self.line.emit(f"== {title}\n$ {' '.join(argv)}")
            output = self._run(argv, env)
            if self.isCanceled():
                self.error = self.CANCELLED
                return False
            if self._proc.returncode != 0:
                self.error = failure_message(title, self._proc.returncode, output)
                return False
            if argv[-2:] == ["doctor", "--json"]:
                self.doctor = json.loads(output[output.index("{"):])
            self.setProgress(100.0 * (number + 1) / len(steps))
        return True

    def _run(self, argv: Sequence[str], env) -> str:
        windows = sys.platform == "win32"
        # own process group (POSIX: session), so Cancel also stops pip's build subprocesses holding the pipe
        flags = (0x08000000 | subprocess.CREATE_NEW_PROCESS_GROUP) if windows else 0
        self._proc = subprocess.Popen(  # nosec B603: argv list, no shell; our install steps
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
            bufsize=1, creationflags=flags, start_new_session=not windows)
        if self.isCanceled():  # cancelled while it started
            _stop(self._proc)
        captured = []
        for text in self._proc.stdout:
            captured.append(text)
            self.line.emit(summarise_line(text.rstrip("\n")))
            if self.isCanceled():
                _stop(self._proc)
                break
        self._proc.wait()
        self._proc.stdout.close()
        return "".join(captured)

    def cancel(self) -> None:
        super().cancel()
        if self._proc is not None:
            _stop(self._proc)

    def finished(self, ok: bool) -> None:
        if ok:
            from .settings import Settings

            Settings().backend_python = str(self.plan.python)
        if self.on_finished is not None:
            self.on_finished(ok, self.error, self.doctor)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a running step and everything it started (its process group on POSIX)."""
    if proc.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            proc.terminate()
        else:
            os.killpg(proc.pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass
