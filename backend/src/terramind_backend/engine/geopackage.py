"""GeoPackage outputs (one feature layer) through fiona, written atomically.

Used by similarity's matching areas (polygons) and the Coordinates output (points). Features go to a
hidden temp file beside the destination (named and swept like the raster writers', `leftovers.py`);
`moves` hands it to `publish.py` (with the job's other outputs; `commit` alone), `abort` removes it, so a
failed or cancelled job leaves the destination as it was.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, List, Optional, Sequence, Tuple

from .leftovers import discard, sweep_stale, temp_path
from .publish import Move, publish

Geometry = dict                                       # GeoJSON-like mapping, as fiona takes it
_TYPES = {"INTEGER": "int", "DOUBLE": "float", "REAL": "float", "TEXT": "str"}


def point(x: float, y: float) -> Optional[Geometry]:
    """A point, or None (a feature without geometry) when a coordinate is not finite."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return {"type": "Point", "coordinates": (x, y)}


def polygon(rings: Sequence[Sequence[Tuple[float, float]]]) -> Geometry:
    """A polygon from GeoJSON rings (exterior first, then holes)."""
    return {"type": "Polygon", "coordinates": [[(float(x), float(y)) for x, y in ring] for ring in rings]}


class GeoPackageWriter:
    """``add(geometry, values)`` …, ``finish()``, then ``commit()`` or its ``moves()`` published with a job's
    other outputs (or ``abort()`` at any time).

    ``crs``: anything fiona takes (a rasterio CRS's WKT, "EPSG:4326"); ``fields``: (name, SQL type) pairs
    (INTEGER, DOUBLE/REAL, TEXT), values given in that order (None = NULL)."""

    def __init__(self, path: str, table: str, crs: str, geometry_type: str, fields: Sequence[Tuple[str, str]],
                 description: str = ""):
        import fiona

        self.path, self.fields = path, [name for name, _ in fields]
        schema = {"geometry": geometry_type.title(), "properties": {name: _TYPES[kind] for name, kind in fields}}
        sweep_stale(path)  # litter of a killed earlier run writing this file
        self._tmp: Optional[str] = temp_path(path, "part.gpkg")
        if os.path.exists(self._tmp):
            os.remove(self._tmp)
        self._layer = fiona.open(self._tmp, "w", driver="GPKG", layer=table, schema=schema, crs=crs,
                                 DESCRIPTION=description)
        self._features: List[dict] = []

    def add(self, geometry: Optional[Geometry], values: Sequence) -> None:
        from fiona.model import Feature, Geometry as FionaGeometry, Properties

        self._layer.write(Feature(geometry=FionaGeometry.from_dict(geometry) if geometry else None,
                                  properties=Properties(**dict(zip(self.fields, values)))))

    def add_all(self, features: Iterable[Tuple[Optional[Geometry], Sequence]]) -> None:
        for geometry, values in features:
            self.add(geometry, values)

    def finish(self) -> None:
        """Complete the file, still under its temp name (then `commit` or `moves`)."""
        self._layer.close()

    def moves(self) -> List[Move]:
        return [(self._tmp, self.path)]

    def commit(self) -> None:
        publish(self.moves())

    def abort(self) -> None:
        try:
            if not self._layer.closed:
                self._layer.close()
        except Exception:  # noqa: BLE001 # nosec B110: cleanup goes on; the temp file is removed below
            pass
        discard(self._tmp)
        self._tmp = None
