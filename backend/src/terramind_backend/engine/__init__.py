"""Geospatial job engine: JobSpec → validate → align → tile → predict → blend → write.

Public API (stable; the stdio protocol server and the CLI use only this):
``validate_job(spec) -> JobSpec``, ``run_job(spec, emit=..., cancel=..., models=...) -> dict``,
``plan_job(spec) -> dict`` (dry run), ``ModelCache``, ``JobSpec``, ``parse_jobspec``, ``JobValidationError``, ``JobCancelled``.
Importing this package does not import torch; `run_job` does, when called.
"""
from .errors import JobCancelled, JobValidationError
from .jobspec import JobSpec, parse_jobspec
from .validate import validate_job

__all__ = ["JobCancelled", "JobSpec", "JobValidationError", "ModelCache", "confirmation_reasons", "explain",
           "parse_jobspec", "plan_job", "preflight", "run_job", "validate_job"]


def run_job(spec, *, emit=None, cancel=None, models=None, base_dir=None) -> dict:
    from .runner import run_job as _run

    return _run(spec, emit=emit, cancel=cancel, models=models, base_dir=base_dir)


def plan_job(spec, base_dir=None) -> dict:
    from .runner import plan_job as _plan

    return _plan(spec, base_dir=base_dir)


def confirmation_reasons(spec, base_dir=None) -> list:
    """Why a valid job looks like a mistake worth confirming (engine/guards.py); empty: run it."""
    from .guards import confirmation_reasons as _reasons

    return _reasons(spec, base_dir)


def preflight(spec, base_dir=None) -> dict:
    """Before a valid job starts: {"estimate": {"windows", "seconds"} or None, "confirm": [reasons]} (guards.py)."""
    from .guards import preflight as _preflight

    return _preflight(spec, base_dir)


def explain(exc, spec=None, base_dir=None) -> str:
    """The user-facing message (cause and fix) of a job that failed with ``exc`` (engine/failures.py)."""
    from .failures import explain as _explain

    return _explain(exc, spec, base_dir)


def __getattr__(name):
    if name == "ModelCache":
        from .model_cache import ModelCache

        return ModelCache
    raise AttributeError(name)
