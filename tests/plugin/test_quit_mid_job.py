"""Quitting QGIS while a TerraMind job runs: the real desktop QGIS (under Xvfb) runs the plugin, starts a job
against the real backend, closes its main window (answering No to the active-tasks question), then quits
while the job is still running. QGIS must exit cleanly, the task must not report into the torn-down
interface, the backend must stop and no temporary file may be left."""
import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import BACKEND_PYTHON, FAKE_HUB, REPO, SHARED_SAMPLES

SCRIPT = REPO / "tests" / "plugin" / "scripts" / "quit_mid_job.py"
HUNG_BACKEND = REPO / "tests" / "plugin" / "scripts" / "hung_backend.sh"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not (shutil.which("qgis") and shutil.which("xvfb-run")), reason="needs QGIS desktop and Xvfb")
@pytest.mark.parametrize("backend", ["real", "hung"])
def test_quitting_qgis_mid_job_neither_crashes_nor_reports_nor_leaves_litter(tmp_path, backend):
    """``real``: the job is cancelled and cleans up; ``hung``: a backend that ignores cancel and shutdown,
    so the task is still running while QGIS tears its interface down (the old crash)."""
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "terramind_qgis").symlink_to(REPO / "terramind_qgis")
    out = tmp_path / "out"
    out.mkdir()
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    report = tmp_path / "report.jsonl"
    # hundreds of small windows (S2 upsampled to 2.5 m, 32 px): the job is surely running when QGIS quits
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu", "resolution": 2.5,
            "inputs": {"S2L2A": {"path": str(SHARED_SAMPLES / "S2L2A" / "282D_485L_3_3.tif")}},
            "outputs": {"embeddings": str(out / "emb.tif")}, "tiling": {"window": 32, "overlap": 0, "batch_size": 1}}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QT_QPA"))}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(profile), XDG_RUNTIME_DIR=str(runtime), TERRAMIND_QUIT_REPORT=str(report),
               TERRAMIND_QUIT_SPEC=json.dumps(spec), TERRAMIND_QUIT_BACKEND=str(BACKEND_PYTHON if backend == "real" else HUNG_BACKEND),
               TERRAMIND_QUIT_HUB=str(FAKE_HUB))
    done = subprocess.run(["xvfb-run", "-a", "qgis", "--nologo", "--noversioncheck", "--code", str(SCRIPT)],
                          env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    output = done.stdout + done.stderr
    notes = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    assert done.returncode == 0, f"QGIS exited with {done.returncode}\n{output[-3000:]}\n{notes}"
    assert "Traceback" not in output and "has been deleted" not in output, output[-3000:]
    quit_note = next((n for n in notes if n.get("quitting")), None)
    assert quit_note is not None, f"the job never got going: {notes}\n{output[-3000:]}"
    assert any("Do you want to try canceling" in n.get("question", "") for n in notes), notes
    quit_started = next((n["t"] for n in notes if n.get("quit_called")), None)
    assert quit_started is not None and any(n.get("about_to_quit") for n in notes), notes
    late = [n for n in notes if "on_finished" in n and n["t"] >= quit_started]
    assert not late, f"the task reported while QGIS was quitting: {notes}"
    deadline = time.monotonic() + 10
    while _alive(quit_note["backend_pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(quit_note["backend_pid"]), "the backend outlived QGIS"
    assert os.listdir(out) == [], "the cancelled job left files behind"
