"""Read every input onto the target grid, one window at a time, in physical units plus a validity mask.

An input already on the target lattice (same CRS and pixel size, origin on a pixel corner) is read
directly; anything else goes through a rasterio `WarpedVRT` onto the grid (resampling per
modality: nearest for classes, bilinear otherwise). Nothing is resampled by hand. Windows may reach
outside the grid or the source: those pixels are zero and marked invalid.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from .grid import Grid
from .jobspec import InputSpec
from .modalities import MODALITIES
from .validate import SourceInfo


def _lattice_offset(ds, grid: Grid):
    """(row, col) of the grid origin in ``ds`` pixels if ``ds`` lies on the grid's lattice, else None."""
    t, g = ds.transform, grid.transform
    if ds.crs != grid.crs or abs(t.a - g.a) > 1e-9 * abs(g.a) or abs(t.e - g.e) > 1e-9 * abs(g.e):
        return None
    col, row = (g.c - t.c) / t.a, (g.f - t.f) / t.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col))


class AlignedReader:
    """One input opened once for the whole job; `read(window)` → (float32 [C, h, w], bool [h, w])."""

    def __init__(self, source: SourceInfo, item: InputSpec, grid: Grid):
        self.source, self.grid = source, grid
        self.scale = 1.0 if item.scale is None else item.scale
        self.offset = 0.0 if item.offset is None else item.offset
        self._ds = rasterio.open(source.path)
        self._alpha = None
        lattice = _lattice_offset(self._ds, grid)
        if lattice is not None:
            self._src, (self._row0, self._col0) = self._ds, lattice
            self.warped = False
        else:
            kw = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                      resampling=Resampling[MODALITIES[source.modality].resampling])
            if source.nodata is not None:
                kw.update(src_nodata=source.nodata, nodata=source.nodata)
            else:
                kw.update(add_alpha=True)  # the alpha band tells warped-in pixels from outside ones
                self._alpha = self._ds.count + 1
            self._src, self._row0, self._col0 = WarpedVRT(self._ds, **kw), 0, 0
            self.warped = True

    def read(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        h, w = int(window.height), int(window.width)
        bands = self.source.bands
        data = np.zeros((len(bands), h, w), dtype=np.float32)
        valid = np.zeros((h, w), dtype=bool)
        r0, c0 = int(window.row_off) + self._row0, int(window.col_off) + self._col0
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, self._src.height), min(c0 + w, self._src.width)
        if rr1 <= rr0 or cc1 <= cc0:
            return data, valid
        src_win = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
        dst = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
        raw = self._src.read(list(bands), window=src_win)
        ok = np.ones(raw.shape[1:], dtype=bool)
        if self.source.nodata is not None:
            nd = self.source.nodata
            ok &= ~np.any(np.isnan(raw) if nd != nd else raw == nd, axis=0)
        if self._alpha is not None:
            ok &= self._src.read(self._alpha, window=src_win) > 0
        if raw.dtype.kind == "f":
            ok &= np.all(np.isfinite(raw), axis=0)
        values = raw.astype(np.float32)
        if self.scale != 1.0 or self.offset != 0.0:
            values = values * np.float32(self.scale) + np.float32(self.offset)
        values[:, ~ok] = 0
        data[(slice(None),) + dst] = values
        valid[dst] = ok
        return data, valid

    def close(self) -> None:
        if self._src is not self._ds:
            self._src.close()
        self._ds.close()
