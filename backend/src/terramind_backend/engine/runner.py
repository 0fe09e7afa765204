"""`run_job`: parse → validate → hand the job to its executor (`executors/local.py` in this
process, `executors/ray.py` on a Ray cluster); `plan_job`: the dry run. Outputs appear at their
destination only after every one of them is complete.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from . import predictors
from .errors import JobValidationError
from .executors.windows import window_plan, work_grid
from .guards import check_input_values
from .jobspec import JobSpec, parse_jobspec
from .model_cache import ModelCache
from .tasks import own_job
from .validate import inspect_job

Emit = Callable[[dict], None]


def _resolve_device(requested: str) -> str:
    from ..environment import pick_device

    try:
        return pick_device(requested)
    except (RuntimeError, ValueError) as exc:
        raise JobValidationError(str(exc), "device")


def run_job(spec, *, emit: Optional[Emit] = None, cancel: Optional[threading.Event] = None,
            models: Optional[ModelCache] = None, base_dir: Optional[str] = None) -> dict:
    """Run one job on its executor (local or Ray); returns the result payload of docs/jobspec.md."""
    started = time.monotonic()
    emit = emit or (lambda event: None)
    cancel = cancel or threading.Event()
    models = models if models is not None else ModelCache()
    job = own_job(spec)
    if job is not None:  # a task with its own JobSpec form and loop (engine/tasks.py)
        return job.run(spec, emit=emit, cancel=cancel, models=models, base_dir=base_dir)
    spec: JobSpec = parse_jobspec(spec, base_dir=base_dir)
    if not predictors.available(spec.task):
        raise JobValidationError(f"Task {spec.task!r} is not available in this backend build.", "task")
    layout = inspect_job(spec)
    for warning in list(spec.warnings) + check_input_values(spec, layout):
        emit({"event": "log", "level": "warning", "message": warning})
    if spec.executor.kind == "ray":
        from .executors.ray import run_on_ray

        result = run_on_ray(spec, layout, emit, cancel)
    else:
        from .executors.local import run_local

        result = run_local(spec, layout, _resolve_device(spec.device), models, emit, cancel)
    return {**result, "elapsed_s": round(time.monotonic() - started, 3)}


def plan_job(spec, base_dir: Optional[str] = None) -> dict:
    """What a job would do, without loading a model or writing anything (CLI ``--dry-run``)."""
    job = own_job(spec)
    if job is not None:
        return job.plan(spec, base_dir=base_dir)
    spec = parse_jobspec(spec, base_dir=base_dir)
    layout = inspect_job(spec)
    plan = window_plan(work_grid(spec, layout), spec)
    return {"task": spec.task, "model": spec.model,
            "grid": {"crs": layout.grid.crs.to_string(), "transform": list(layout.grid.transform)[:6],
                     "width": layout.grid.width, "height": layout.grid.height},
            "inputs": {m: {"path": s.path, "bands": list(s.bands), "nodata": s.nodata,
                           "warped": s.crs != layout.grid.crs or abs(s.res[0] - layout.grid.res) > 1e-9}
                       for m, s in layout.sources.items()},
            "windows": plan.windows, "batches": len(plan),
            "outputs": dict(spec.outputs), "executor": spec.executor.kind, "warnings": list(spec.warnings)}


__all__ = ["ModelCache", "plan_job", "run_job"]
