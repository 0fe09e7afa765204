"""A minimal GeoPackage (OGC 12-128r18) polygon layer, written with sqlite3 alone.

The backend has rasterio (GDAL raster drivers) but no vector library; a GeoPackage is an SQLite
file with three metadata tables and geometries as a small header plus WKB, which QGIS and GDAL
read directly. Written to a temp file beside the destination; `commit` renames it into place.
"""
from __future__ import annotations

import os
import re
import sqlite3
import struct
import uuid
from typing import Iterable, List, Sequence, Tuple

Ring = Sequence[Tuple[float, float]]
Polygon = Sequence[Ring]                     # exterior ring first, then holes (GeoJSON coordinates)

_APPLICATION_ID = 0x47504B47                 # "GPKG"
_USER_VERSION = 10300                        # GeoPackage 1.3
_WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
              'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]')
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # table and column names go into SQL text
_CUSTOM_SRS_ID = 100000                      # a CRS without an EPSG code


def _wkb_polygon(polygon: Polygon) -> bytes:
    parts = [struct.pack("<BII", 1, 3, len(polygon))]
    for ring in polygon:
        parts.append(struct.pack("<I", len(ring)))
        parts.append(b"".join(struct.pack("<dd", float(x), float(y)) for x, y in ring))
    return b"".join(parts)


def _geometry_blob(polygon: Polygon, srs_id: int) -> bytes:
    xs = [x for x, _ in polygon[0]]
    ys = [y for _, y in polygon[0]]
    # "GP", version 0, flags: little-endian (bit 0) with an [minx, maxx, miny, maxy] envelope (bits 1-3 = 1)
    header = b"GP" + struct.pack("<BBi4d", 0, 0b0000_0011, srs_id, min(xs), max(xs), min(ys), max(ys))
    return header + _wkb_polygon(polygon)


def _srs(crs) -> Tuple[int, str, int, str]:
    """(srs_id, organization, organization id, WKT) for a rasterio CRS."""
    epsg = crs.to_epsg()
    if epsg:
        return epsg, "EPSG", epsg, crs.to_wkt()
    return _CUSTOM_SRS_ID, "NONE", _CUSTOM_SRS_ID, crs.to_wkt()


class PolygonLayerWriter:
    """``add(polygon, {field: value})`` …, ``finish()``, then ``commit()`` (or ``abort()``); fields are REAL columns."""

    def __init__(self, path: str, table: str, crs, fields: Sequence[str]):
        self.path, self.table, self.fields = path, table, list(fields)
        bad = [name for name in [table, *self.fields] if not _IDENTIFIER.match(name)]
        if bad:
            raise ValueError(f"GeoPackage table and field names must be plain identifiers, got {bad[0]!r}")
        folder, base = os.path.split(path)
        self._tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part.gpkg")
        self._srs_id, org, org_id, wkt = _srs(crs)
        self._bounds: List[float] = [float("inf"), float("inf"), float("-inf"), float("-inf")]
        self._db = sqlite3.connect(self._tmp)
        db = self._db
        db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {_USER_VERSION}")
        db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
                   "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
                   "description TEXT)")
        rows = [("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, None)]
        if self._srs_id not in (-1, 0, 4326):
            rows.append((crs.to_string() or "custom", self._srs_id, org, org_id, wkt, None))
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
                   "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT "
                   "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, "
                   "srs_id INTEGER REFERENCES gpkg_spatial_ref_sys(srs_id))")
        db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
                   "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
                   "PRIMARY KEY (table_name, column_name))")
        columns = "".join(f", \"{f}\" REAL" for f in self.fields)
        db.execute(f"CREATE TABLE \"{table}\" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POLYGON{columns})")
        db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, 0)", (table, self._srs_id))

    def add(self, polygon: Polygon, values: dict) -> None:
        for x, y in polygon[0]:
            b = self._bounds
            b[0], b[1], b[2], b[3] = min(b[0], x), min(b[1], y), max(b[2], x), max(b[3], y)
        names = "".join(f", \"{f}\"" for f in self.fields)
        marks = ", ?" * len(self.fields)
        sql = f"INSERT INTO \"{self.table}\" (geom{names}) VALUES (?{marks})"  # nosec B608: names checked in __init__
        self._db.execute(sql, [_geometry_blob(polygon, self._srs_id)] + [float(values[f]) for f in self.fields])

    def add_all(self, items: Iterable[Tuple[Polygon, dict]]) -> None:
        for polygon, values in items:
            self.add(polygon, values)

    def finish(self) -> None:
        """Complete the file, still under its temp name (call `commit` to publish)."""
        bounds = self._bounds if self._bounds[0] <= self._bounds[2] else [None] * 4
        self._db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, min_x, min_y, max_x, max_y, "
                         "srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?)",
                         (self.table, self.table, *bounds, self._srs_id))
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
