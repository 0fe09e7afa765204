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
