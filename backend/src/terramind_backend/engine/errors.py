"""Errors the engine raises on purpose: each maps to one protocol error kind and one CLI exit code."""
from __future__ import annotations

from typing import Optional


class JobValidationError(ValueError):
    """The JobSpec or its files are wrong; raised before any heavy work, nothing written.

    ``field`` names the offending JobSpec entry with dots (``inputs.S1RTC.bands``) so a dialog can
    highlight it; ``None`` when the problem is not tied to one field.
    """

    kind = "validation"

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"field": self.field, "message": self.message}


class JobCancelled(RuntimeError):
    """The cancel flag was set; the job stopped between batches and removed its temporary files."""

    kind = "cancelled"

    def __init__(self, message: str = "Job cancelled; no output was written."):
        super().__init__(message)
        self.message = message
