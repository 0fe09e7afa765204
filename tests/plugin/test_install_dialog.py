"""The backend install is asked first (size estimate, target folder, free space), refused when space is short,
probes for Python/GPU off the GUI thread, and runs in a dialog whose Cancel stops the running step promptly."""
from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

from qgis.PyQt.QtWidgets import QDialogButtonBox, QMessageBox

from terramind_qgis import install_dialog, installer
from terramind_qgis.install_dialog import GIB, InstallDialog, ask_to_install, free_bytes, space_problem
from terramind_qgis.installer import InstallPlan, InstallTask
from terramind_qgis.settings_dialog import SettingsDialog


def fake_exe(folder: Path, name: str, script: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_the_question_comes_first_and_no_runs_nothing(settings, qtbot, monkeypatch, tmp_path):
    probed_on = {}
    venv = tmp_path / "profile" / "terramind" / "venv"

    def probe(name, result):
        def run(*_):
            probed_on[name] = threading.current_thread() is threading.main_thread()
            return result
        return run

    monkeypatch.setattr(installer, "find_base_python", probe("python", sys.executable))
    monkeypatch.setattr(installer, "cuda_available", probe("gpu", True))
    monkeypatch.setattr(installer, "installer_venv_dir", lambda: venv)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text)
                        or QMessageBox.StandardButton.No)
    monkeypatch.setattr(install_dialog, "free_bytes", lambda path: 500 * GIB)
    started = []
    monkeypatch.setattr(install_dialog, "InstallTask", lambda *a, **k: started.append(a))
    dialog = SettingsDialog(settings=settings)
    dialog.install_backend()
    assert not dialog.install_button.isEnabled() and not asked   # probing runs in a task: nothing asked yet
    qtbot.waitUntil(lambda: bool(asked), timeout=20_000)
    assert probed_on == {"python": False, "gpu": False}          # both probes ran off the GUI thread
    text = asked[0]
    assert "CUDA build" in text and "about 3.5 GiB (an estimate)" in text
    assert f"Target folder: {venv}" in text and "Free there: 500.0 GiB" in text
    assert started == [] and not venv.parent.exists()             # "No": nothing ran, nothing was made
    assert dialog.install_button.isEnabled() and dialog.report.toPlainText() == "The backend was not installed."


def test_too_little_free_space_is_refused_before_asking(qgis_app, monkeypatch, tmp_path):
    plan = InstallPlan(venv_dir=tmp_path / "a" / "b" / "venv", base_python=sys.executable, cuda=True)
    assert abs(free_bytes(plan.venv_dir) - shutil.disk_usage(tmp_path).free) < 256 * 1024 ** 2
    assert space_problem(plan, 100 * GIB) is None
    problem = space_problem(plan, 2 * GIB)
    assert problem.startswith("Not enough free disk space") and "about 8.0 GiB" in problem and "2.0 GiB" in problem
    warned, asked = [], []
    monkeypatch.setattr(install_dialog, "free_bytes", lambda path: 2 * GIB)
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: warned.append(text))
    monkeypatch.setattr(QMessageBox, "question", lambda *a: asked.append(a) or QMessageBox.StandardButton.Yes)
    assert ask_to_install(None, plan) is False
    assert warned == [problem] and asked == []


def test_cancel_stops_a_running_step_and_removes_the_half_made_venv(settings, qtbot, tmp_path):
    venv = tmp_path / "venv"
    # "python -m venv DIR": makes DIR/bin, then waits in a child (sleep) that holds pip's output pipe open
    base = fake_exe(tmp_path, "python3", 'mkdir -p "$3/bin"; echo "creating $3"; sleep 60; echo never')
    plan = InstallPlan(venv_dir=venv, base_python=base, torch_requirement=None, backend_deps=False,
                       verify_with_doctor=False)
    outcome = []
    dialog = InstallDialog(plan, on_finished=lambda *result: outcome.append(result))
    qtbot.waitUntil(lambda: f"creating {venv}" in dialog.log.toPlainText(), timeout=30_000)
    assert (venv / "bin").is_dir() and dialog.running
    start = time.monotonic()
    dialog.cancel()
    qtbot.waitUntil(lambda: bool(outcome), timeout=10_000)
    assert time.monotonic() - start < 5
    assert outcome == [(False, InstallTask.CANCELLED, None)]
    assert not venv.exists() and "never" not in dialog.log.toPlainText()
    assert "cancelled" in dialog.status.text() and settings.backend_python == ""
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Close) is not None


def test_a_venv_that_was_there_before_is_kept_when_a_step_fails(qgis_app, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)

    class Plan:
        python = venv / "bin" / "missing-python"
        venv_dir = venv

    task = InstallTask(Plan())
    assert not task._run_steps_or_clean_up([("Create venv", [sys.executable, "-c", "import sys; sys.exit(3)"])], {})
    assert venv.is_dir() and "exit code 3" in task.error
