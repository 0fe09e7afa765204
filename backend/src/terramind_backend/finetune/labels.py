"""Training labels on a scene's grid: a classified raster or a polygon file, read one window at a time.

Raster labels are aligned like any input (engine/align.py, nearest resampling); their nodata is
unlabelled, and so is 0 unless 0 is one of the classes (``classes.py`` decides, not this module).
Polygon labels (GeoPackage, shapefile, GeoJSON; any CRS) are read once with fiona, transformed to
the scene CRS and rasterized per window (rasterio.features), so no scene-sized array is ever held.
Both sources answer two questions per window: which raw label values cover how many pixels
(``count_values``), and which class each pixel is (``read_classes``, -1 = unlabelled).
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Dict, List, Optional

import numpy as np
from rasterio.windows import Window

from ..engine.errors import JobValidationError
from ..engine.grid import Grid, intersect
from .spec import LabelSpec, LabelValue, label_value

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".sqlite")
UNLABELLED = -1


def _lookup(values: np.ndarray, table: Dict[LabelValue, int]) -> np.ndarray:
    return np.array([table.get(v, UNLABELLED) for v in values.tolist()], dtype=np.int16)


class RasterLabels:
    """Integer class codes from a raster (band 1), aligned onto ``grid``."""

    kind = "raster"
    zero_is_unlabelled = True  # unless 0 is declared a class

    def __init__(self, spec: LabelSpec, grid: Grid, where: str):
        import rasterio
        from rasterio.errors import RasterioIOError

        from ..engine.align import AlignedReader
        from ..engine.jobspec import InputSpec
        from ..engine.validate import SourceInfo

        try:
            with rasterio.open(spec.path) as ds:
                crs, bounds, nodata, res, dtype = ds.crs, tuple(ds.bounds), ds.nodata, ds.res, ds.dtypes[0]
        except RasterioIOError as exc:
            raise JobValidationError(f"Labels {spec.path} cannot be opened as a raster or a polygon file ({exc}).",
                                     f"{where}.path") from None
        if crs is None:
            raise JobValidationError(f"Labels {os.path.basename(spec.path)} have no CRS; assign one first.",
                                     f"{where}.path")
        if np.dtype(dtype).kind == "c":
            raise JobValidationError(f"Labels {os.path.basename(spec.path)} hold complex numbers, not class codes.",
                                     f"{where}.path")
        self.path, self.crs, self.bounds = spec.path, crs, bounds
        source = SourceInfo("LULC", spec.path, (1,), nodata, crs, bounds, tuple(res))  # LULC: nearest resampling
        self._reader = AlignedReader(source, InputSpec(spec.path), grid)

    def _read(self, window: Window):
        data, valid = self._reader.read(window)
        values = data[0]
        valid &= values == np.round(values)  # bilinear never happens, but a float raster may hold fractions
        return values.astype(np.int64), valid

    def count_values(self, window: Window) -> Counter:
        codes, valid = self._read(window)
        u, n = np.unique(codes[valid], return_counts=True)
        return Counter(dict(zip(u.tolist(), n.tolist())))

    def read_classes(self, window: Window, table: Dict[LabelValue, int]) -> np.ndarray:
        codes, valid = self._read(window)
        out = np.full(codes.shape, UNLABELLED, dtype=np.int16)
        if valid.any():
            u, inv = np.unique(codes[valid], return_inverse=True)
            out[valid] = _lookup(u, table)[inv]
        return out

    def close(self) -> None:
        self._reader.close()


def _normal_value(value) -> Optional[LabelValue]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if value != value:
            return None
        return int(value) if value == int(value) else str(value)
    if isinstance(value, int):
        return value
    return label_value(str(value))


class VectorLabels:
    """Polygons with a class attribute, transformed to the scene CRS and rasterized per window."""

    kind = "vector"
    zero_is_unlabelled = False  # a drawn polygon is a label, whatever its value

    def __init__(self, spec: LabelSpec, grid: Grid, where: str):
        try:
            import fiona
        except ImportError:  # pragma: no cover - fiona is a backend dependency
            raise JobValidationError("Polygon labels need the 'fiona' package in the backend environment; "
                                     "reinstall the backend or use a label raster.", f"{where}.path") from None
        from rasterio.crs import CRS
        from rasterio.warp import transform_geom

        name = os.path.basename(spec.path)
        try:
            layers = fiona.listlayers(spec.path)
            layer = spec.layer if spec.layer is not None else layers[0]
            if layer not in layers:
                raise JobValidationError(f"Labels {name} have no layer {layer!r}; layers: {', '.join(layers)}.",
                                         f"{where}.layer")
            with fiona.open(spec.path, layer=layer) as src:
                fields = list(src.schema["properties"])
                crs = CRS.from_user_input(src.crs_wkt) if src.crs_wkt else None
                if spec.field is None:
                    raise JobValidationError(f"Polygon labels {name} need a class field: give labels.field (one of "
                                             f"{', '.join(fields) or 'none'}).", f"{where}.field")
                if spec.field not in fields:
                    raise JobValidationError(f"Labels {name} have no field {spec.field!r}; fields: "
                                             f"{', '.join(fields) or 'none'}.", f"{where}.field")
                features = [(f.geometry, f.properties.get(spec.field)) for f in src]
        except JobValidationError:
            raise
        except Exception as exc:  # fiona raises DriverError, CPLE_* ... for unreadable files
            raise JobValidationError(f"Labels {spec.path} cannot be opened as a raster or a polygon file "
                                     f"({type(exc).__name__}: {exc}).", f"{where}.path") from None
        if crs is None:
            raise JobValidationError(f"Labels {name} have no CRS; set the layer CRS first.", f"{where}.path")
        shapes, bad_types = [], set()
        for geom, value in features:
            value = _normal_value(value)
            if geom is None or value is None:
                continue
            gtype = geom["type"] if isinstance(geom, dict) else geom.type
            if gtype not in ("Polygon", "MultiPolygon"):
                bad_types.add(gtype)
                continue
            geom = dict(geom.__geo_interface__) if hasattr(geom, "__geo_interface__") else dict(geom)
            if crs != grid.crs:
                geom = transform_geom(crs, grid.crs, geom)
            shapes.append((geom, value))
        if bad_types and not shapes:
            raise JobValidationError(f"Labels {name} hold {', '.join(sorted(bad_types))} geometries; training labels "
                                     "must be polygons.", f"{where}.path")
        self.path, self.crs, self.skipped_types = spec.path, crs, sorted(bad_types)
        self.values: List[LabelValue] = sorted({v for _, v in shapes}, key=lambda v: (isinstance(v, str), v))
        ids = {v: i for i, v in enumerate(self.values)}
        self._geoms = [g for g, _ in shapes]
        self._ids = np.array([ids[v] for _, v in shapes], dtype=np.int32)
        self._boxes = np.array([_bbox(g) for g in self._geoms], dtype=np.float64).reshape(-1, 4)
        self._grid = grid
        self.bounds = (tuple(self._boxes[:, :2].min(0)) + tuple(self._boxes[:, 2:].max(0))) if len(shapes) else None

    def overlaps(self, bounds) -> bool:
        return self.bounds is not None and intersect(self.bounds, bounds) is not None

    def _ids_in(self, window: Window) -> np.ndarray:
        """Value id per pixel (-1 outside every polygon); later polygons win where they overlap."""
        from rasterio.features import rasterize

        h, w = int(window.height), int(window.width)
        transform = self._grid.window_transform(window)
        x0, y1 = transform @ (0, 0)
        x1, y0 = transform @ (w, h)
        hit = ((self._boxes[:, 0] <= x1) & (self._boxes[:, 2] >= x0) & (self._boxes[:, 1] <= y1) &
               (self._boxes[:, 3] >= y0))
        if not hit.any():
            return np.full((h, w), -1, dtype=np.int32)
        shapes = [(self._geoms[i], int(self._ids[i]) + 1) for i in np.flatnonzero(hit)]
        return rasterize(shapes, out_shape=(h, w), transform=transform, fill=0, dtype="int32") - 1

    def count_values(self, window: Window) -> Counter:
        ids = self._ids_in(window)
        u, n = np.unique(ids[ids >= 0], return_counts=True)
        return Counter({self.values[i]: c for i, c in zip(u.tolist(), n.tolist())})

    def read_classes(self, window: Window, table: Dict[LabelValue, int]) -> np.ndarray:
        ids = self._ids_in(window)
        per_id = np.append(_lookup(np.array(self.values, dtype=object), table), UNLABELLED).astype(np.int16)
        return per_id[ids]  # id -1 picks the appended UNLABELLED

    def close(self) -> None:
        pass


def _bbox(geom: dict):
    xs, ys = [], []

    def walk(c):
        if isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for sub in c:
                walk(sub)
    walk(geom["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def open_labels(spec: LabelSpec, grid: Grid, where: str):
    """The label source of one scene; refuses missing or unreadable files with the field named."""
    if not os.path.exists(spec.path):
        raise JobValidationError(f"Labels not found: {spec.path}", f"{where}.path")
    if spec.path.lower().endswith(VECTOR_SUFFIXES) or os.path.isdir(spec.path):
        return VectorLabels(spec, grid, where)
    return RasterLabels(spec, grid, where)
