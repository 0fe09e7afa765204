"""Predictors: one module per task, named by the task table (`engine/tasks.py`).

A predictor module defines ``build(ctx: Context) -> Predictor`` (see `base.py`). Modules are
imported only when a job runs, so validation stays torch-free; `tasks.register` adds a task.
"""
from __future__ import annotations

import importlib
import importlib.util

from ..tasks import TASKS


def available(task: str) -> bool:
    """Whether ``task`` is known and its predictor module can be imported in this build."""
    entry = TASKS.get(task)
    if entry is None:
        return False
    try:
        return importlib.util.find_spec(entry.predictor) is not None
    except ModuleNotFoundError:
        return False


def load(task: str):
    if not available(task):
        raise KeyError(task)
    return importlib.import_module(TASKS[task].predictor)
