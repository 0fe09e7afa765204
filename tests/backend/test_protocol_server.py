"""The server loop in-process, with a scripted engine standing in for the job engine.

These pin the server's own behaviour (threads, job ids, cancel, errors, shutdown, model cache
reuse); the real engine behind a real `terramind serve` process is in test_protocol_process.py.
"""
import io
import json
import os
import queue
import threading
import time

import pytest

from terramind_backend.protocol.server import Server


class JobCancelled(RuntimeError):
    pass


class JobValidationError(ValueError):
    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class ScriptedEngine:
    """Engine API with jobs driven by the spec: {"tiles": n, "sleep": s, "fail": ..., "invalid": ...}."""

    JobCancelled = JobCancelled
    JobValidationError = JobValidationError

    @staticmethod
    def explain(exc, spec=None, base_dir=None):  # the real one: pure, no engine state
        from terramind_backend.engine import explain

        return explain(exc, spec, base_dir)

    def __init__(self):
        self.caches = []
        self.cache_seen = []

    def ModelCache(self):  # noqa: N802 (engine API name)
        cache = {"id": len(self.caches)}
        self.caches.append(cache)
        return cache

    def validate_job(self, spec):
        if spec.get("invalid"):
            raise JobValidationError(spec["invalid"], field="inputs.S2L2A")
        if spec.get("no_weights"):
            from terramind_backend.hub import WeightsNotAvailable

            raise WeightsNotAvailable(spec["no_weights"])
        if spec.get("bug"):
            raise KeyError(spec["bug"])
        return spec

    def run_job(self, spec, *, emit, cancel, models):
        self.validate_job(spec)
        self.cache_seen.append(models)
        if spec.get("fail"):
            raise RuntimeError(spec["fail"])
        n = spec.get("tiles", 2)
        for i in range(n):
            if cancel.is_set():
                raise JobCancelled("Job cancelled; no output was written.")
            time.sleep(spec.get("sleep", 0.0))
            emit({"event": "progress", "stage": "tiles", "done": i + 1, "total": n, "fraction": (i + 1) / n,
                  "eta_s": None, "message": f"tile {i + 1}/{n}"})
        return {"outputs": [{"name": "LULC", "path": "/x/lulc.tif", "style": "/x/lulc.tif.qml", "kind": "classes"}],
                "elapsed_s": 0.1, "tiles": n, "device": "cpu"}


class Pipe:
    """A line stream the server reads from, fed by the test."""

    def __init__(self):
        self._lines = queue.Queue()

    def send(self, obj):
        self._lines.put(obj if isinstance(obj, str) else json.dumps(obj))

    def close(self):
        self._lines.put(None)

    def __iter__(self):
        while True:
            line = self._lines.get()
            if line is None:
                return
            yield line + "\n"


class Events(io.TextIOBase):
    def __init__(self):
        self.q = queue.Queue()
        self._buf = ""

    def write(self, text):
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self.q.put(json.loads(line))
        return len(text)

    def next(self, timeout=5.0):
        return self.q.get(timeout=timeout)

    def until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return event, seen


@pytest.fixture
def server():
    pipe, events, engine = Pipe(), Events(), ScriptedEngine()
    srv = Server(pipe, events, engine=engine)
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("rc", srv.serve()), daemon=True)
    thread.start()
    yield pipe, events, engine, thread, done
    pipe.close()
    thread.join(5)


def test_run_streams_progress_then_result_tagged_with_the_job(server):
    pipe, events, engine, *_ = server
    pipe.send({"op": "run", "id": "j1", "spec": {"tiles": 3}})
    result, seen = events.until(lambda e: e["event"] == "result")
    assert all(e["job"] == "j1" for e in seen)
    assert [e["done"] for e in seen if e["event"] == "progress"] == [1, 2, 3]
    assert result["outputs"][0]["name"] == "LULC" and result["tiles"] == 3


def test_models_stay_cached_between_jobs(server):
    pipe, events, engine, *_ = server
    for job in ("a", "b"):
        pipe.send({"op": "run", "id": job, "spec": {"tiles": 1}})
        events.until(lambda e: e["event"] == "result" and e["job"] == job)
    assert len(engine.caches) == 1
    assert engine.cache_seen[0] is engine.cache_seen[1]


def test_cancel_is_read_while_a_job_runs(server):
    pipe, events, engine, *_ = server
    pipe.send({"op": "run", "id": "long", "spec": {"tiles": 1000, "sleep": 0.05}})
    events.until(lambda e: e["event"] == "progress")
    t0 = time.monotonic()
    pipe.send({"op": "cancel", "id": "c1", "job": "long"})
    error, _ = events.until(lambda e: e["event"] == "error")
    assert time.monotonic() - t0 < 2.0
    assert error["job"] == "long" and error["kind"] == "cancelled"


def test_quick_ops_answer_while_a_job_runs(server):
    pipe, events, engine, *_ = server
    pipe.send({"op": "run", "id": "long", "spec": {"tiles": 1000, "sleep": 0.05}})
    events.until(lambda e: e["event"] == "progress")
    pipe.send({"op": "validate", "id": "v1", "spec": {"invalid": "S2L2A needs 12 bands, got 3"}})
    answer, _ = events.until(lambda e: e["job"] == "v1", timeout=3)
    assert answer == {"event": "result", "job": "v1", "valid": False,
                      "problems": [{"field": "inputs.S2L2A", "message": "S2L2A needs 12 bands, got 3"}]}
    pipe.send({"op": "cancel", "id": "c", "job": "long"})
    events.until(lambda e: e["job"] == "long" and e["event"] == "error")


