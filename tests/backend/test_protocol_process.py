"""`terramind serve --stdio` as a real subprocess: the transcript a client sees."""
import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

SERVE = [sys.executable, "-m", "terramind_backend", "serve", "--stdio"]


class Backend:
    def __init__(self, argv=SERVE, env=None):
        env = dict(os.environ if env is None else env)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True, bufsize=1)
        self.events = queue.Queue()
        self.raw = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "_garbage", "line": line})
        self.events.put({"event": "_eof"})

    def send(self, obj):
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def until(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return event, seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


def test_hello_reports_protocol_versions_and_device(backend):
    backend.send({"op": "hello", "id": "h1"})
    hello, _ = backend.until(lambda e: e["event"] == "hello")
    assert hello["job"] == "h1" and hello["protocol"] == 1
    assert hello["pid"] == backend.proc.pid
    assert hello["device"] == "cpu" and hello["torch"].startswith("2.")
    assert "run" in hello["ops"] and "cancel" in hello["ops"]


def test_malformed_line_unknown_op_then_shutdown(backend):
    backend.send("{oops")
    error, _ = backend.until(lambda e: True, timeout=30)
    assert error["event"] == "error" and error["kind"] == "protocol" and error["job"] is None
    backend.send({"op": "dance", "id": "d"})
    error, _ = backend.until(lambda e: True)
    assert (error["job"], error["kind"]) == ("d", "protocol")
    backend.send({"op": "shutdown", "id": "s"})
    bye, _ = backend.until(lambda e: True)
    assert bye == {"event": "result", "job": "s", "shutdown": True}
    assert backend.proc.wait(10) == 0


def test_closing_stdin_ends_the_backend(backend):
    backend.proc.stdin.close()
    assert backend.proc.wait(10) == 0


def test_stdout_carries_only_protocol_lines():
    """print() and C-level writes to fd 1 after start-up must land on stderr, not in the protocol."""
    noisy = ("import os, threading, sys; from terramind_backend.cli import main; "
             "threading.Timer(0.3, lambda: (print('python noise', flush=True), os.write(1, b'c noise\\n'))).start(); "
             "sys.exit(main(['serve', '--stdio']))")
    b = Backend([sys.executable, "-c", noisy])
    try:
        time.sleep(1.0)
        b.send({"op": "models", "id": "m"})
        models, _ = b.until(lambda e: e["job"] == "m", timeout=30)
        assert "terramind_v1_tiny_generate" in models["models"]
        b.send({"op": "shutdown", "id": "s"})
        b.until(lambda e: e["event"] == "_eof", timeout=30)
        assert b.proc.wait(10) == 0
        assert all(json.loads(line) for line in b.raw), b.raw
        stderr = b.proc.stderr.read()
        assert "python noise" in stderr and "c noise" in stderr
    finally:
        b.close()


# -- the real engine behind the server (tiny random-weight TerraMind from the fake hub) ------------
from tests.conftest import FAKE_HUB, sample  # noqa: E402


def generate_spec(out_dir, outputs=("LULC", "NDVI")):
    return {"version": 1, "task": "generate", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}, "S1RTC": {"path": str(sample("S1RTC"))}},
            "outputs": {m: str(out_dir / f"{m.lower()}.tif") for m in outputs},
            "timesteps": 2, "seed": 0, "device": "cpu", "tiling": {"window": 224, "overlap": 0, "batch_size": 1}}


@pytest.fixture(scope="module")
def warm_backend():
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    env = dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1")
    b = Backend(env=env)
    yield b
    b.close()


def test_real_job_streams_progress_and_writes_styled_outputs(warm_backend, tmp_path):
    spec = generate_spec(tmp_path)
    warm_backend.send({"op": "run", "id": "j1", "spec": spec})
    result, seen = warm_backend.until(lambda e: e["job"] == "j1" and e["event"] in ("result", "error"), timeout=300)
    assert result["event"] == "result", result
    stages = [e["stage"] for e in seen if e["event"] == "progress"]
    assert stages[0] == "load" and stages[-1] == "tiles"
    assert [e for e in seen if e["event"] == "progress"][-1]["fraction"] == 1.0
    assert {o["name"]: o["kind"] for o in result["outputs"]} == {"LULC": "classes", "NDVI": "continuous"}
    for out in result["outputs"]:
        assert os.path.isfile(out["path"]) and os.path.isfile(out["style"])
    assert all(e["job"] == "j1" for e in seen)


def test_cancel_mid_window_stops_within_two_seconds_and_leaves_nothing(warm_backend, tmp_path):
    spec = generate_spec(tmp_path)
    warm_backend.send({"op": "run", "id": "j2", "spec": spec})
    warm_backend.until(lambda e: e["job"] == "j2" and e["event"] == "progress" and e["stage"] == "tiles",
                       timeout=300)
    time.sleep(0.5)  # inside the first (and only) window: no cooperative check point before it ends
    t0 = time.monotonic()
    warm_backend.send({"op": "cancel", "id": "c2", "job": "j2"})
    error, _ = warm_backend.until(lambda e: e["job"] == "j2" and e["event"] in ("result", "error"), timeout=30)
    took = time.monotonic() - t0
    assert error["event"] == "error" and error["kind"] == "cancelled", error
    assert took < 2.0, f"cancel took {took:.2f} s"
    assert list(tmp_path.iterdir()) == []  # neither outputs nor hidden temporary files
    # the process is still alive and warm: a validation answer comes at once
    warm_backend.send({"op": "validate", "id": "v", "spec": dict(spec, model="terramind_v9_huge")})
    answer, _ = warm_backend.until(lambda e: e["job"] == "v", timeout=30)
    assert answer["valid"] is False and answer["problems"][0]["field"] == "model"


def test_invalid_job_is_a_validation_error_with_field(warm_backend, tmp_path):
    spec = generate_spec(tmp_path)
    spec["inputs"]["S2L2A"]["path"] = str(tmp_path / "missing.tif")
    warm_backend.send({"op": "run", "id": "j3", "spec": spec})
    error, _ = warm_backend.until(lambda e: e["job"] == "j3", timeout=60)
    assert (error["event"], error["kind"]) == ("error", "validation")
    assert error["field"].startswith("inputs.S2L2A") and "missing.tif" in error["message"]
    assert list(tmp_path.iterdir()) == []


def test_closing_stdin_mid_job_stops_quickly_and_leaves_nothing(warm_backend, tmp_path):
    """QGIS quit (or crashed) while a job ran: the backend cancels it, cleans up and exits."""
    spec = generate_spec(tmp_path)
    warm_backend.send({"op": "run", "id": "j4", "spec": spec})
    warm_backend.until(lambda e: e["job"] == "j4" and e["event"] == "progress" and e["stage"] == "tiles",
                       timeout=300)
    time.sleep(0.3)
    t0 = time.monotonic()
    warm_backend.proc.stdin.close()
    assert warm_backend.proc.wait(10) == 0
    assert time.monotonic() - t0 < 3.0
    assert list(tmp_path.iterdir()) == []
