"""The window pieces every executor shares: the work grid and its plan (`BlockPlan`), reading a batch
of aligned windows, turning a batch's predictions into per-window stacks for the blender, progress.

A *stack* is one window's product values with its validity fraction as an extra last channel
(``[C + 1, s, s]``); the blender averages both, so a pixel is valid where most windows saw it valid.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.windows import Window

from ...models import step_events
from ..errors import JobCancelled
from ..failures import input_read_error
from ..grid import Grid
from ..jobspec import PATCH
from ..locations import needs_locations, window_centres
from ..modalities import COORDINATES
from ..tasks import TASKS
from ..tiling import axis_offsets

# GDAL settings while reading: a small block cache and one thread, so memory stays flat per reader.
READ_ENV = {"GDAL_CACHEMAX": 64, "GDAL_NUM_THREADS": 1}


def work_grid(spec, layout) -> Grid:
    """The grid windows are cut from: padded to whole patches for tasks that write per patch."""
    return layout.grid.padded_to(PATCH) if TASKS[spec.task].patch_aligned else layout.grid


def window_plan(grid: Grid, spec, block_batches: int = 1) -> "BlockPlan":
    """The job's windows in blocks of ``block_batches`` batches (local executor: one batch each)."""
    return BlockPlan.for_grid(grid, spec.tiling, block_batches)


@dataclass(frozen=True)
class Block:
    index: int
    first_batch: int                      # global batch number of its first batch (seeding)
    batches: Tuple[Tuple[Window, ...], ...]  # the windows of each batch, in plan order

    @property
    def windows(self) -> List[Window]:
        return [w for batch in self.batches for w in batch]


