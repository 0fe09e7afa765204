"""Window centres on the globe: the Coordinates modality on a map (torch-free).

TerraMind's Coordinates are a tile's centre as (lon, lat) in WGS 84 degrees. With ``options.use_location``
every window's centre is fed as that input; a ``Coordinates`` output compares the centre the model
generates with the true one (``points.PointLayer``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .modalities import COORDINATES

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


def needs_locations(spec) -> bool:
    """Whether a job needs its windows' centres: as the Coordinates input, or to compare a Coordinates output."""
    return bool(spec.options.use_location) or COORDINATES in spec.outputs


def window_centres(grid, windows: Sequence) -> np.ndarray:
    """``[B, 2]`` float32 (lon, lat) WGS 84 degrees of the windows' centres on ``grid``."""
    from rasterio.warp import transform

    cols = np.array([w.col_off + w.width / 2.0 for w in windows], dtype=np.float64)
    rows = np.array([w.row_off + w.height / 2.0 for w in windows], dtype=np.float64)
    t = grid.transform
    xs, ys = t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows
    lon, lat = transform(grid.crs, "EPSG:4326", xs.tolist(), ys.tolist())
    return np.stack([np.asarray(lon), np.asarray(lat)], axis=1).astype(np.float32)


def distance_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine on the mean sphere); NaN when a point is NaN."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a))) if a == a else float("nan")
