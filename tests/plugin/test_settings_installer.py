"""One-click backend installer: the command lines it builds, CUDA detection, and a real (small) run."""
import subprocess
import sys
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings

from terramind_qgis import installer
from terramind_qgis.installer import (TORCH_CPU_INDEX, TORCH_CUDA_INDEX, InstallPlan, InstallTask, cuda_available,
                                      default_torch_index, find_base_python)
from terramind_qgis.paths import BACKEND_SRC_DIR, PLUGIN_DIR
from terramind_qgis.settings import Settings, installer_venv_dir


def fake_exe(folder: Path, name: str, script: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("script, expected", [
    ('echo "GPU 0: NVIDIA RTX A4000 (UUID: GPU-1)"', True),
    ('echo "NVIDIA-SMI has failed because it could not communicate with the driver" ; exit 9', False),
    ('echo "No devices were found"', False),
])
def test_cuda_detection_uses_nvidia_smi(tmp_path, script, expected):
    assert cuda_available(fake_exe(tmp_path, "nvidia-smi", script)) is expected


def test_no_nvidia_smi_means_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cuda_available() is False


@pytest.mark.parametrize("cuda, platform, index", [
    (False, "linux", TORCH_CPU_INDEX), (True, "linux", None),
    (False, "win32", TORCH_CPU_INDEX), (True, "win32", TORCH_CUDA_INDEX),
    (False, "darwin", None),
])
def test_torch_index_per_platform(cuda, platform, index):
    assert default_torch_index(cuda, platform) == index


def test_default_plan_lives_in_the_profile_and_follows_settings(qgis_app):
    qs = QgsSettings()
    qs.remove("terramind")
    settings = Settings(qs)
    settings.torch_pin = "torch==2.5.1"
    plan = InstallPlan.default(settings, cuda=False)
    assert plan.venv_dir == installer_venv_dir()
    assert Path(QgsApplication.qgisSettingsDirPath()) in plan.venv_dir.parents
    plan.check()  # outside the plugin folder
    titles = [title for title, _ in plan.steps()]
    assert titles == ["Create the backend environment", "Install PyTorch", "Install the TerraMind backend",
                      "Check the backend", "Run terramind doctor"]
    steps = dict(plan.steps())
    py = str(plan.python)
    assert steps["Create the backend environment"] == [plan.base_python, "-m", "venv", str(plan.venv_dir)]
    assert "--system-site-packages" not in steps["Create the backend environment"]
    assert steps["Install PyTorch"][:4] == [py, "-m", "pip", "install"]
    assert steps["Install PyTorch"][-3:] == ["torch==2.5.1", "--extra-index-url", TORCH_CPU_INDEX]
    assert steps["Install the TerraMind backend"][-2:] == ["--upgrade", str(BACKEND_SRC_DIR)]
    assert steps["Run terramind doctor"] == [py, "-m", "terramind_backend", "doctor", "--json"]
    # CUDA on Linux: PyPI's wheel is the CUDA build, no extra index
    cuda_plan = InstallPlan.default(settings, cuda=True)
    assert dict(cuda_plan.steps())["Install PyTorch"][-1] == "torch==2.5.1"
    qs.remove("terramind")


def test_plan_refuses_the_plugin_folder(tmp_path):
    plan = InstallPlan(venv_dir=PLUGIN_DIR / "venv", base_python=sys.executable)
    with pytest.raises(ValueError, match="outside the plugin folder"):
        plan.check()


def test_base_python_is_a_real_python():
    exe = find_base_python()
    assert exe is not None
    out = subprocess.run([exe, "-c", "import sys; print(sys.version_info >= (3, 9))"], capture_output=True,
                         text=True)
    assert out.stdout.strip() == "True"


def test_real_install_of_the_backend_into_a_fresh_venv(qgis_app, qtbot, tmp_path):
    """Creates a venv without system site-packages and installs the checkout's backend (--no-deps, no
    torch: CI has no time for a 200 MB wheel), streaming pip's output line by line."""
    qs = QgsSettings()
    qs.remove("terramind")
    plan = InstallPlan(venv_dir=tmp_path / "venv", base_python=find_base_python(), torch_requirement=None,
                       backend_deps=False, verify_with_doctor=False)
    source_before = sorted(p.name for p in BACKEND_SRC_DIR.iterdir())
    lines, outcome = [], {}
    task = InstallTask(plan, on_finished=lambda ok, error, doctor: outcome.update(ok=ok, error=error))
    task.line.connect(lines.append)
    with qtbot.waitSignal(task.taskCompleted, timeout=240_000, raising=True):
        QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: "ok" in outcome, timeout=5000)
    assert outcome == {"ok": True, "error": None}
    log = "\n".join(lines)
    assert "Successfully installed terramind-backend" in log and "terramind 0.1.0" in log
    assert Settings(qs).backend_python == str(plan.python)
    # isolated from QGIS's Python: no qgis, no system numpy; the backend is importable
    probe = subprocess.run([str(plan.python), "-c", "import terramind_backend, importlib.util as u; "
                            "print(u.find_spec('qgis') is None, u.find_spec('torch') is None)"],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert probe.stdout.split() == ["True", "True"], probe.stderr
    # pip built a copy: nothing (build/, egg-info) was written into the plugin's backend folder
    assert sorted(p.name for p in BACKEND_SRC_DIR.iterdir()) == source_before
    qs.remove("terramind")
