"""The local executor: the whole window plan in this process, one batch at a time.

Memory stays flat with scene size: inputs are read one batch of windows at a time and each product
is blended in a row strip (`assembly.Assembly`) whose finished rows go straight to the temp files.
"""
from __future__ import annotations

import rasterio

from .. import predictors
from ..errors import JobCancelled
from ..predictors.base import Context
from .assembly import Assembly
from .windows import (READ_ENV, Progress, close_readers, open_readers, read_windows, window_plan, window_stacks,
                      work_grid)


def run_local(spec, layout, device: str, models, emit, cancel) -> dict:
    predictor = predictors.load(spec.task).build(Context(spec, layout, models, device, emit))
    grid = work_grid(spec, layout)
    plan = window_plan(grid, spec)
    total = plan.windows
    emit({"event": "log", "level": "info",
          "message": f"{spec.task} on {device}: grid {layout.grid.width}x{layout.grid.height} px "
                     f"({layout.grid.crs.to_string()}, {layout.grid.res:g} units/px), {total} windows"})
    with rasterio.Env(**READ_ENV):
        readers = open_readers(spec, layout, grid)
        try:
            with Assembly(predictor.products, grid, spec.tiling.window, spec.tiling.overlap,
                          layout.polygon, points=getattr(predictor, "point_layers", ())) as assembly:
                progress = Progress(total, emit)
                for index in range(len(plan)):   # one batch per block
                    if cancel.is_set():
                        raise JobCancelled()
                    batch = plan[index].windows
                    with progress.batch(len(batch), predictor.steps_per_batch()):
                        arrays, valid = read_windows(readers, batch, grid, spec)
                        outputs = predictor.predict(arrays, valid, index)
                        assembly.add(batch, window_stacks(predictor.products, outputs, valid))
                assembly.publish(emit, cancel)
        finally:
            close_readers(readers)
    return {"outputs": assembly.outputs(), "tiles": total, "device": device}
