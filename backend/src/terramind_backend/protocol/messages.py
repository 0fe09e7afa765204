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
    except ValueError as exc:
        raise ProtocolError(f"Request is not valid JSON ({exc.msg} at column {exc.colno}).") from None
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


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: send them as null so every client can parse the line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode_event(event: str, job: Optional[str], **fields: Any) -> str:
    """One protocol line (with the trailing newline) for an event about ``job``."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    payload = {"event": event, "job": job, **fields}
    return json.dumps(_finite(payload), ensure_ascii=False, allow_nan=False, default=str) + "\n"


def error_event(job: Optional[str], kind: str, message: str, field: Optional[str] = None, **extra: Any) -> str:
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}")
    return encode_event("error", job, kind=kind, message=message, field=field, **extra)
