"""BackendClient against the real backend process (.venv-backend), on real QGIS's Python."""
import os
import queue
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BACKEND_PYTHON, fake_hub  # noqa: F401 (fixture; the plugin ini does not load tests/conftest.py)
from terramind_qgis import client as client_mod
from terramind_qgis.client import BackendClient, BackendError, get_client, shutdown_client


def child_environ(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.fixture
def backend_env(fake_hub, settings, monkeypatch):
    # What QGIS's own process typically carries; none of it may reach the backend.
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    monkeypatch.setenv("PROJ_LIB", "/usr/share/proj")
    monkeypatch.setenv("GDAL_DRIVER_PATH", "/nonexistent/gdalplugins")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings.backend_python = str(BACKEND_PYTHON)
    return settings


@pytest.fixture
def client(backend_env):
    c = BackendClient.from_settings(backend_env)
    yield c
    c.shutdown()


def test_hello_starts_a_clean_backend(client, fake_hub):
    hello = client.hello()
    assert hello["protocol"] == 1 and hello["device"] == "cpu"
    assert hello["pid"] == client.pid
    assert hello["hf_cache"] == str(fake_hub) and hello["hf_offline"] is True
    assert any(w["name"] == "terramind_v1_tiny" for w in hello["cached_weights"])
    env = child_environ(client.pid)
    for gone in ("PYTHONPATH", "PROJ_LIB", "GDAL_DRIVER_PATH"):
        assert gone not in env
    assert env["HF_HUB_CACHE"] == str(fake_hub) and env["HF_HUB_OFFLINE"] == "1"
    # runs below the desktop's CPU priority (field 19 of /proc/<pid>/stat is the nice value): os.nice adds to
    # the niceness it inherits, so a suite that is itself run under `nice` expects the sum (at most 19)
    stat = Path(f"/proc/{client.pid}/stat").read_text()
    assert int(stat.rsplit(")", 1)[1].split()[16]) == min(19, os.nice(0) + client_mod.BACKEND_NICE)


def test_requests_reuse_the_warm_process(client):
    first = client.hello()["pid"]
    t0 = time.monotonic()
    listing = client.models()
    assert time.monotonic() - t0 < 5
    assert "terramind_v1_tiny_generate" in listing["models"]
    assert client.pid == first


def test_killed_backend_is_replaced_by_the_next_request(client):
    first = client.hello()["pid"]
    os.kill(first, 9)
    time.sleep(0.3)
    assert client.pid is None
    second = client.hello()["pid"]
    assert second != first and client.pid == second


def test_missing_interpreter_is_a_setup_error(tmp_path):
    c = BackendClient(str(tmp_path / "nope" / "python"))
    with pytest.raises(BackendError) as info:
        c.hello()
    assert info.value.kind == "setup" and "does not exist" in str(info.value)
    with pytest.raises(BackendError, match="Settings and backend"):
        BackendClient(None).hello()


def test_interpreter_without_backend_fails_with_its_stderr(backend_env):
    # QGIS's own Python has no terramind_backend: the process dies at once and says why.
    c = BackendClient(sys.executable, backend_env.backend_environment())
    with pytest.raises(BackendError) as info:
        c.hello(timeout=30)
    assert info.value.kind == "crashed"
    assert "No module named terramind_backend" in str(info.value)
    assert "next job starts a new backend process" in str(info.value)
    c.shutdown()


def test_get_client_is_shared_until_settings_change(backend_env, tmp_path):
    try:
        a = get_client(backend_env)
        assert get_client(backend_env) is a
        a.hello()
        pid = a.pid
        other = tmp_path / "python"
        other.write_text("")
        backend_env.backend_python = str(other)
        b = get_client(backend_env)
        assert b is not a and b.interpreter == str(other)
        # the old, idle client was retired: its process is gone
        deadline = time.monotonic() + 5
        while a.pid is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.pid is None and _gone(pid)
    finally:
        shutdown_client()
    assert client_mod._client is None


def _gone(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # exited, not yet reaped
    except OSError:
        return True


def test_jobs_go_to_the_ray_cluster_named_in_the_settings(settings, monkeypatch):
    settings.ray_address = "10.0.0.5:6379"
    client = BackendClient.from_settings(settings)
    sent = []

    class Proc:  # the backend process, reduced to what run_job uses
        def register(self, job_id):
            answers = queue.Queue()
            answers.put({"event": "result", "outputs": []})
            return answers

        def unregister(self, job_id):
            pass

        def send(self, request):
            sent.append(request)

    monkeypatch.setattr(client, "_begin", lambda: Proc())
    monkeypatch.setattr(client, "_end", lambda: None)
    client.run_job({"task": "embed"})
    assert sent[-1]["spec"]["executor"] == {"kind": "ray", "address": "10.0.0.5:6379"}
    client.run_job({"task": "embed", "executor": {"kind": "local"}})  # a job's own executor wins
    assert sent[-1]["spec"]["executor"] == {"kind": "local"}
    settings.ray_address = ""
    assert BackendClient.from_settings(settings).executor is None
