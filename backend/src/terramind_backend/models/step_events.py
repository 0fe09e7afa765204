"""Steps inside one model call (token-generation steps, diffusion steps), for whoever runs the model.

The models know nothing of jobs: their inner loops call ``report(phase, done, total)``, which does nothing
unless a listener is installed for the current context (``engine/executors/windows.Progress`` installs one
around each batch, so a one-batch job still reports progress while it runs).
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

# Phases a model reports (the protocol's `phase` field of a `tiles` progress event, docs/protocol.md)
TOKENS = "tokens"        # ROAR token-generation steps
DIFFUSION = "diffusion"  # DDIM steps of a diffusion decoder

Listener = Callable[[str, int, int], None]
_listener: contextvars.ContextVar[Optional[Listener]] = contextvars.ContextVar("terramind_step_listener",
                                                                              default=None)


def report(phase: str, done: int, total: int) -> None:
    """``done`` of ``total`` steps of ``phase`` are finished."""
    listener = _listener.get()
    if listener is not None:
        listener(phase, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send this context's step reports to ``listener`` until the block ends."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
