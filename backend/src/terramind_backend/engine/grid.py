"""The target grid every input is aligned onto, and the WKT/extent geometry that defines it.

A `Grid` is a value: CRS, affine transform, width and height. `build_grid` snaps the job extent
outward onto the pixel lattice of an anchor raster (the first optical input when it is already in
the target CRS at the target resolution), so a job over an unchanged input keeps its georeference
exactly.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

Bounds = Tuple[float, float, float, float]
_EPS = 1e-6


@dataclass(frozen=True)
class Grid:
    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> float:
        return self.transform.a

    @property
    def bounds(self) -> Bounds:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def window_transform(self, window: Window) -> Affine:
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def coarsen(self, factor: int) -> "Grid":
        """The grid of one pixel per ``factor``×``factor`` block (embeddings at patch resolution)."""
        return Grid(self.crs, self.transform @ Affine.scale(factor), math.ceil(self.width / factor),
                    math.ceil(self.height / factor))

    def padded_to(self, multiple: int) -> "Grid":
        """Same origin, width/height rounded up to a multiple (extra pixels lie outside the extent)."""
        return Grid(self.crs, self.transform, -(-self.width // multiple) * multiple,
                    -(-self.height // multiple) * multiple)


def build_grid(crs: CRS, bounds: Bounds, res: float, anchor: Optional[Affine] = None) -> Grid:
    """Snap ``bounds`` outward to a lattice of pixel size ``res`` through ``anchor``'s origin (or 0,0)."""
    ax, ay = (anchor.c, anchor.f) if anchor is not None else (0.0, 0.0)
    minx, miny, maxx, maxy = bounds
    left = math.floor((minx - ax) / res + _EPS)
    right = math.ceil((maxx - ax) / res - _EPS)
    top = math.floor((ay - maxy) / res + _EPS)
    bottom = math.ceil((ay - miny) / res - _EPS)
    transform = Affine(res, 0.0, ax + left * res, 0.0, -res, ay - top * res)
    return Grid(CRS.from_user_input(crs), transform, max(0, right - left), max(0, bottom - top))


def intersect(a: Bounds, b: Bounds) -> Optional[Bounds]:
    """Intersection of two bounds with positive area, or None."""
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] < box[2] and box[1] < box[3] else None


# --- WKT polygons (POLYGON / MULTIPOLYGON) → GeoJSON, without an OGR dependency -----------------

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _ring(text: str):
    pts = []
    for pair in text.split(","):
        nums = re.findall(_NUM, pair)
        if len(nums) < 2:
            raise ValueError(f"bad coordinate {pair.strip()!r}")
        pts.append((float(nums[0]), float(nums[1])))
    if len(pts) < 4:
        raise ValueError("a polygon ring needs at least 4 points")
    return pts


def _polygon(body: str):
    # body: "(x y, ...), (x y, ...)" → list of rings
    return [_ring(r) for r in re.findall(r"\(([^()]*)\)", body)]


def wkt_to_geojson(wkt: str) -> dict:
    """Parse a POLYGON or MULTIPOLYGON WKT string (2-D; Z/M values ignored) into a GeoJSON geometry."""
    text = wkt.strip()
    head = re.match(r"^\s*(MULTIPOLYGON|POLYGON)\s*(?:Z|M|ZM)?\s*\(", text, re.IGNORECASE)
    if not head:
        raise ValueError("only POLYGON and MULTIPOLYGON WKT are supported")
    kind = head.group(1).upper()
    body = text[head.end() - 1:]
    if kind == "POLYGON":
        rings = _polygon(body)
        if not rings:
            raise ValueError("empty polygon")
        return {"type": "Polygon", "coordinates": rings}
    polys = [_polygon(p) for p in re.findall(r"\(\s*(\([^()]*\)(?:\s*,\s*\([^()]*\))*)\s*\)", body)]
    if not polys:
        raise ValueError("empty multipolygon")
    return {"type": "MultiPolygon", "coordinates": polys}


def geojson_bounds(geom: dict) -> Bounds:
    coords = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    xs = [p[0] for poly in coords for ring in poly for p in ring]
    ys = [p[1] for poly in coords for ring in poly for p in ring]
    return (min(xs), min(ys), max(xs), max(ys))