@dataclass(frozen=True)
class BlockPlan:
    """The row-major window plan of `tiling.plan_windows`, cut into blocks of ``block_batches``
    batches (the unit a Ray worker computes and retries) and computed block by block from the axis
    offsets: its size does not grow with the area. A block keeps the global numbers of its batches,
    so seeded sampling draws the same samples whichever executor runs it."""
    rows: Tuple[int, ...]                 # window row offsets
    cols: Tuple[int, ...]                 # window column offsets
    size: int
    batch_size: int
    block_batches: int

    @classmethod
    def for_grid(cls, grid, tiling, block_batches: int) -> "BlockPlan":
        stride = tiling.window - tiling.overlap
        return cls(tuple(axis_offsets(grid.height, tiling.window, stride)),
                   tuple(axis_offsets(grid.width, tiling.window, stride)), tiling.window, tiling.batch_size,
                   block_batches)

    @property
    def windows(self) -> int:
        return len(self.rows) * len(self.cols)

    def __len__(self) -> int:
        return -(-self.windows // (self.batch_size * self.block_batches))

    def __getitem__(self, index: int) -> Block:
        if not 0 <= index < len(self):
            raise IndexError(index)
        first_batch = index * self.block_batches
        start = first_batch * self.batch_size
        stop = min(start + self.block_batches * self.batch_size, self.windows)
        n = len(self.cols)
        windows = [Window(self.cols[k % n], self.rows[k // n], self.size, self.size) for k in range(start, stop)]
        return Block(index, first_batch, tuple(tuple(windows[i:i + self.batch_size])
                                               for i in range(0, len(windows), self.batch_size)))




def open_readers(spec, layout, grid: Grid) -> Dict[str, object]:
    from ..align import AlignedReader

    readers: Dict[str, object] = {}
    try:
        for mod in spec.inputs:
            readers[mod] = AlignedReader(layout.sources[mod], spec.inputs[mod], grid)
    except BaseException:
        close_readers(readers)
        raise
    return readers


def close_readers(readers: Dict[str, object]) -> None:
    for reader in readers.values():
        reader.close()


def read_batch(readers: Dict[str, object], batch: Sequence):
    """Stack one batch of windows per modality; a pixel is valid where every input is valid."""
    arrays, valid = {}, None
    for mod, reader in readers.items():
        stack, masks = [], []
        for win in batch:
            try:
                data, ok = reader.read(win)
            except JobCancelled:  # a cancel (signal, hard cancel) that landed inside the read
                raise
            except Exception as exc:  # noqa: BLE001 - GDAL's errors name blocks and offsets, not the file
                raise input_read_error(mod, reader.source.path, exc) from exc
            stack.append(data)
            masks.append(ok)
        arrays[mod] = np.stack(stack)
        m = np.stack(masks)
        valid = m if valid is None else valid & m
    return arrays, valid


def read_windows(readers: Dict[str, object], batch: Sequence, grid: Grid, spec):
    """`read_batch`, plus the windows' centres (lon, lat, WGS 84) under ``Coordinates`` when the job needs
    them (``options.use_location`` or a Coordinates output); the predictor decides how to use them."""
    arrays, valid = read_batch(readers, batch)
    if needs_locations(spec):
        arrays[COORDINATES] = window_centres(grid, batch)
    return arrays, valid


def pool(valid: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of valid pixels per ``factor``×``factor`` block (1 = pixel resolution, unchanged)."""
    v = valid.astype(np.float32)
    if factor == 1:
        return v
    b, h, w = v.shape
    return v.reshape(b, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def window_stacks(products, outputs: Dict[str, np.ndarray], valid: np.ndarray) -> Dict[str, np.ndarray]:
    """Per product: ``[B, C + 1, s, s]``, the predicted values and the pooled validity."""
    stacks = {}
    for product in products:
        pvalid = pool(valid, product.scale)[:, None]
        stacks[product.key] = np.concatenate([outputs[product.key], pvalid], axis=1)
    return stacks


def progress_event(done: int, total: int, fraction: float, eta: Optional[float], message: str, **extra) -> dict:
    return {"event": "progress", "stage": "tiles", "done": done, "total": total, "fraction": round(fraction, 4),
            "eta_s": None if eta is None else round(eta, 1), "message": message, **extra}


class Progress:
    """Emits windows done of ``total`` and, inside a batch, the model's steps (``models/step_events``), so the
    fraction moves during a long batch; the ETA is the measured time per fraction done so far."""

    MIN_INTERVAL_S = 0.5  # step events at most this often (a fast GPU step must not flood the pipe)

    def __init__(self, total: int, emit):
        self.total, self.emit, self.done = total, emit, 0
        self._t0 = time.monotonic()
        self._last_emit = float("-inf")
        self._steps_per_batch: Optional[int] = None  # what the previous batch reported
        self._fraction = 0.0
        emit(progress_event(0, total, 0.0, None, "Starting"))

    @contextmanager
    def batch(self, windows: int, expected_steps: Optional[int] = None):
        """Run one batch of ``windows``: its model steps move the fraction; ``advance`` follows at its end.
        ``expected_steps``: the predictor's own count, for the first batch (later ones use the last count)."""
        first, last = self.done + 1, self.done + windows
        span = f"tiles {first}\u2013{last} of {self.total}" if windows > 1 else f"tile {first} of {self.total}"
        expected = self._steps_per_batch or expected_steps
        reported = 0

        def on_step(phase: str, step: int, steps: int) -> None:
            nonlocal reported
            reported += 1
            now = time.monotonic()
            if now - self._last_emit < self.MIN_INTERVAL_S:
                return
            inside = min(reported / expected, 0.99) if expected else 0.0
            self._emit(self.done + windows * inside, now, f"{span} \u00b7 {phase} step {step}/{steps}",
                       windows=[first, last], phase=phase, step=step, steps=steps)

        with step_events.listening(on_step):
            yield
        self._steps_per_batch = reported or self._steps_per_batch
        self.advance(windows)

    def advance(self, windows: int) -> None:
        self.done += windows
        self._emit(self.done, time.monotonic(), f"{self.done}/{self.total} windows")

    def _emit(self, windows_done: float, now: float, message: str, **extra) -> None:
        fraction = max(self._fraction, windows_done / self.total if self.total else 1.0)  # never goes back
        self._fraction = fraction
        elapsed = now - self._t0
        eta = elapsed / fraction * (1.0 - fraction) if fraction > 0 else None
        self._last_emit = now
        self.emit(progress_event(self.done, self.total, fraction, eta, message, **extra))
