"""`run_job`: validate → load models → read windows → predict → blend → write → publish.

Memory stays flat with scene size: inputs are read one batch of windows at a time, each product is
blended in a `RowStripAccumulator` (window rows × scene width) and finished rows go straight to the
output's temp file. Outputs appear at their destination only after every one of them is complete.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from . import predictors
from .align import AlignedReader
from .blending import RowStripAccumulator, weight_kernel
from .errors import JobCancelled, JobValidationError
from .jobspec import PATCH, JobSpec, parse_jobspec
from .model_cache import ModelCache
from .predictors.base import Context, Product
from .styles import style_for
from .tasks import TASKS, own_job
from .tiling import batches, plan_windows
from .validate import inspect_job
from .writer import OutputWriter, style_path

Emit = Callable[[dict], None]


def _polygon_mask(polygon, grid, row_off: int, rows: int):
    """True inside the extent polygon for rows ``row_off``… of ``grid`` (None: no polygon)."""
    if polygon is None:
        return None
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    win = Window(0, row_off, grid.width, rows)
    return ~geometry_mask([polygon], out_shape=(rows, grid.width), transform=grid.window_transform(win),
                          all_touched=True)


class _Sink:
    """Blended rows of one product → finalized arrays → its output writers."""

    def __init__(self, product: Product, grid, writers: List[OutputWriter], polygon):
        self.product, self.grid, self.writers, self.polygon = product, grid, writers, polygon

    def __call__(self, row_off: int, blended: np.ndarray) -> None:
        values, validity = blended[:-1], blended[-1]
        valid = np.nan_to_num(validity, nan=0.0) >= 0.5
        inside = _polygon_mask(self.polygon, self.grid, row_off, blended.shape[1])
        if inside is not None:
            valid &= inside
        for writer, data in zip(self.writers, self.product.finalize(values)):
            nodata = writer.spec.nodata
            if nodata is not None:
                data = data.copy()
                data[:, ~valid] = nodata
            writer.write(row_off, data, valid)


def _resolve_device(requested: str) -> str:
    from ..environment import pick_device

    try:
        return pick_device(requested)
    except (RuntimeError, ValueError) as exc:
        raise JobValidationError(str(exc), "device")


def run_job(spec, *, emit: Optional[Emit] = None, cancel: Optional[threading.Event] = None,
            models: Optional[ModelCache] = None, base_dir: Optional[str] = None) -> dict:
    """Run one job (see module docstring); returns the result payload of docs/jobspec.md."""
    import rasterio

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
    for warning in spec.warnings:
        emit({"event": "log", "level": "warning", "message": warning})
    device = _resolve_device(spec.device)
    predictor = predictors.load(spec.task).build(Context(spec, layout, models, device, emit))
    grid = _work_grid(spec, layout)
    windows = plan_windows(grid.height, grid.width, spec.tiling.window, spec.tiling.overlap)
    total = len(windows)
    emit({"event": "log", "level": "info",
          "message": f"{spec.task} on {device}: grid {layout.grid.width}x{layout.grid.height} px "
                     f"({layout.grid.crs.to_string()}, {layout.grid.res:g} units/px), {total} windows"})

    writers: List[OutputWriter] = []
    readers: Dict[str, AlignedReader] = {}
    try:
        with rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=1):
            readers = {m: AlignedReader(layout.sources[m], spec.inputs[m], grid) for m in spec.inputs}
            strips = []
            for product in predictor.products:
                pgrid = grid.coarsen(product.scale) if product.scale > 1 else grid
                pws = [OutputWriter(out, pgrid) for out in product.outputs]
                writers += pws
                size = spec.tiling.window // product.scale
                acc = RowStripAccumulator(pgrid.height, pgrid.width, product.channels + 1, size,
                                          _Sink(product, pgrid, pws, layout.polygon))
                kernel = weight_kernel(size, spec.tiling.overlap // product.scale)
                strips.append((product, acc, kernel))

            done, t0 = 0, time.monotonic()
            emit(_progress(0, total, None, "Starting"))
            for index, batch in enumerate(batches(windows, spec.tiling.batch_size)):
                if cancel.is_set():
                    raise JobCancelled()
                arrays, valid = _read_batch(readers, batch)
                outputs = predictor.predict(arrays, valid, index)
                for product, acc, kernel in strips:
                    pvalid = _pool(valid, product.scale)
                    values = outputs[product.key]
                    for k, win in enumerate(batch):
                        stacked = np.concatenate([values[k], pvalid[k][None]], axis=0)
                        acc.add(int(win.row_off) // product.scale, int(win.col_off) // product.scale,
                                stacked, kernel)
                done += len(batch)
                elapsed = time.monotonic() - t0
                eta = elapsed / done * (total - done)
                emit(_progress(done, total, eta, f"{done}/{total} windows"))
            if cancel.is_set():
                raise JobCancelled()
            emit({"event": "log", "level": "info", "message": "Writing Cloud Optimized GeoTIFFs"})
            for _, acc, _ in strips:
                acc.close()
            for w in writers:
                w.finish(style_for(w.spec, w.stats()))
            if cancel.is_set():
                raise JobCancelled()
            for w in writers:
                w.commit()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    finally:
        for r in readers.values():
            r.close()
    return {
        "outputs": [{"name": w.spec.name, "path": w.spec.path, "style": style_path(w.spec.path), "kind": w.spec.kind}
                    for w in writers],
        "elapsed_s": round(time.monotonic() - started, 3),
        "tiles": total,
        "device": device,
    }


def plan_job(spec, base_dir: Optional[str] = None) -> dict:
    """What a job would do, without loading a model or writing anything (CLI ``--dry-run``)."""
    job = own_job(spec)
    if job is not None:
        return job.plan(spec, base_dir=base_dir)
    spec = parse_jobspec(spec, base_dir=base_dir)
    layout = inspect_job(spec)
    grid = _work_grid(spec, layout)
    windows = plan_windows(grid.height, grid.width, spec.tiling.window, spec.tiling.overlap)
    return {"task": spec.task, "model": spec.model,
            "grid": {"crs": layout.grid.crs.to_string(), "transform": list(layout.grid.transform)[:6],
                     "width": layout.grid.width, "height": layout.grid.height},
            "inputs": {m: {"path": s.path, "bands": list(s.bands), "nodata": s.nodata,
                           "warped": s.crs != layout.grid.crs or abs(s.res[0] - layout.grid.res) > 1e-9}
                       for m, s in layout.sources.items()},
            "windows": len(windows), "batches": -(-len(windows) // spec.tiling.batch_size),
            "outputs": dict(spec.outputs), "warnings": list(spec.warnings)}


def _work_grid(spec: JobSpec, layout):
    """The grid windows are cut from: padded to whole patches for tasks that write per patch."""
    return layout.grid.padded_to(PATCH) if TASKS[spec.task].patch_aligned else layout.grid


def _progress(done: int, total: int, eta: Optional[float], message: str) -> dict:
    return {"event": "progress", "stage": "tiles", "done": done, "total": total,
            "fraction": done / total if total else 1.0, "eta_s": None if eta is None else round(eta, 1),
            "message": message}


def _read_batch(readers: Dict[str, AlignedReader], batch):
    """Stack one batch of windows per modality; a pixel is valid where every input is valid."""
    arrays, valid = {}, None
    for mod, reader in readers.items():
        stack, masks = [], []
        for win in batch:
            data, ok = reader.read(win)
            stack.append(data)
            masks.append(ok)
        arrays[mod] = np.stack(stack)
        m = np.stack(masks)
        valid = m if valid is None else valid & m
    return arrays, valid


def _pool(valid: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of valid pixels per ``factor``×``factor`` block (1 = pixel resolution, unchanged)."""
    v = valid.astype(np.float32)
    if factor == 1:
        return v
    b, h, w = v.shape
    return v.reshape(b, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


__all__ = ["ModelCache", "plan_job", "run_job"]
