"""The stdio server behind ``terramind serve --stdio``.

Threads: the *reader* (the caller of ``serve``) reads request lines and answers the quick ops
itself, so ``cancel`` is seen while a job runs; one *job worker* runs ``run`` requests one after
the other with a shared ``ModelCache`` (models stay loaded between jobs); ``hello``, ``validate``
and ``models`` get a short-lived thread each, so a slow first ``import torch`` never delays a cancel.
All output goes through ``_send`` under one lock: a line is never interleaved with another.

Cancel is cooperative first: the job's ``cancel`` event is set and the engine stops at its next
check (between batches). A single window of a large model can take many seconds, so if the job
is still running ``HARD_CANCEL_AFTER_S`` later the server raises the engine's ``JobCancelled``
inside the job thread (``PyThreadState_SetAsyncExc``; it fires at the next Python instruction, i.e.
between torch ops). The engine's cleanup (``except BaseException``: remove temp files) then runs as
for any cancel, so no output is left and the process stays warm.
"""
from __future__ import annotations

import ctypes
import logging
import os
import queue
import threading
import traceback
from typing import Any, Callable, Dict, Optional, TextIO

from .. import __version__
from .messages import OPS, PROTOCOL_VERSION, ProtocolError, decode_request, encode_event, error_event, error_text
from .safe_io import request_lines

log = logging.getLogger(__name__)

_STOP = object()          # job-queue sentinel: the worker ends


class _Terminated(BaseException):
    """Raised in the reader thread by a termination signal."""

    def __init__(self, signum: int, name: str):
        super().__init__(name)
        self.signum, self.name = signum, name


