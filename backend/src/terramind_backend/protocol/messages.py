"""Requests and events of the stdio protocol: what is allowed on a line, and how a line is written.

One JSON object per line, UTF-8, ``\\n``-terminated. Requests carry ``op`` and ``id``; every event
carries ``event`` and ``job`` (the id of the request it answers, ``null`` when a line could not be
read at all). The full description with examples is in docs/protocol.md.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional

PROTOCOL_VERSION = 1

OPS = ("hello", "run", "validate", "cancel", "models", "shutdown")
EVENTS = ("hello", "progress", "log", "result", "error")
ERROR_KINDS = ("validation", "cancelled", "runtime", "protocol")

# A JobSpec nests five levels deep; a client never needs more than this, and a cap keeps a hostile line
# from exhausting the interpreter's recursion limit anywhere downstream.
MAX_DEPTH = 32
_MAX_EVENT_DEPTH = 32   # deeper event values are sent as their repr string

# Fields a request must carry besides op/id, and their JSON type.
_REQUIRED = {
    "run": {"spec": dict},
    "validate": {"spec": dict},
    "cancel": {"job": str},
}


class ProtocolError(ValueError):
    """A request line that cannot be served; ``job`` is its id when one could be read."""

    def __init__(self, message: str, job: Optional[str] = None, field: Optional[str] = None):
        super().__init__(message)
        self.job = job
        self.field = field


def decode_request(line: str) -> Dict[str, Any]:
    """Parse and check one request line; raise ProtocolError with a message a client can show."""
    try:
        request = json.loads(line)
    except RecursionError:
        raise ProtocolError(f"Request is nested too deeply (at most {MAX_DEPTH} levels).") from None
    except ValueError as exc:
        msg = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ProtocolError(f"Request is not valid JSON ({msg}).") from None
    if _depth(request) > MAX_DEPTH:
        raise ProtocolError(f"Request is nested too deeply (at most {MAX_DEPTH} levels).",
                            job=request.get("id") if isinstance(request, dict) and isinstance(request.get("id"), str)
                            else None)
    if not isinstance(request, dict):
        raise ProtocolError(f"Request must be a JSON object, got {type(request).__name__}.")
    job = request.get("id")
    if not isinstance(job, str) or not job:
        raise ProtocolError("Request needs a non-empty string 'id'.", field="id")
    op = request.get("op")
    if op not in OPS:
        raise ProtocolError(f"Unknown op {op!r}; known ops: {', '.join(OPS)}.", job=job, field="op")
    for name, kind in _REQUIRED.get(op, {}).items():
        if not isinstance(request.get(name), kind):
            raise ProtocolError(f"Op {op!r} needs '{name}' ({'object' if kind is dict else 'string'}).",
                                job=job, field=name)
    return request


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _plain(value: Any, depth: int = 0) -> Any:
    """Only what JSON can carry: NaN/Infinity become null (every client can parse the line), keys become
    strings, other objects their ``str``, and anything nested absurdly deep (or circular) its ``repr``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if depth >= _MAX_EVENT_DEPTH:
        return repr(value)[:1000]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the event
        return f"<unprintable {type(value).__name__}>"


def encode_event(event: str, job: Optional[str], **fields: Any) -> str:
    """One protocol line (with the trailing newline) for an event about ``job``.

    Always encodable as UTF-8: text that is not (lone surrogates, e.g. from a file name that is not
    UTF-8) is sent with ``\\uXXXX`` escapes instead of being dropped.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    payload = _plain({"event": event, "job": job, **fields})
    line = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(payload, ensure_ascii=True, allow_nan=False)
    return line + "\n"


def error_text(exc: BaseException) -> str:
    """What a user reads for an unexpected error: our own exceptions carry a sentence meant for them (no Python
    class name in front, e.g. WeightsNotAvailable); a library's keeps its class name, which its message needs."""
    text = str(exc).strip()
    if text and type(exc).__module__.split(".")[0] == "terramind_backend":
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_event(job: Optional[str], kind: str, message: str, field: Optional[str] = None, **extra: Any) -> str:
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}")
    return encode_event("error", job, kind=kind, message=message, field=field, **extra)
