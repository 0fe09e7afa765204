"""Georeferenced outputs, written strip by strip into a hidden temp file beside the destination.

`OutputWriter` writes a tiled GeoTIFF next to the final path, converts it to a Cloud Optimized
GeoTIFF when done, and hands its moves (the COG, its `.aux.xml` category names and `.qml` style) to
`publish.py`, which puts a job's outputs in place all or none, so a failed or cancelled job leaves the
destination as it was. It also keeps
running per-band statistics, which the style uses for its stretch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple
from html import escape

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from .grid import Grid
from .leftovers import discard, sweep_stale, temp_path
from .publish import Move, publish

log = logging.getLogger(__name__)


@dataclass
class OutputSpec:
    """What one output file holds. ``kind``: classes | continuous | embeddings | probabilities."""
    name: str
    path: str
    kind: str
    dtype: str
    band_names: Sequence[str]
    nodata: Optional[float]
    product: str = ""                                  # style id: LULC, NDVI, DEM, S1GRD, S1RTC, S2L2A, ...
    class_names: Optional[Sequence[str]] = None        # classes: index → name
    colors: Optional[Sequence[str]] = None             # classes: index → "#RRGGBB"
    scale: int = 1                                     # output pixel = scale × scale grid pixels
    unit: str = ""
    tags: Dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.band_names)


def _hex_rgba(color: str) -> Tuple[int, int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def _aux_xml(spec: OutputSpec) -> str:
    cats = "".join(f"<Category>{escape(n, quote=False)}</Category>" for n in spec.class_names)
    return ("<PAMDataset>\n  <PAMRasterBand band=\"1\">\n"
            f"    <Description>{escape(spec.band_names[0], quote=False)}</Description>\n"
            f"    <CategoryNames>{cats}</CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n")


class OutputWriter:
    """One output raster on ``grid``; `write(row_off, data[C, n, width])`, `finish(style)`, then `commit()` (or
    its `moves()` published with a job's other outputs) or `abort()`."""

    def __init__(self, spec: OutputSpec, grid: Grid):
        self.spec, self.grid = spec, grid
        for stale in sweep_stale(spec.path):  # litter of a killed earlier run writing this output
            log.info("removed %s, left by an earlier run that did not finish", stale)
        self._tmp = temp_path(spec.path, "part.tif")
        self._extra: List[Move] = []                   # sidecars (and the COG while converting)
        profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=spec.count, dtype=spec.dtype,
                       crs=grid.crs, transform=grid.transform, nodata=spec.nodata, tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER")
        if spec.count > 1 and spec.dtype != "uint8":
            profile["interleave"] = "band" if spec.kind == "embeddings" else "pixel"
        self._ds = rasterio.open(self._tmp, "w", **profile)
        for i, name in enumerate(spec.band_names, start=1):
            self._ds.set_band_description(i, name)
        if spec.colors:
            self._ds.write_colormap(1, {i: _hex_rgba(c) for i, c in enumerate(spec.colors)})
        tags = dict(spec.tags)
        if spec.class_names:
            tags["CLASS_NAMES"] = ",".join(spec.class_names)
        if spec.unit:
            tags["UNITS"] = spec.unit
        tags["TERRAMIND_OUTPUT"] = spec.name
        self._ds.update_tags(**tags)
        if spec.unit:
            for i in range(1, spec.count + 1):
                self._ds.update_tags(i, UNITS=spec.unit)
        n = min(spec.count, 3)  # styles stretch at most three bands; skipping the rest keeps writes cheap
        self.count = np.zeros(n, dtype=np.int64)
        self.sum = np.zeros(n, dtype=np.float64)
        self.sumsq = np.zeros(n, dtype=np.float64)
        self.min = np.full(n, np.inf)
        self.max = np.full(n, -np.inf)

    def write(self, row_off: int, data: np.ndarray, valid: np.ndarray) -> None:
        """Write rows ``row_off``…; ``data`` already in the output dtype, ``valid`` [n, width] bool."""
        n = data.shape[1]
        self._ds.write(data, window=Window(0, row_off, self.grid.width, n))
        if valid.any():
            for i in range(len(self.count)):
                vals = data[i][valid].astype(np.float64)
                self.count[i] += vals.size
                self.sum[i] += vals.sum()
                self.sumsq[i] += np.dot(vals, vals)
                self.min[i] = min(self.min[i], vals.min())
                self.max[i] = max(self.max[i], vals.max())

    def stats(self) -> List[Dict[str, float]]:
        """Bands 1-3 (fewer if the file has fewer): min, max, mean, std of the valid pixels written
        (None values if nothing valid)."""
        out = []
        for i in range(len(self.count)):
            if self.count[i] == 0:
                out.append({"min": None, "max": None, "mean": None, "std": None})
                continue
            mean = self.sum[i] / self.count[i]
            var = max(self.sumsq[i] / self.count[i] - mean * mean, 0.0)
            out.append({"min": float(self.min[i]), "max": float(self.max[i]), "mean": float(mean),
                        "std": float(var ** 0.5)})
        return out

    def finish(self, style_xml: Optional[str]) -> None:
        """Close and convert to COG, still under temp names (then `commit` or `moves`)."""
        self._ds.close()
        cog = temp_path(self.spec.path, "cog.tif")
        resampling = "NEAREST" if self.spec.kind == "classes" else "AVERAGE"
        self._extra.append((cog, None))  # known to abort() from before it exists: a failed copy leaves no litter
        rio_copy(self._tmp, cog, driver="COG", compress="DEFLATE", resampling=resampling,
                 overview_resampling=resampling, BIGTIFF="IF_SAFER", blocksize=cog_blocksize(self.spec))
        self._extra.pop()
        os.remove(self._tmp)
        self._tmp = cog
        if self.spec.class_names:
            aux = temp_path(self.spec.path, "aux.xml")
            self._extra.append((aux, self.spec.path + ".aux.xml"))
            with open(aux, "w", encoding="utf-8") as f:
                f.write(_aux_xml(self.spec))
        if style_xml is not None:
            qml = temp_path(self.spec.path, "qml")
            self._extra.append((qml, style_path(self.spec.path)))
            with open(qml, "w", encoding="utf-8") as f:
                f.write(style_xml)

    @property
    def temp_file(self) -> Optional[str]:
        """The file being written; after `finish`, the finished COG still under its temp name."""
        return self._tmp

    def moves(self) -> List[Move]:
        """What `publish.publish` moves into place after `finish`: the COG, its sidecars, and (None) a stale
        .aux.xml of an older file at the path, which would otherwise lend this file its category names."""
        moves: List[Move] = [(self._tmp, self.spec.path)] + list(self._extra)
        aux = self.spec.path + ".aux.xml"
        if all(dst != aux for _, dst in self._extra):
            moves.append((None, aux))
        return moves

    def commit(self) -> None:
        """Publish this output alone (several outputs: `publish.publish` of all their `moves()`)."""
        publish(self.moves())

    def abort(self) -> None:
        """Remove every temp file; the destination is left as it was. Never raises: a cleanup that fails
        (the folder was deleted or made read-only) must not hide the job's own error or stop the other
        outputs' cleanup; what cannot be removed now is swept by the next job writing this output."""
        try:
            if not self._ds.closed:
                self._ds.close()
        except Exception:  # noqa: BLE001 # nosec B110: cleanup goes on; the temp files below are removed anyway
            pass
        for path in [self._tmp] + [t for t, _ in self._extra]:
            discard(path)
        self._tmp, self._extra = None, []


def cog_blocksize(spec: OutputSpec, budget: int = 16 * 2**20) -> int:
    """COG tiles are pixel-interleaved: one tile holds every band, and GDAL keeps whole tiles in
    memory while converting. 512 px tiles of 192 float32 embedding bands are 200 MB each, so the
    tile shrinks until one tile of all bands fits ``budget``."""
    itemsize = 1 if spec.dtype == "uint8" else 2 if spec.dtype == "uint16" else 4
    size = 512
    while size > 64 and size * size * spec.count * itemsize > budget:
        size //= 2
    return size


def style_path(path: str) -> str:
    """The .qml style QGIS loads beside an output (rasters and GeoPackages alike)."""
    return os.path.splitext(path)[0] + ".qml"


def output_entry(spec) -> dict:
    """What a job reports for one output it wrote (``OutputSpec`` or any spec with name, path and kind)."""
    return {"name": spec.name, "path": spec.path, "style": style_path(spec.path), "kind": spec.kind}
