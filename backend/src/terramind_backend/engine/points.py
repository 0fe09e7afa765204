"""The Coordinates output: one point per window in a GeoPackage, written atomically (torch-free).

Each feature is where the model places the window (its generated lon/lat, WGS 84; no geometry when the
generated text is not a coordinate), with the window's true centre and the great-circle distance between
the two. The file is a plain OGC GeoPackage written with ``sqlite3`` (no GDAL vector bindings needed): built
in a hidden temp file beside the destination and ``os.replace``d into place with its ``.qml`` style at
commit, so a failed or cancelled job leaves nothing behind (like ``writer.OutputWriter``).
"""
from __future__ import annotations

import math
import os
import sqlite3
import struct
import time
import uuid
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .locations import distance_km

TABLE = "coordinates"
_WGS84 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
          'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
          '0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]')
FIELDS = (("window", "INTEGER"), ("generated_lon", "DOUBLE"), ("generated_lat", "DOUBLE"),
          ("true_lon", "DOUBLE"), ("true_lat", "DOUBLE"), ("distance_km", "DOUBLE"))


@dataclass
class PointSpec:
    """What the runner reports for a point output (the raster outputs' ``OutputSpec`` counterpart)."""
    name: str
    path: str
    kind: str = "points"


def _point_blob(lon: float, lat: float) -> Optional[bytes]:
    """GeoPackage geometry: 'GP' header (version 0, little endian, no envelope, srs 4326) + WKB point."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    return b"GP" + struct.pack("<BBi", 0, 1, 4326) + struct.pack("<BIdd", 1, 1, lon, lat)


class PointLayer:
    """Collects ``add(generated, true_centres)`` rows, then ``finish()`` / ``commit()`` or ``abort()``."""

    def __init__(self, name: str, path: str):
        self.spec = PointSpec(name, path)
        self.rows: List[tuple] = []
        folder, base = os.path.split(path)
        self._tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.tmp")
        self._tmp_style = self._tmp + ".qml"

    def add(self, generated: Sequence[Sequence[float]], centres: Sequence[Sequence[float]]) -> None:
        """One row per window: generated (lon, lat) (NaN when none) and the true centre (lon, lat)."""
        for (glon, glat), (tlon, tlat) in zip(generated, centres):
            glon, glat, tlon, tlat = float(glon), float(glat), float(tlon), float(tlat)
            self.rows.append((len(self.rows), glon, glat, tlon, tlat, distance_km(glon, glat, tlon, tlat)))

    def finish(self) -> None:
        """Write the GeoPackage and its style to the temp files."""
        self._write_geopackage(self._tmp)
        with open(self._tmp_style, "w", encoding="utf-8") as f:
            f.write(point_style())

    def commit(self) -> None:
        os.replace(self._tmp, self.spec.path)
        os.replace(self._tmp_style, style_path(self.spec.path))

    def abort(self) -> None:
        for tmp in (self._tmp, self._tmp_style):
            if os.path.exists(tmp):
                os.remove(tmp)

    def _write_geopackage(self, path: str) -> None:
        if os.path.exists(path):
            os.remove(path)
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
            db.execute("PRAGMA user_version = 10300")          # GeoPackage 1.3
            db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
                       "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, "
                       "definition TEXT NOT NULL, description TEXT)")
            db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84, "longitude/latitude coordinates in decimal degrees"),
            ])
            db.execute("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
                       "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL, "
                       "min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER)")
            db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
                       "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, "
                       "m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name))")
            columns = ", ".join(f"{name} {kind}" for name, kind in FIELDS)
            db.execute(f"CREATE TABLE {TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POINT, {columns})")
            db.executemany(f"INSERT INTO {TABLE} (geom, {', '.join(n for n, _ in FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(_point_blob(r[1], r[2]), *[None if isinstance(v, float) and math.isnan(v) else v
                                                       for v in r]) for r in self.rows])
            placed = [(r[1], r[2]) for r in self.rows if math.isfinite(r[1]) and math.isfinite(r[2])]
            extent = ((min(p[0] for p in placed), min(p[1] for p in placed), max(p[0] for p in placed),
                       max(p[1] for p in placed)) if placed else (None,) * 4)
            db.execute("INSERT INTO gpkg_contents VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, 4326)",
                       (TABLE, TABLE, "TerraMind generated Coordinates per window",
                        time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), *extent))
            db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', 4326, 0, 0)", (TABLE,))
            db.commit()
        finally:
            db.close()


def style_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".qml"


def point_style() -> str:
    """QGIS style: a marker at the generated location, labelled with the distance to the true centre."""
    return """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology|Labeling">
  <renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">
    <symbols>
      <symbol type="marker" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" pass="0" locked="0" enabled="1">
          <Option type="Map">
            <Option type="QString" name="name" value="star"/>
            <Option type="QString" name="color" value="227,26,28,255"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_width" value="0.4"/>
            <Option type="QString" name="size" value="4"/>
            <Option type="QString" name="size_unit" value="MM"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="format('%1 km', round(&quot;distance_km&quot;, 1))" isExpression="1" fontSize="8"
                  textColor="50,50,50,255"/>
      <placement placement="1" dist="1.5" distUnits="MM"/>
    </settings>
  </labeling>
</qgis>
"""
