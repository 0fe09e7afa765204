"""The Coordinates output: one point per window in a GeoPackage, written atomically (torch-free).

Each feature is where the model places the window (its generated lon/lat, WGS 84; no geometry when the
generated text is not a coordinate), with the window's true centre and the great-circle distance between
the two. The file is a GeoPackage (``geopackage.GeoPackageWriter``, through fiona): built in a hidden temp
file beside the destination and published with its ``.qml`` style by ``publish.py`` together with the job's
other outputs, so a failed or cancelled job leaves the destination as it was (like ``writer.OutputWriter``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .geopackage import GeoPackageWriter, point
from .leftovers import discard, temp_path
from .locations import distance_km
from .publish import Move, publish
from .writer import style_path

TABLE = "coordinates"
FIELDS = (("window", "INTEGER"), ("generated_lon", "DOUBLE"), ("generated_lat", "DOUBLE"),
          ("true_lon", "DOUBLE"), ("true_lat", "DOUBLE"), ("distance_km", "DOUBLE"))


@dataclass
class PointSpec:
    """What the runner reports for a point output (the raster outputs' ``OutputSpec`` counterpart)."""
    name: str
    path: str
    kind: str = "points"


class PointLayer:
    """Collects ``add(generated, true_centres)`` rows, then ``finish()`` / ``commit()`` (or its ``moves()``
    published with a job's other outputs) or ``abort()``."""

    def __init__(self, name: str, path: str):
        self.spec = PointSpec(name, path)
        self.rows: List[tuple] = []
        self._writer: Optional[GeoPackageWriter] = None
        self._tmp_style = temp_path(path, "qml")

    def add(self, generated: Sequence[Sequence[float]], centres: Sequence[Sequence[float]]) -> None:
        """One row per window: generated (lon, lat) (NaN when none) and the true centre (lon, lat)."""
        for (glon, glat), (tlon, tlat) in zip(generated, centres):
            glon, glat, tlon, tlat = float(glon), float(glat), float(tlon), float(tlat)
            self.rows.append((len(self.rows), glon, glat, tlon, tlat, distance_km(glon, glat, tlon, tlat)))

    def finish(self) -> None:
        """Write the GeoPackage and its style to the temp files."""
        self._writer = GeoPackageWriter(self.spec.path, TABLE, "EPSG:4326", "POINT", FIELDS,
                                        "TerraMind generated Coordinates per window")
        self._writer.add_all((point(r[1], r[2]), [None if isinstance(v, float) and math.isnan(v) else v for v in r])
                             for r in self.rows)
        self._writer.finish()
        with open(self._tmp_style, "w", encoding="utf-8") as f:
            f.write(point_style())

    def moves(self) -> List[Move]:
        return self._writer.moves() + [(self._tmp_style, style_path(self.spec.path))]

    def commit(self) -> None:
        publish(self.moves())

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        discard(self._tmp_style)


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
