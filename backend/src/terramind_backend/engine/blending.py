"""Blend overlapping window predictions with a smooth weight, one finished row strip at a time.

The weight is a separable raised-cosine ramp over the overlap (1 in the middle, small but
positive at the edges), so seams vanish and scene borders covered by one window keep their
values. `RowStripAccumulator` holds only ``window`` rows × scene width, whatever the scene height;
windows must arrive in row-major order (tiling.plan_windows) so rows above a new window row are
final and can be flushed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

MIN_WEIGHT = 1e-3


def ramp(size: int, overlap: int) -> np.ndarray:
    """1-D weight: rises over the first ``overlap`` px, 1 in the middle, falls over the last."""
    w = np.ones(size, dtype=np.float32)
    if overlap > 0:
        k = np.arange(overlap, dtype=np.float32)
        rise = 0.5 - 0.5 * np.cos(np.pi * (k + 1) / (overlap + 1))
        w[:overlap] = rise
        w[size - overlap:] = rise[::-1]
    return np.maximum(w, MIN_WEIGHT)


def weight_kernel(size: int, overlap: int) -> np.ndarray:
    r = ramp(size, overlap)
    return np.outer(r, r)


class RowStripAccumulator:
    """Σ w·value and Σ w over a strip of ``size`` rows; `flush(row_off, values[C, n, width])`
    receives the blended (weighted mean) rows once no later window can touch them."""

    def __init__(self, height: int, width: int, channels: int, size: int,
                 flush: Callable[[int, np.ndarray], None]):
        self.height, self.width, self.size = height, width, size
        self._flush = flush
        # float64 sums: a pixel covered by one window comes back bit-exact (w·v/w rounds back to v in
        # float32), so blending never flips near-tied classes of a single window's prediction.
        self._acc = np.zeros((channels, size, width), dtype=np.float64)
        self._wsum = np.zeros((size, width), dtype=np.float64)
        self._top = 0

    def add(self, row: int, col: int, values: np.ndarray, weight: np.ndarray) -> None:
        """Add one window's ``values[C, size, size]`` at (row, col); parts outside the grid are dropped."""
        if row < self._top:
            raise ValueError(f"windows must come in row-major order (row {row} after {self._top})")
        if row > self._top:
            self._advance(row)
        h = min(values.shape[1], self.height - row)
        w = min(values.shape[2], self.width - col)
        self._acc[:, :h, col:col + w] += values[:, :h, :w].astype(np.float64) * weight[:h, :w]
        self._wsum[:h, col:col + w] += weight[:h, :w]

    def _advance(self, new_top: int) -> None:
        shift = new_top - self._top
        n = min(shift, self.size, self.height - self._top)
        if n > 0:
            self._emit(n)
        if shift < self.size:
            self._acc[:, :self.size - shift] = self._acc[:, shift:]
            self._wsum[:self.size - shift] = self._wsum[shift:]
            self._acc[:, self.size - shift:] = 0
            self._wsum[self.size - shift:] = 0
        else:
            self._acc[:] = 0
            self._wsum[:] = 0
        self._top = new_top

    def _emit(self, n: int) -> None:
        wsum = self._wsum[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(wsum > 0, self._acc[:, :n] / wsum, np.nan).astype(np.float32)
        self._flush(self._top, out)

    def close(self) -> None:
        n = min(self.size, self.height - self._top)
        if n > 0:
            self._emit(n)
        self._top = self.height
