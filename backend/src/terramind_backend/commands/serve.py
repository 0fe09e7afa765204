"""`terramind serve --stdio`: the JSON-lines server the QGIS plugin talks to (docs/protocol.md)."""
from __future__ import annotations

import io
import logging
import os
import sys
import warnings


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve jobs over newline-delimited JSON (used by the QGIS plugin)")
    p.add_argument("--stdio", action="store_true", required=True,
                   help="requests on stdin, events on stdout (the only transport so far)")
    p.add_argument("--log-level", default=os.environ.get("TERRAMIND_LOG_LEVEL", "INFO"),
                   help="level of the diagnostic log written to stderr (default INFO)")
    p.add_argument("--model-cache-mb", type=float, default=None,
                   help="memory for models kept loaded between jobs; least recently used ones are unloaded "
                        "beyond it (default: $TERRAMIND_MODEL_CACHE_MB, else 40%% of physical memory)")
    p.set_defaults(func=run)


def _protocol_streams():
    """(requests in, events out); afterwards anything else written to stdout lands on stderr.

    The events stream is a private duplicate of file descriptor 1; fd 1 itself is pointed at
    stderr, so a stray print(), a C library or a progress bar cannot corrupt the protocol.
    """
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    events = io.open(events_fd, "w", encoding="utf-8", errors="backslashreplace", newline="\n", buffering=1)
    return sys.stdin.buffer, events  # bytes: protocol.safe_io decodes (and caps) each line on its own


def _lower_priority() -> None:
    """TERRAMIND_NICE=N (set by the plugin): run below the desktop's priority, so a CPU job cannot
    make QGIS's interface stutter. Done first, before torch starts its threads (they inherit it)."""
    try:
        nice = int(os.environ.get("TERRAMIND_NICE", "0"))
    except ValueError:
        return
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass


def run(args) -> int:
    from ..protocol.server import JobLogHandler, Server

    _lower_priority()
    if args.model_cache_mb is not None:
        from ..engine.model_cache import BUDGET_ENV

        if not args.model_cache_mb > 0:
            print("terramind serve: --model-cache-mb must be a positive number of megabytes", file=sys.stderr)
            return 2
        os.environ[BUDGET_ENV] = str(args.model_cache_mb)
    requests, events = _protocol_streams()
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    os.environ.setdefault("TQDM_DISABLE", "1")  # huggingface_hub bars would only clutter stderr
    server = Server(requests, events)
    logging.getLogger().addHandler(JobLogHandler(server))
    from ..signals import on_signals, termination_signals

    with on_signals(termination_signals(include_interrupt=True), server.request_termination):
        code = server.serve()
    # Jobs are finished or cleaned up by now. Skip the interpreter's teardown: with models loaded,
    # freeing them and torch's atexit work take seconds, and the client waits for the exit.
    logging.shutdown()
    for stream in (events, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