_SHUTDOWN_WAIT_S = 5.0    # how long shutdown waits for a cancelled job to clean up
HARD_CANCEL_AFTER_S = 0.5  # cooperative cancel gets this long before the job thread is interrupted


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
        self._in_engine = False                           # the job thread is inside engine.run_job
        self._interrupted: Optional[str] = None           # the job that got a hard cancel
        self._engine_lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="terramind-job", daemon=True)
        self._reading = False                             # the main thread is blocked reading a request
        self._terminate: Optional[_Terminated] = None     # set by a SIGTERM/SIGINT handler
        self._stop_reason: Optional[str] = None           # the cancel message when the server stops

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
        try:
            return self._serve_lines()
        except _Terminated as stop:  # SIGTERM/SIGINT: like shutdown, each job still gets its final event
            self._stop(f"The backend was stopped ({stop.name}); the job was cancelled and no output was written.")
            return 128 + stop.signum

    def request_termination(self, signum: int) -> None:
        """Signal handler (main thread): stop like ``shutdown``. Raises only out of a blocking read, so a
        half-handled request or a half-written event line is never cut short."""
        from ..signals import signal_name

        self._terminate = _Terminated(signum, signal_name(signum))
        if self._reading:
            raise self._terminate

    def _lines(self):
        lines = request_lines(self._reader)
        while self._terminate is None:
            self._reading = True
            try:
                line = next(lines, None)
            finally:
                self._reading = False
            if line is None:
                return
            yield line
        raise self._terminate

    def _serve_lines(self) -> int:
        for line in self._lines():
            try:
                if isinstance(line, ProtocolError):
                    raise line
                if not line.strip():
                    continue
                request = decode_request(line.strip())
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
                self._send(error_event(request["id"], "runtime", error_text(exc)))
        self._stop()  # end of input: the client is gone, stop whatever runs
        return 0

    def _dispatch(self, request: Dict[str, Any]) -> None:
        op, job = request["op"], request["id"]
        if op == "cancel":
            self._cancel(request["job"])
        elif op == "run":
            with self._jobs_lock:
                if job in self._jobs:  # not tagged with the id: that job's client must not read it as its end
                    self._send(error_event(None, "protocol", f"Run request refused: job id {job!r} is already "
                                                             f"queued or running; use a new id.", "id"))
                    return
                self._jobs[job] = threading.Event()
                cancel = self._jobs[job]
            self._queue.put((job, request["spec"], cancel, request.get("base_dir")))
        else:
            handler: Callable[[str, Dict[str, Any]], None] = getattr(self, f"_op_{op}")
            threading.Thread(target=self._guarded, args=(handler, job, request), daemon=True,
                             name=f"terramind-{op}").start()

    def _guarded(self, handler, job: str, request: Dict[str, Any]) -> None:
        try:
            handler(job, request)
        except Exception as exc:
            log.exception("op %s failed", request.get("op"))
            self._send(error_event(job, "runtime", error_text(exc)))

    def _cancel(self, job: str) -> None:
        with self._jobs_lock:
            flag = self._jobs.get(job)
        if flag is None:
            self.emit(job, {"event": "log", "level": "debug", "message": "cancel: no such job queued or running"})
            return
        flag.set()
        if self._current_job == job:
            timer = threading.Timer(HARD_CANCEL_AFTER_S, self._interrupt, args=(job,))
            timer.daemon = True
            timer.start()

    def _interrupt(self, job: str) -> None:
        """Raise JobCancelled in the job thread if ``job`` is still inside the engine."""
        with self._engine_lock:
            if self._current_job != job or not self._in_engine or self._worker.ident is None:
                return
            exc = getattr(self._engine, "JobCancelled", None)
            if exc is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._worker.ident), ctypes.py_object(exc))
            self._in_engine = False  # at most once per job
            self._interrupted = job

    def _stop(self, reason: Optional[str] = None) -> None:
        self._stop_reason = reason
        with self._jobs_lock:
            for flag in self._jobs.values():
                flag.set()
        self._queue.put(_STOP)
        running = self._current_job
        self._worker.join(HARD_CANCEL_AFTER_S)
        if running is not None and self._worker.is_alive():
            self._interrupt(running)
        self._worker.join(_SHUTDOWN_WAIT_S)

    # -- quick ops ------------------------------------------------------------------------
    def _op_hello(self, job: str, request: Dict[str, Any]) -> None:
        info: Dict[str, Any] = {"protocol": PROTOCOL_VERSION, "backend": __version__, "pid": os.getpid(),
                                "ops": list(OPS)}
        try:
            from ..environment import describe

            info.update(describe())
        except Exception as exc:  # still answer: the client shows why the backend cannot run jobs
            info["problem"] = error_text(exc)
        info.pop("terramind_backend", None)
        usage = getattr(self._models, "usage", None)
        if usage is not None:  # live use of the warm cache (describe() gave the budget only)
            info["model_cache"] = {**info.get("model_cache", {}), **usage()}
        self._send(encode_event("hello", job, **info))

    def _op_validate(self, job: str, request: Dict[str, Any]) -> None:
        problems = []
        try:
            base_dir = request.get("base_dir")
            self._engine.validate_job(request["spec"], **({"base_dir": base_dir} if base_dir else {}))
        except self._engine.JobValidationError as exc:
            problems.append({"field": getattr(exc, "field", None), "message": str(exc)})
        extra = {}
        preflight = getattr(self._engine, "preflight", None)
        if not problems and preflight is not None:  # run-time estimate; a job that looks like a mistake: ask
            extra.update(preflight(request["spec"], request.get("base_dir") or None))
        self._send(encode_event("result", job, valid=not problems, problems=problems, **extra))

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
            job, spec, cancel, base_dir = item
            self._current_job = job
            try:
                self._run_one(job, spec, cancel, base_dir)
            finally:
                self._current_job = None
                with self._jobs_lock:
                    self._jobs.pop(job, None)

    def _run_one(self, job: str, spec: Dict[str, Any], cancel: threading.Event,
                 base_dir: Optional[str] = None) -> None:
        engine = self._engine
        if cancel.is_set():
            self._send(error_event(job, "cancelled", "Job cancelled before it started."))
            return
        result = None
        try:
            if self._models is None:
                self._models = engine.ModelCache()
            with self._engine_lock:
                self._in_engine = True
            try:
                extra = {"base_dir": base_dir} if base_dir else {}
                result = engine.run_job(spec, emit=lambda event: self.emit(job, event), cancel=cancel,
                                        models=self._models, **extra)
            finally:
                with self._engine_lock:
                    if not self._in_engine and self._worker.ident is not None:
                        # an interrupt may still be pending if it was sent as the job returned
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._worker.ident), None)
                    self._in_engine = False
        except engine.JobCancelled as exc:
            if result is not None:  # the interrupt landed after the outputs were published
                self._send(encode_event("result", job, **result))
                return
            if self._interrupted == job:
                _remove_partial_outputs(spec)
            self._send(error_event(job, "cancelled", self._stop_reason or str(exc)
                                   or "Job cancelled; no output was written."))
        except engine.JobValidationError as exc:
            self._send(error_event(job, "validation", str(exc), getattr(exc, "field", None)))
        except Exception as exc:  # MemoryError included: explain() says which setting to lower
            log.error("job %s failed:\n%s", job, traceback.format_exc())
            self._send(error_event(job, "runtime", self._explain(exc, spec, base_dir),
                                   detail=traceback.format_exc(limit=8)))
        else:
            self._send(encode_event("result", job, **(result or {})))

    def _explain(self, exc: BaseException, spec, base_dir) -> str:
        explain = getattr(self._engine, "explain", None)
        try:
            return explain(exc, spec, base_dir) if explain is not None else str(exc) or type(exc).__name__
        except Exception:  # noqa: BLE001 - explaining must never lose the error event
            return str(exc) or type(exc).__name__

    @property
    def current_job(self) -> Optional[str]:
        return self._current_job


def _remove_partial_outputs(spec: Dict[str, Any]) -> None:
    """After a hard cancel, make sure no temporary output is left even if the engine's own cleanup
    was cut short by the interrupt."""
    from ..engine.leftovers import remove_own

    outputs = spec.get("outputs") if isinstance(spec, dict) else None
    for path in (outputs or {}).values():
        if isinstance(path, str) and path:
            remove_own(path)


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
