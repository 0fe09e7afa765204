"""QGIS quitting (or the plugin being unloaded) while a TerraMind task runs.

When QGIS quits it unloads its plugins, then tears down the interface, its message bar and the log
panel, while a task's worker thread may still be in a job; a task that finishes then runs ``finished()``
against deleted objects (an abort: "wrapped C/C++ object of type QgisInterface has been deleted", or a
segfault). So at the plugin's ``unload()`` (and, should a task outlive it, at ``aboutToQuit``):
`quitting()` turns true, every running TerraMind task is cancelled, the backend is stopped (its job is
cancelled and removes its temporary files) and the tasks' worker threads are given a moment to return.
From then on tasks report nothing: no progress, no log line, no message bar, no layers, no
``on_finished`` callback.
"""
from __future__ import annotations

import threading
from typing import Set

from qgis.core import QgsApplication, QgsTask

from .log import log

TASK_WAIT_MS = 5000   # per task, after the backend was stopped; run() returns within ~0.1 s of that

_quitting = threading.Event()
_tasks: Set[object] = set()
_lock = threading.Lock()
_installed = False


def quitting() -> bool:
    """True once QGIS has started to quit: touch no interface object any more."""
    return _quitting.is_set()


def track(task) -> None:
    """Remember a running task so that quitting can cancel it (call from its ``__init__``). A new task means
    the plugin is in use (again, after an unload and a new load): tasks report again."""
    install()
    with _lock:
        _tasks.add(task)


def forget(task) -> None:
    with _lock:
        _tasks.discard(task)


def install() -> None:
    """Connect to QGIS's ``aboutToQuit`` once (main thread); a plugin loaded again reports again."""
    global _installed
    _quitting.clear()
    app = QgsApplication.instance()
    if _installed or app is None:
        return
    app.aboutToQuit.connect(on_quit)
    _installed = True


def on_quit() -> None:
    """QGIS is quitting or the plugin is unloaded: cancel our tasks, stop the backend, let the worker
    threads return."""
    from qgis.PyQt import sip

    from .client import shutdown_client

    _quitting.set()
    with _lock:
        tasks = [t for t in _tasks if not sip.isdeleted(t)]
    for task in tasks:
        task.cancel()
    shutdown_client()  # the backend cancels its job, removes its temporary files and exits
    for task in tasks:
        # only a running task: waitForFinished() on a task that never started blocks until it starts
        if not sip.isdeleted(task) and task.status() == QgsTask.Running:
            task.waitForFinished(TASK_WAIT_MS)


def consumed_by_shell(event) -> bool:
    """The part of a backend event every TerraMind task handles alike, on its worker thread: nothing at all while
    QGIS is being torn down (no log panel, no progress bar any more), and backend log lines go to the TerraMind
    log. True when the event needs nothing more from the task."""
    if quitting():
        return True
    if event.get("event") == "log":
        log(event.get("message", ""), event.get("level", "info"))
        return True
    return False
