"""Window stacks → blended rows → output files → atomic publish; the same for every executor.

`Assembly` opens one `OutputWriter` per output of each product and one `RowStripAccumulator` per
product (window rows × grid width, whatever the grid height), takes window stacks in row-major
order (`add`), and at the end converts to COGs, styles them and puts every output in place at once
(`publish`, through `engine/publish.py`: all or none). Until then nothing is at the destination; `abort`
removes every temp file.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from ..blending import RowStripAccumulator, weight_kernel
from ..embedding_pca import composites
from ..errors import JobCancelled
from ..guards import check_free_space
from ..publish import publish
from ..styles import style_for
from ..writer import OutputWriter, output_entry


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

    def __init__(self, product, grid, writers: List[OutputWriter], polygon):
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


class Assembly:
    """The outputs of one job on work grid ``grid``; use as a context manager (aborts on error)."""

    def __init__(self, products: Sequence, grid, window: int, overlap: int, polygon, points: Sequence = ()):
        check_free_space(products, grid)  # before the first window: a full disk must not cost the whole run
        self.writers: List[OutputWriter] = []
        self.points = list(points)  # point layers (Coordinates outputs): filled by the predictor, published here
        self.derived: List[OutputWriter] = []  # made from finished outputs at publish (embeddings' PCA composites)
        self._strips = []
        try:
            for product in products:
                pgrid = grid.coarsen(product.scale) if product.scale > 1 else grid
                pws = [OutputWriter(out, pgrid) for out in product.outputs]
                self.writers += pws
                size = window // product.scale
                acc = RowStripAccumulator(pgrid.height, pgrid.width, product.channels + 1, size,
                                          _Sink(product, pgrid, pws, polygon))
                self._strips.append((product, acc, weight_kernel(size, overlap // product.scale)))
        except BaseException:
            self.abort()
            raise

    def add(self, batch: Sequence, stacks: Dict[str, np.ndarray]) -> None:
        """Blend one batch of windows (row-major order across calls); ``stacks`` from `window_stacks`."""
        for product, acc, kernel in self._strips:
            values = stacks[product.key]
            for k, win in enumerate(batch):
                acc.add(int(win.row_off) // product.scale, int(win.col_off) // product.scale, values[k], kernel)

    def publish(self, emit, cancel) -> None:
        """Flush the last rows, write COGs and styles, then move every file into place (all or none)."""
        if cancel.is_set():
            raise JobCancelled()
        emit({"event": "log", "level": "info", "message": "Writing Cloud Optimized GeoTIFFs"})
        for _, acc, _ in self._strips:
            acc.close()
        for w in self.writers:
            w.finish(style_for(w.spec, w.stats()))
        for layer in self.points:
            layer.finish()
        self.derived = composites(self.writers, emit)  # embeddings in false colour, published with them
        if cancel.is_set():
            raise JobCancelled()
        publish([move for w in self._all() for move in w.moves()])  # all or none

    def _all(self) -> list:
        return self.writers + self.points + self.derived

    def abort(self) -> None:
        for w in self._all():
            w.abort()

    def outputs(self) -> List[dict]:
        return [output_entry(w.spec) for w in self._all()]

    def __enter__(self) -> "Assembly":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
