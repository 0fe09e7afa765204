"""BackendClient: the QGIS side of the JSON-lines protocol (docs/protocol.md).

One backend process serves every job and stays warm (models cached). A reader thread turns its
stdout into events routed by request id; callers block in ``run_job``/``validate``/``hello`` from
worker threads (QgsTask.run, Processing algorithms), never from the GUI thread. stderr goes to a
temporary file (a pipe nobody reads could fill up and stall the backend) whose tail is quoted when
the process dies. If it dies, the request fails with that message and the next one starts a new
process. Only the standard library and qgis are used here; nothing imports torch.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence

PROTOCOL_VERSION = 1
POLL_S = 0.1                # how often a blocked call looks at is_cancelled()
CANCEL_GRACE_S = 5.0        # a cancelled job that has not ended by then gets its process killed
STDERR_TAIL_CHARS = 3000
BACKEND_NICE = 5            # POSIX niceness of the backend process (CPU jobs yield to the GUI)

EventCallback = Callable[[Dict[str, Any]], None]
_SETTINGS_VARIABLES = ("HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "HF_TOKEN")


class BackendError(RuntimeError):
    """A request failed. ``kind``: validation | runtime | protocol | cancelled (from the backend),
    crashed (the process died) or setup (no usable backend interpreter)."""

    def __init__(self, message: str, kind: str = "runtime", field: Optional[str] = None,
                 detail: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.field = field
        self.detail = detail


class BackendCancelled(BackendError):
    def __init__(self, message: str = "Job cancelled."):
        super().__init__(message, kind="cancelled")


def backend_command(interpreter: str) -> List[str]:
    return [interpreter, "-m", "terramind_backend", "serve", "--stdio"]


def _explain_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code in (-9, 137):
        return f"exit code {code}: killed, possibly by the system running out of memory"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


class _Process:
    """One running backend process, its reader thread and the requests waiting on it."""

    def __init__(self, command: Sequence[str], env: Dict[str, str]):
        self.stderr_file = tempfile.TemporaryFile(prefix="terramind-backend-", suffix=".log")
        # Windows: CREATE_NO_WINDOW (no console pops up) | BELOW_NORMAL_PRIORITY_CLASS; elsewhere the
        # backend lowers its own priority from TERRAMIND_NICE, so the QGIS interface stays fluid.
        flags = 0x08000000 | 0x00004000 if sys.platform == "win32" else 0
        env = dict(env)
        env.setdefault("TERRAMIND_NICE", str(BACKEND_NICE))
        try:
            self.popen = subprocess.Popen(  # nosec B603: argv list, no shell; the configured backend interpreter
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_file, env=env,
                cwd=tempfile.gettempdir(), creationflags=flags)
        except OSError as exc:
            self.stderr_file.close()
            raise BackendError(f"Could not start the TerraMind backend ({command[0]}): {exc}", kind="setup") from exc
        self.pid = self.popen.pid
        self.started = time.monotonic()
        self.pending: Dict[str, "queue.Queue"] = {}
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.dead = False
        self.reader = threading.Thread(target=self._read, name=f"terramind-reader-{self.pid}", daemon=True)
        self.reader.start()

    def alive(self) -> bool:
        return not self.dead and self.popen.poll() is None

    def _read(self) -> None:
        stream = self.popen.stdout
        for raw in iter(stream.readline, b""):
            try:
                event = json.loads(raw.decode("utf-8"))
            except ValueError:
                continue  # not a protocol line; the backend keeps stdout clean, so this is noise
            if not isinstance(event, dict):
                continue
            with self.lock:
                target = self.pending.get(event.get("job"))
            if target is not None:
                target.put(event)
        # End of output: the process is gone (or going). Wake everyone waiting on it.
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        with self.lock:
            self.dead = True
            waiting = list(self.pending.values())
        for target in waiting:
            target.put({"event": "_exit"})

    def register(self, request_id: str) -> "queue.Queue":
        target: "queue.Queue" = queue.Queue()
        with self.lock:
            if self.dead:
                target.put({"event": "_exit"})
            self.pending[request_id] = target
        return target

    def unregister(self, request_id: str) -> None:
        with self.lock:
            self.pending.pop(request_id, None)

    def send(self, request: Dict[str, Any]) -> None:
        line = (json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8")
        with self.write_lock:
            try:
                self.popen.stdin.write(line)
                self.popen.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise BackendError(self.death_message("while a request was sent"), kind="crashed") from None

    def stderr_tail(self, limit: int = STDERR_TAIL_CHARS) -> str:
        try:
            self.stderr_file.flush()
            size = self.stderr_file.seek(0, os.SEEK_END)
            self.stderr_file.seek(max(0, size - limit))
            return self.stderr_file.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def death_message(self, when: str) -> str:
        try:
            code = self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        tail = self.stderr_tail()
        message = f"The TerraMind backend process (pid {self.pid}) stopped unexpectedly {when} ({_explain_exit(code)})."
        if tail:
            message += f"\nLast lines of its log:\n{tail}"
        return message + "\nThe next job starts a new backend process."

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self, timeout: float = 3.0) -> None:
        """Ask for a clean shutdown, then kill whatever is left."""
        if self.alive():
            try:
                self.send({"op": "shutdown", "id": f"shutdown-{uuid.uuid4().hex[:8]}"})
                self.popen.stdin.close()
                self.popen.wait(timeout=timeout)
            except (BackendError, OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.reader.join(2)
        for stream in (self.popen.stdin, self.popen.stdout, self.stderr_file):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class BackendClient:
    """A warm backend process shared by all jobs; thread-safe, blocking calls."""

    def __init__(self, interpreter: Optional[str], env: Optional[Dict[str, str]] = None,
                 executor: Optional[Dict[str, Any]] = None):
        self.interpreter = interpreter
        self.executor = executor    # JobSpec executor for jobs that name none (settings: Ray cluster)
        self.command = backend_command(interpreter) if interpreter else None
        self.env = dict(env if env is not None else os.environ)
        self._proc: Optional[_Process] = None
        self._lock = threading.Lock()
        self._hello: Optional[Dict[str, Any]] = None
        self._active = 0
        self._retire = False

    @classmethod
    def from_settings(cls, settings=None) -> "BackendClient":
        from .settings import Settings

        settings = settings or Settings()
        return cls(settings.resolve_interpreter(), settings.backend_environment(), settings.executor())

    def fingerprint(self) -> tuple:
        """What makes two clients interchangeable: the command and the settings-derived variables
        (the rest of the environment, e.g. PYTEST_CURRENT_TEST or a changed PATH, does not count)."""
        return (tuple(self.command or ()),) + tuple(self.env.get(k) for k in _SETTINGS_VARIABLES)

    # -- process management ---------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        proc = self._proc
        return proc.pid if proc is not None and proc.alive() else None

    def is_running(self) -> bool:
        return self.pid is not None

    def _process(self) -> _Process:
        with self._lock:
            if self._proc is not None and self._proc.alive():
                return self._proc
            if self._proc is not None:
                self._proc.close(timeout=0.5)
                self._proc, self._hello = None, None
            if not self.command:
                raise BackendError(
                    "No Python interpreter for the TerraMind backend was found. Open Raster › TerraMind › "
                    "Settings and backend… and install the backend, or choose an interpreter that has "
                    "terramind-backend installed (or set TERRAMIND_BACKEND_PYTHON).", kind="setup")
            if not os.path.isfile(self.command[0]):
                raise BackendError(f"The configured backend interpreter does not exist: {self.command[0]}. "
                                   "Fix it in Raster › TerraMind › Settings and backend…", kind="setup")
            self._proc = _Process(self.command, self.env)
            return self._proc

    def shutdown(self, timeout: float = 3.0) -> None:
        with self._lock:
            proc, self._proc, self._hello = self._proc, None, None
        if proc is not None:
            proc.close(timeout)

    def kill(self) -> None:
        """Hard stop (used when a cancelled job does not end in time, and by tests)."""
        with self._lock:
            proc = self._proc
        if proc is not None:
            proc.kill()

    def retire(self) -> None:
        """Shut down once no request is running (settings changed; a new client takes over)."""
        with self._lock:
            self._retire = True
            idle = self._active == 0
        if idle:
            self.shutdown()

    def stderr_tail(self) -> str:
        proc = self._proc
        return proc.stderr_tail() if proc is not None else ""

    # -- requests -------------------------------------------------------------------------
    def _begin(self):
        with self._lock:
            self._active += 1
        try:
            proc = self._process()
        except BaseException:
            self._end()
            raise
        return proc

    def _end(self) -> None:
        with self._lock:
            self._active -= 1
            retire = self._retire and self._active == 0
        if retire:
            self.shutdown()

    def _request(self, op: str, timeout: float, terminal: Sequence[str] = ("result",), **fields) -> Dict[str, Any]:
        proc = self._begin()
        request_id = f"{op}-{uuid.uuid4().hex[:12]}"
        events = proc.register(request_id)
        try:
            proc.send({"op": op, "id": request_id, **fields})
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BackendError(f"The TerraMind backend did not answer '{op}' within {timeout:.0f} s.",
                                       kind="runtime")
                try:
                    event = events.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                kind = event.get("event")
                if kind in terminal:
                    return event
                if kind == "error":
                    raise _error_from(event)
                if kind == "_exit":
                    raise BackendError(proc.death_message(f"during '{op}'"), kind="crashed")
        finally:
            proc.unregister(request_id)
            self._end()

    def hello(self, timeout: float = 180.0) -> Dict[str, Any]:
        """Versions, device and cached weights of the backend (starts it if needed; cached per process)."""
        proc_before = self._proc
        if self._hello is not None and proc_before is not None and proc_before.alive():
            return dict(self._hello)
        event = self._request("hello", timeout, terminal=("hello",))
        if event.get("protocol") != PROTOCOL_VERSION:
            raise BackendError(f"The backend speaks protocol {event.get('protocol')!r}, this plugin speaks "
                               f"{PROTOCOL_VERSION}: update the backend (Settings and backend… › Install).",
                               kind="setup")
        info = {k: v for k, v in event.items() if k not in ("event", "job")}
        self._hello = info
        return dict(info)

    def validate(self, spec: Dict[str, Any], timeout: float = 120.0) -> List[Dict[str, Any]]:
        """Problems the backend finds in a JobSpec ([] = valid), each {"field": ..., "message": ...}."""
        return self.review(spec, timeout)["problems"]

    def review(self, spec: Dict[str, Any], timeout: float = 120.0) -> Dict[str, List[Any]]:
        """The backend's verdict on a JobSpec: {"problems": [...] ([] = valid), "confirm": [reasons a valid job
        looks like a mistake, to ask about before running it]} (docs/protocol.md, validate)."""
        event = self._request("validate", timeout, spec=spec)
        return {"problems": list(event.get("problems") or []), "confirm": list(event.get("confirm") or [])}

    def models(self, timeout: float = 120.0) -> Dict[str, Any]:
        event = self._request("models", timeout)
        return {"models": event.get("models", []), "cached": event.get("cached", [])}

    def run_job(self, spec: Dict[str, Any], on_event: Optional[EventCallback] = None,
                is_cancelled: Optional[Callable[[], bool]] = None,
                cancel_grace_s: float = CANCEL_GRACE_S) -> Dict[str, Any]:
        """Run one JobSpec; blocks until it ends. Returns the result payload (outputs, elapsed_s, …).

        ``on_event`` gets every progress/log event (in this thread). ``is_cancelled`` is polled every
        100 ms; once true a cancel is sent, and if the job has not ended ``cancel_grace_s`` later the
        process is killed (the next job starts a new one). Raises BackendCancelled or BackendError.
        """
        if self.executor and "executor" not in spec:
            spec = {**spec, "executor": self.executor}
        proc = self._begin()
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        events = proc.register(job_id)
        cancel_sent_at: Optional[float] = None
        try:
            proc.send({"op": "run", "id": job_id, "spec": spec})
            while True:
                if cancel_sent_at is None and is_cancelled is not None and is_cancelled():
                    cancel_sent_at = time.monotonic()
                    try:
                        proc.send({"op": "cancel", "id": f"cancel-{uuid.uuid4().hex[:8]}", "job": job_id})
                    except BackendError:
                        raise BackendCancelled("Job cancelled (the backend had already stopped).") from None
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > cancel_grace_s:
                    proc.kill()
                    raise BackendCancelled(f"Job cancelled; the backend did not stop within {cancel_grace_s:.0f} s "
                                           "and was restarted.")
                try:
                    event = events.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                kind = event.get("event")
                if kind == "result":
                    return {k: v for k, v in event.items() if k not in ("event", "job")}
                if kind == "error":
                    raise _error_from(event)
                if kind == "_exit":
                    if cancel_sent_at is not None:
                        raise BackendCancelled("Job cancelled (the backend process ended).")
                    raise BackendError(proc.death_message("while running a job"), kind="crashed")
                if on_event is not None and kind in ("progress", "log"):
                    try:
                        on_event(event)
                    except Exception as exc:  # noqa: BLE001 - a faulty listener must not lose the job's result
                        from .log import log  # qgis is imported lazily here, like the rest of this module
                        log(f"A progress listener failed on {kind!r}: {type(exc).__name__}: {exc}", "warning")
        finally:
            proc.unregister(job_id)
            self._end()


def _error_from(event: Dict[str, Any]) -> BackendError:
    kind = event.get("kind") or "runtime"
    message = event.get("message") or "The backend reported an error without a message."
    if kind == "cancelled":
        return BackendCancelled(message)
    return BackendError(message, kind=kind, field=event.get("field"), detail=event.get("detail"))


# -- the process-wide client -------------------------------------------------------------
_client: Optional[BackendClient] = None
_client_lock = threading.Lock()


def get_client(settings=None) -> BackendClient:
    """The shared warm client. Settings are read on each call (call it on the main thread: the
    HF token comes from the auth manager); a changed interpreter, cache, offline mode or token
    retires the old process once it is idle and returns a new client."""
    global _client
    if _client is not None and not _on_main_thread():
        return _client  # reading settings (auth manager) off the main thread could prompt from a worker
    fresh = BackendClient.from_settings(settings)
    with _client_lock:
        current = _client
        if current is not None and current.fingerprint() == fresh.fingerprint():
            current.executor = fresh.executor  # per job, not per process: no restart needed
            return current
        _client = fresh
    if current is not None:
        current.retire()
    return fresh


def _on_main_thread() -> bool:
    from qgis.PyQt.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    return app is None or QThread.currentThread() == app.thread()


def shutdown_client() -> None:
    """Stop the shared backend process (plugin unload, QGIS exit)."""
    global _client
    with _client_lock:
        current, _client = _client, None
    if current is not None:
        current.shutdown()


atexit.register(shutdown_client)