def test_a_queued_job_can_be_cancelled_before_it_starts(server):
    pipe, events, engine, *_ = server
    pipe.send({"op": "run", "id": "first", "spec": {"tiles": 10, "sleep": 0.05}})
    pipe.send({"op": "run", "id": "second", "spec": {"tiles": 1}})
    pipe.send({"op": "cancel", "id": "c", "job": "second"})
    error, seen = events.until(lambda e: e["job"] == "second" and e["event"] == "error")
    assert error["kind"] == "cancelled" and "before it started" in error["message"]
    assert not [e for e in seen if e["job"] == "second" and e["event"] == "progress"]


@pytest.mark.parametrize("spec, kind, field, text", [
    ({"invalid": "no such file: a.tif"}, "validation", "inputs.S2L2A", "no such file"),
    ({"fail": "CUDA out of memory"}, "runtime", None, "Out of memory on the GPU: lower tiling.batch_size"),
])
def test_job_errors_carry_kind_and_field(server, spec, kind, field, text):
    pipe, events, *_ = server
    pipe.send({"op": "run", "id": "bad", "spec": spec})
    error, _ = events.until(lambda e: e["event"] == "error")
    assert (error["job"], error["kind"], error["field"]) == ("bad", kind, field)
    assert text in error["message"]


def test_unexpected_errors_read_as_sentences_without_our_class_names(server):
    pipe, events, *_ = server
    text = "terramind_v1_base is not in the cache and HF_HUB_OFFLINE=1: download it once online"
    pipe.send({"op": "validate", "id": "v1", "spec": {"no_weights": text}})
    error, _ = events.until(lambda e: e["job"] == "v1")
    assert (error["event"], error["kind"], error["message"]) == ("error", "runtime", text)
    pipe.send({"op": "validate", "id": "v2", "spec": {"bug": "bands"}})
    error, _ = events.until(lambda e: e["job"] == "v2")
    assert error["message"] == "KeyError: 'bands'"   # a library's error keeps the class its message needs


def test_malformed_and_unknown_requests_do_not_stop_the_server(server):
    pipe, events, *_ = server
    pipe.send("{this is not json")
    assert events.next()["kind"] == "protocol"
    pipe.send({"op": "teleport", "id": "t"})
    error = events.next()
    assert (error["job"], error["kind"], error["field"]) == ("t", "protocol", "op")
    pipe.send({"op": "run", "id": "ok", "spec": {"tiles": 1}})
    result, _ = events.until(lambda e: e["event"] == "result")
    assert result["job"] == "ok"


def test_duplicate_job_id_is_refused(server):
    pipe, events, *_ = server
    pipe.send({"op": "run", "id": "same", "spec": {"tiles": 20, "sleep": 0.05}})
    events.until(lambda e: e["event"] == "progress")
    pipe.send({"op": "run", "id": "same", "spec": {"tiles": 1}})
    error, _ = events.until(lambda e: e["event"] == "error")
    assert error["kind"] == "protocol" and "already" in error["message"]


def test_shutdown_cancels_the_running_job_and_returns_zero(server):
    pipe, events, engine, thread, done = server
    pipe.send({"op": "run", "id": "long", "spec": {"tiles": 1000, "sleep": 0.05}})
    events.until(lambda e: e["event"] == "progress")
    pipe.send({"op": "shutdown", "id": "bye"})
    thread.join(5)
    assert done.get("rc") == 0
    rest = []
    while not events.q.empty():
        rest.append(events.q.get())
    assert {"event": "result", "job": "bye", "shutdown": True} in rest
    assert any(e["job"] == "long" and e.get("kind") == "cancelled" for e in rest)


def test_end_of_input_ends_the_server(server):
    pipe, events, engine, thread, done = server
    pipe.close()
    thread.join(5)
    assert not thread.is_alive() and done["rc"] == 0


def test_warnings_and_log_records_in_the_job_become_log_events():
    import logging
    import warnings

    from terramind_backend.protocol.server import JobLogHandler

    class WarningEngine(ScriptedEngine):
        def run_job(self, spec, *, emit, cancel, models):
            logging.getLogger("rasterio._env").warning("CPLE_AppDefined: TIFFReadDirectory odd tag")
            warnings.warn("S1RTC is resampled from 20 m to 10 m", UserWarning)
            logging.getLogger("terramind_backend.engine").info("below the forwarding level")
            return super().run_job(spec, emit=emit, cancel=cancel, models=models)

    pipe, events = Pipe(), Events()
    srv = Server(pipe, events, engine=WarningEngine())
    handler = JobLogHandler(srv)
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            pipe.send({"op": "run", "id": "w", "spec": {"tiles": 1}})
            _, seen = events.until(lambda e: e["event"] == "result")
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        pipe.close()
        thread.join(5)
    logs = [(e["level"], e["message"]) for e in seen if e["event"] == "log"]
    assert ("warning", "CPLE_AppDefined: TIFFReadDirectory odd tag") in logs
    assert any(level == "warning" and "resampled from 20 m" in message for level, message in logs)
    assert not any("below the forwarding level" in message for _, message in logs)
