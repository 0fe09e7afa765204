"""SIGTERM (and, for the server, SIGINT) end a job like a cancel: temporary files are removed, the
server still sends the job's final event, and the process exits with 128 + the signal number.

A handler may only raise where that is safe. The CLI runs its job in the main thread, so the handler
raises `JobCancelled` there and the engine's cleanup runs as for any cancel. The server's main thread
reads requests; the handler asks the server to stop, which interrupts only a blocking read
(`Server.request_termination`).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterable


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def on_signals(signums: Iterable[int], action: Callable[[int], None]):
    """Call ``action(signum)`` on the first of ``signums``; later ones are ignored while it cleans up.
    Outside the main thread (embedded use) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [s for s in signums if s is not None]
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        action(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def termination_signals(include_interrupt: bool = False):
    """SIGTERM where the platform has it (and SIGINT when asked)."""
    found = [getattr(signal, "SIGTERM", None)]
    if include_interrupt:
        found.append(signal.SIGINT)
    return [s for s in found if s is not None]
