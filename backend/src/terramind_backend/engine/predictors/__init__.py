"""Task → predictor registry. A predictor module defines ``build(spec, layout, models, device, emit)``
returning an object with ``outputs`` (list of `OutputSpec`) and ``predict(batch) -> dict``.

Modules are imported only when a job runs (torch stays out of validation). Another package can add
a task with `register("segment", "my_pkg.segment")`; the built-in ones are listed below.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Dict

_TASKS: Dict[str, str] = {
    "generate": f"{__name__}.generate",
    "embed": f"{__name__}.embed",
    "tim-embed": f"{__name__}.embed",
    "reconstruct": f"{__name__}.reconstruct",
    "segment": f"{__name__}.segment",
}


def register(task: str, module: str) -> None:
    """Route ``task`` to ``module`` (dotted path of a module with a ``build`` function)."""
    _TASKS[task] = module


def available(task: str) -> bool:
    module = _TASKS.get(task)
    if module is None:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def load(task: str):
    if not available(task):
        raise KeyError(task)
    return importlib.import_module(_TASKS[task])
