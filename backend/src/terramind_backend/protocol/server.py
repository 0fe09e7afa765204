"""The stdio server behind ``terramind serve --stdio``.

Threads: the *reader* (the caller of ``serve``) reads request lines and answers the quick ops
itself, so ``cancel`` is seen while a job runs; one *job worker* runs ``run`` requests one after
the other with a shared ``ModelCache`` (models stay loaded between jobs); ``hello``, ``validate``
and ``models`` get a short-lived thread each, so a slow first ``import torch`` never delays a cancel.
All output goes through ``_send`` under one lock: a line is never interleaved with another.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import traceback
from typing import Any, Callable, Dict, Optional, TextIO

from .. import __version__
from .messages import OPS, PROTOCOL_VERSION, ProtocolError, decode_request, encode_event, error_event

log = logging.getLogger(__name__)

_STOP = object()          # job-queue sentinel: the worker ends
_SHUTDOWN_WAIT_S = 5.0    # how long shutdown waits for a cancelled job to clean up


class _EngineFacade:
    """The engine's entry points, imported on first use (importing it pulls in torch)."""

    def __getattr__(self, name: str):
        from .. import engine

        return getattr(engine, name)


class Server:
    """Serve requests from ``reader`` and write events to ``writer`` until shutdown or EOF."""

    def __init__(self, reader: TextIO, writer: TextIO, *, engine: Any = None):
        self._reader = reader
        self._writer = writer
        self._engine = engine if engine is not None else _EngineFacade()
        self._send_lock = threading.Lock()
        self._jobs: Dict[str, threading.Event] = {}      # queued or running job id -> cancel flag
        self._jobs_lock = threading.Lock()
        self._queue: "queue.Queue" = queue.Queue()
        self._models = None                               # engine.ModelCache, made by the worker
        self._current_job: Optional[str] = None
        self._worker = threading.Thread(target=self._work, name="terramind-job", daemon=True)

    # -- output ---------------------------------------------------------------------------
    def _send(self, line: str) -> None:
        with self._send_lock:
            try:
                self._writer.write(line)
                self._writer.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the client went away; the reader sees EOF and ends the server

    def emit(self, job: Optional[str], event: Dict[str, Any]) -> None:
        """Forward an engine event (``{"event": "progress", ...}``) tagged with its job id."""
        fields = dict(event)
        kind = fields.pop("event", "log")
        fields.pop("job", None)
        self._send(encode_event(kind, job, **fields))

    # -- main loop ------------------------------------------------------------------------
    def serve(self) -> int:
        """Read requests until ``shutdown`` or end of input; return the process exit code."""
        self._worker.start()
        for raw in self._reader:
            line = raw.strip()
            if not line:
                continue
            try:
                request = decode_request(line)
            except ProtocolError as exc:
                self._send(error_event(exc.job, "protocol", str(exc), exc.field))
                continue
            if request["op"] == "shutdown":
                self._stop()
                self._send(encode_event("result", request["id"], shutdown=True))
                return 0
            try:
                self._dispatch(request)
            except Exception as exc:  # a bug in a quick op must not kill the server
                log.exception("request %s failed", request.get("id"))
                self._send(error_event(request["id"], "runtime", f"{type(exc).__name__}: {exc}"))
        self._stop()  # end of input: the client is gone, stop whatever runs
        return 0

    def _dispatch(self, request: Dict[str, Any]) -> None:
        op, job = request["op"], request["id"]
        if op == "cancel":
            self._cancel(request["job"])
        elif op == "run":
            with self._jobs_lock:
                if job in self._jobs:
                    self._send(error_event(job, "protocol", f"Job id {job!r} is already queued or running.", "id"))
                    return
                self._jobs[job] = threading.Event()
                cancel = self._jobs[job]
            self._queue.put((job, request["spec"], cancel))
        else:
            handler: Callable[[str, Dict[str, Any]], None] = getattr(self, f"_op_{op}")
            threading.Thread(target=self._guarded, args=(handler, job, request), daemon=True,
                             name=f"terramind-{op}").start()

    def _guarded(self, handler, job: str, request: Dict[str, Any]) -> None:
        try:
            handler(job, request)
        except Exception as exc:
            log.exception("op %s failed", request.get("op"))
            self._send(error_event(job, "runtime", f"{type(exc).__name__}: {exc}"))

    def _cancel(self, job: str) -> None:
        with self._jobs_lock:
            flag = self._jobs.get(job)
        if flag is None:
            self.emit(job, {"event": "log", "level": "debug", "message": "cancel: no such job queued or running"})
            return
        flag.set()

    def _stop(self) -> None:
        with self._jobs_lock:
            for flag in self._jobs.values():
                flag.set()
        self._queue.put(_STOP)
        self._worker.join(_SHUTDOWN_WAIT_S)

    # -- quick ops ------------------------------------------------------------------------
    def _op_hello(self, job: str, request: Dict[str, Any]) -> None:
        info: Dict[str, Any] = {"protocol": PROTOCOL_VERSION, "backend": __version__, "pid": os.getpid(),
                                "ops": list(OPS)}
        try:
            from ..environment import describe

            info.update(describe())
        except Exception as exc:  # still answer: the client shows why the backend cannot run jobs
            info["problem"] = f"{type(exc).__name__}: {exc}"
        info.pop("terramind_backend", None)
        self._send(encode_event("hello", job, **info))

    def _op_validate(self, job: str, request: Dict[str, Any]) -> None:
        problems = []
        try:
            self._engine.validate_job(request["spec"])
        except self._engine.JobValidationError as exc:
            problems.append({"field": getattr(exc, "field", None), "message": str(exc)})
        self._send(encode_event("result", job, valid=not problems, problems=problems))

    def _op_models(self, job: str, request: Dict[str, Any]) -> None:
        from ..hub import cached_official_weights
        from ..models.registry import available_models

        cached = [{"name": c.name, "repo_id": c.repo_id, "filename": c.filename, "size_bytes": c.size_bytes}
                  for c in cached_official_weights()]
        self._send(encode_event("result", job, models=available_models(), cached=cached))

    # -- jobs -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, spec, cancel = item
            self._current_job = job
            try:
                self._run_one(job, spec, cancel)
            finally:
                self._current_job = None
                with self._jobs_lock:
                    self._jobs.pop(job, None)

    def _run_one(self, job: str, spec: Dict[str, Any], cancel: threading.Event) -> None:
        engine = self._engine
        if cancel.is_set():
            self._send(error_event(job, "cancelled", "Job cancelled before it started."))
            return
        try:
            if self._models is None:
                self._models = engine.ModelCache()
            result = engine.run_job(spec, emit=lambda event: self.emit(job, event), cancel=cancel,
                                    models=self._models)
        except engine.JobCancelled as exc:
            self._send(error_event(job, "cancelled", str(exc) or "Job cancelled."))
        except engine.JobValidationError as exc:
            self._send(error_event(job, "validation", str(exc), getattr(exc, "field", None)))
        except MemoryError:
            self._send(error_event(job, "runtime", "Out of memory: use a smaller batch size, window or model."))
        except Exception as exc:
            log.error("job %s failed:\n%s", job, traceback.format_exc())
            self._send(error_event(job, "runtime", f"{type(exc).__name__}: {exc}",
                                   detail=traceback.format_exc(limit=8)))
        else:
            self._send(encode_event("result", job, **(result or {})))

    @property
    def current_job(self) -> Optional[str]:
        return self._current_job


class JobLogHandler(logging.Handler):
    """Forward log records raised while a job runs (in the job thread) as ``log`` events."""

    _LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}

    def __init__(self, server: Server, level: int = logging.WARNING):
        super().__init__(level)
        self._server = server

    def emit(self, record: logging.LogRecord) -> None:
        job = self._server.current_job
        if job is None or record.threadName != "terramind-job" or record.name.startswith(__name__):
            return
        level = self._LEVELS.get(record.levelno, "warning")
        try:
            self._server.emit(job, {"event": "log", "level": level, "message": record.getMessage()})
        except Exception:
            self.handleError(record)
