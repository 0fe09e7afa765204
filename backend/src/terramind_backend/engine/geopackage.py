"""A minimal GeoPackage (OGC 12-128r18) writer: one feature table, written with sqlite3 alone.

The backend has rasterio (GDAL raster drivers) but no vector library; a GeoPackage is an SQLite
file with three metadata tables and geometries as a small header plus WKB, which QGIS and GDAL
read directly. Used by similarity's matching areas (polygons) and the Coordinates output (points).
Written to a hidden temp file beside the destination (named and swept like the raster writers',
`leftovers.py`); `commit` renames it into place, `abort` removes it.
"""
from __future__ import annotations

import math
import os
import re
import sqlite3
import struct
from typing import Iterable, List, Optional, Sequence, Tuple

from .leftovers import sweep_stale, temp_path

Ring = Sequence[Tuple[float, float]]
Envelope = Tuple[float, float, float, float]          # minx, maxx, miny, maxy (the GeoPackage order)
Geometry = Tuple[bytes, Envelope]                     # WKB and its envelope

_APPLICATION_ID = 0x47504B47                          # "GPKG"
_USER_VERSION = 10300                                 # GeoPackage 1.3
_WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
              'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
              '0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]')
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # table and column names go into SQL text
_TYPES = ("INTEGER", "DOUBLE", "REAL", "TEXT")
_GEOMETRY_TYPES = ("POINT", "POLYGON")
_CUSTOM_SRS_ID = 100000                               # a CRS without an EPSG code
WGS84 = (4326, "EPSG", 4326, _WGS84_WKT)


def point(x: float, y: float) -> Optional[Geometry]:
    """A WKB point, or None (a feature without geometry) when a coordinate is not finite."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return struct.pack("<BIdd", 1, 1, x, y), (x, x, y, y)


def polygon(rings: Sequence[Ring]) -> Geometry:
    """A WKB polygon from GeoJSON-style rings (exterior first, then holes)."""
    parts = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        parts.append(struct.pack("<I", len(ring)))
        parts.append(b"".join(struct.pack("<dd", float(x), float(y)) for x, y in ring))
    xs = [float(x) for x, _ in rings[0]]
    ys = [float(y) for _, y in rings[0]]
    return b"".join(parts), (min(xs), max(xs), min(ys), max(ys))


def srs_of(crs) -> Tuple[int, str, int, str]:
    """(srs_id, organization, organization id, WKT) of a rasterio CRS."""
    epsg = crs.to_epsg()
    if epsg:
        return epsg, "EPSG", epsg, crs.to_wkt()
    return _CUSTOM_SRS_ID, "NONE", _CUSTOM_SRS_ID, crs.to_wkt()


class GeoPackageWriter:
    """``add(geometry, values)`` …, ``finish()``, then ``commit()`` (or ``abort()`` at any time).

    ``srs``: `srs_of(crs)` or `WGS84`; ``fields``: (name, SQL type) pairs, values given in that order
    (None = NULL)."""

    def __init__(self, path: str, table: str, srs: Tuple[int, str, int, str], geometry_type: str,
                 fields: Sequence[Tuple[str, str]], description: str = ""):
        self.path, self.table, self.fields = path, table, list(fields)
        bad = [name for name in [table, *(n for n, _ in self.fields)] if not _IDENTIFIER.match(name)]
        if bad or geometry_type not in _GEOMETRY_TYPES or any(t not in _TYPES for _, t in self.fields):
            raise ValueError(f"GeoPackage table {table!r}: plain identifiers, types {_TYPES} and geometry "
                             f"{_GEOMETRY_TYPES} only")
        self.description = description
        self._srs_id = srs[0]
        self._bounds: List[float] = [math.inf, math.inf, -math.inf, -math.inf]
        sweep_stale(path)  # litter of a killed earlier run writing this file
        self._tmp: Optional[str] = temp_path(path, "part.gpkg")
        if os.path.exists(self._tmp):
            os.remove(self._tmp)
        self._db = sqlite3.connect(self._tmp)
        db = self._db
        db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {_USER_VERSION}")
        db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
                   "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
                   "description TEXT)")
        rows = [("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude in decimal degrees")]
        if self._srs_id not in (-1, 0, 4326):
            rows.append((f"{srs[1]}:{srs[2]}", *srs, None))
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
                   "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT "
                   "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, "
                   "srs_id INTEGER REFERENCES gpkg_spatial_ref_sys(srs_id))")
        db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
                   "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
                   "PRIMARY KEY (table_name, column_name))")
        columns = "".join(f", \"{name}\" {kind}" for name, kind in self.fields)
        db.execute(f"CREATE TABLE \"{table}\" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {geometry_type}{columns})")
        db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
                   (table, geometry_type, self._srs_id))
        names = "".join(f", \"{name}\"" for name, _ in self.fields)
        marks = ", ?" * len(self.fields)
        self._insert = f"INSERT INTO \"{table}\" (geom{names}) VALUES (?{marks})"  # nosec B608: names checked above

    def add(self, geometry: Optional[Geometry], values: Sequence) -> None:
        blob = None
        if geometry is not None:
            wkb, (minx, maxx, miny, maxy) = geometry
            b = self._bounds
            b[0], b[1], b[2], b[3] = min(b[0], minx), min(b[1], miny), max(b[2], maxx), max(b[3], maxy)
            # "GP", version 0, flags: little-endian (bit 0) with an [minx, maxx, miny, maxy] envelope (bits 1-3 = 1)
            blob = b"GP" + struct.pack("<BBi4d", 0, 0b0000_0011, self._srs_id, minx, maxx, miny, maxy) + wkb
        self._db.execute(self._insert, [blob, *values])

    def add_all(self, features: Iterable[Tuple[Optional[Geometry], Sequence]]) -> None:
        for geometry, values in features:
            self.add(geometry, values)

    def finish(self) -> None:
        """Complete the file, still under its temp name (call `commit` to publish)."""
        bounds = self._bounds if self._bounds[0] <= self._bounds[2] else [None] * 4
        self._db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, "
                         "max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)",
                         (self.table, self.table, self.description, *bounds, self._srs_id))
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        if self._tmp and os.path.exists(self._tmp):
            os.remove(self._tmp)
        self._tmp = None
