"""`similarity`: how much every patch of an embeddings raster looks like the clicked examples.

score(patch) = clip(cos(e, p), 0, 1), where ``e`` is the patch's embedding and ``p`` the mean of
the positive examples' unit embeddings (a clicked point is its patch; a polygon is the mean of
the unit embeddings of the patches it covers). With negative examples, a patch more similar to
any single negative than to ``p`` scores 0: it is nearer to something the user said is *not*
wanted. Anti-similar patches (cos < 0) score 0 too. docs/similarity.md explains the choice.

The raster is read in blocks (one block row of the file at a time, every band of one block in
memory), so a scene of any size streams; only the optional threshold mask (one byte per patch)
is kept whole, to polygonize matching areas without seams between blocks.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioIOError
from rasterio.features import geometry_mask, shapes
from rasterio.warp import transform as transform_xy, transform_geom
from rasterio.windows import Window

from .errors import JobCancelled, JobValidationError
from .geopackage import GeoPackageWriter, polygon
from .grid import Grid, geojson_bounds, wkt_to_geojson
from .jobspec import JobSpec, parse_jobspec
from .publish import publish
from .similarity_query import AREAS_OUTPUT, INPUT, RASTER_OUTPUT
from .styles import style_for
from .writer import OutputSpec, OutputWriter, output_entry

READ_BUDGET = 64 * 2**20   # bytes of embeddings read at once when the file is not tiled
AREAS_TABLE = "matching_areas"
Emit = Callable[[dict], None]


@dataclass(frozen=True)
class SimilarityLayout:
    grid: Grid                      # the embeddings raster's own grid (the output's grid)
    prototype: np.ndarray           # [D] unit vector: mean of the positive examples
    negatives: np.ndarray           # [N, D] unit vectors (N may be 0)
    path: str


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _valid_vectors(data: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """``[D, h, w]`` → ``[h, w]`` True where the patch has a usable (finite, non-zero) embedding."""
    ok = np.isfinite(data).all(axis=0)
    if nodata is not None and not math.isnan(nodata):
        ok &= ~(data == nodata).any(axis=0)
    return ok & (np.abs(np.nan_to_num(data)).sum(axis=0) > 0)


def _crs(text: str, field_name: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise JobValidationError(f"{field_name} {text!r} is not a CRS rasterio understands ({exc}).", field_name)


def _open_embeddings(spec: JobSpec):
    path = spec.inputs[INPUT].path
    field_name = f"inputs.{INPUT}.path"
    if not os.path.exists(path):
        raise JobValidationError(f"Embeddings file not found: {path}", field_name)
    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise JobValidationError(f"Cannot open {path} as a raster ({exc}).", field_name)
    problem = None
    if ds.crs is None:
        problem = "has no CRS"
    elif ds.count < 2 or not np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
        problem = (f"has {ds.count} {ds.dtypes[0]} band(s); an embeddings raster from the embed task has one "
                   "float32 band per feature")
    elif ds.tags().get("TERRAMIND_OUTPUT", "embeddings") != "embeddings":
        problem = f"is a TerraMind {ds.tags()['TERRAMIND_OUTPUT']} output, not embeddings"
    if problem:
        ds.close()
        raise JobValidationError(f"{os.path.basename(path)} {problem}.", field_name)
    return ds


def _pixel(ds, x: float, y: float, label: str, field_name: str) -> Tuple[int, int]:
    col, row = ~ds.transform @ (x, y)
    col, row = int(math.floor(col)), int(math.floor(row))
    if not (0 <= row < ds.height and 0 <= col < ds.width):
        b = ds.bounds
        raise JobValidationError(f"{label} ({x:g}, {y:g}) is outside the embeddings raster "
                                 f"({b.left:g}, {b.bottom:g} – {b.right:g}, {b.top:g} in {ds.crs.to_string()}).",
                                 field_name)
    return row, col


def _point_vectors(ds, points, points_crs: Optional[CRS], label: str, field_name: str) -> List[np.ndarray]:
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if points_crs is not None and points_crs != ds.crs:
        xs, ys = transform_xy(points_crs, ds.crs, xs, ys)
    vectors = []
    for (x0, y0), x, y in zip(points, xs, ys):
        row, col = _pixel(ds, x, y, f"{label} point", field_name)
        data = ds.read(window=Window(col, row, 1, 1)).astype(np.float64)
        if not _valid_vectors(data, ds.nodata)[0, 0]:
            raise JobValidationError(f"{label} point ({x0:g}, {y0:g}) falls on a patch without embeddings (nodata); "
                                     "click inside the embedded area.", field_name)
        vectors.append(_unit(data[:, 0, 0]))
    return vectors


def _polygon_vector(ds, wkt: str, points_crs: Optional[CRS], index: int) -> np.ndarray:
    field_name = "options.similarity.polygons"
    try:
        geom = wkt_to_geojson(wkt)
    except ValueError as exc:
        raise JobValidationError(f"Polygon {index + 1} is not a valid WKT polygon: {exc}.", field_name)
    if points_crs is not None and points_crs != ds.crs:
        geom = transform_geom(points_crs, ds.crs, geom)
    left, bottom, right, top = geojson_bounds(geom)
    (c0, r0), (c1, r1) = ~ds.transform @ (left, top), ~ds.transform @ (right, bottom)
    col0, row0 = max(0, math.floor(min(c0, c1))), max(0, math.floor(min(r0, r1)))
    col1, row1 = min(ds.width, max(math.ceil(max(c0, c1)), col0 + 1)), min(ds.height, max(math.ceil(max(r0, r1)), row0 + 1))
    if col1 <= col0 or row1 <= row0:
        raise JobValidationError(f"Polygon {index + 1} does not overlap the embeddings raster.", field_name)
    win = Window(col0, row0, col1 - col0, row1 - row0)
    data = ds.read(window=win).astype(np.float64)
    transform = ds.window_transform(win)
    shape = (int(win.height), int(win.width))
    ok = _valid_vectors(data, ds.nodata)
    for all_touched in (False, True):  # a polygon smaller than a patch still picks the patches it touches
        inside = ~geometry_mask([geom], out_shape=shape, transform=transform, all_touched=all_touched) & ok
        if inside.any():
            return _unit(_unit(data[:, inside].T).mean(axis=0))
    raise JobValidationError(f"Polygon {index + 1} covers no patch with embeddings (only nodata).", field_name)


def inspect_similarity(spec: JobSpec) -> SimilarityLayout:
    """Open the embeddings, look up every example's embedding, check the outputs; nothing written."""
    from .validate import check_output_files

    query = spec.options.similarity
    points_crs = _crs(query.points_crs, "options.similarity.points_crs") if query.points_crs else None
    with _open_embeddings(spec) as ds:
        positives = _point_vectors(ds, query.positives, points_crs, "Positive", "options.similarity.positives")
        positives += [_polygon_vector(ds, wkt, points_crs, i) for i, wkt in enumerate(query.polygons)]
        negatives = _point_vectors(ds, query.negatives, points_crs, "Negative", "options.similarity.negatives")
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
        dim = ds.count
    check_output_files(spec)
    prototype = _unit(np.mean(positives, axis=0))
    if not np.isfinite(prototype).all():
        raise JobValidationError("The positive examples cancel out (their mean embedding is zero); click other "
                                 "places.", "options.similarity.positives")
    negatives = np.asarray(negatives, dtype=np.float64).reshape(len(negatives), dim)
    return SimilarityLayout(grid=grid, prototype=prototype, negatives=negatives, path=spec.inputs[INPUT].path)


def score(data: np.ndarray, prototype: np.ndarray, negatives: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """``[D, h, w]`` embeddings → ``[h, w]`` float32 similarity in 0–1 (NaN where no embedding).

    One float32 matrix product for the prototype and every negative (BLAS; float32 sums over a few hundred
    features stay within ~1e-6 of float64). A NaN or inf anywhere in a patch makes its squared norm
    non-finite, so validity needs no extra pass over the data; a numeric nodata value is checked apart."""
    d, h, w = data.shape
    flat = data.reshape(d, h * w).astype(np.float32, copy=False)
    squares = np.einsum("ij,ij->j", flat, flat, dtype=np.float64)
    ok = np.isfinite(squares) & (squares > 0)
    if nodata is not None and not math.isnan(nodata):
        ok &= ~(flat == nodata).any(axis=0)
    if not ok.all():
        flat = np.where(ok, flat, 0.0).astype(np.float32)
    examples = np.concatenate([prototype[None], negatives]).astype(np.float32)
    cos = (examples @ flat).astype(np.float64) / np.sqrt(np.where(ok, squares, 1.0))
    similarity = cos[0]
    if len(negatives):
        similarity = np.where(cos[1:].max(axis=0) > similarity, 0.0, similarity)
    return np.where(ok, np.clip(similarity, 0.0, 1.0), np.nan).astype(np.float32).reshape(h, w)


def _blocks(ds) -> Tuple[int, int]:
    """(rows, cols) read at once: the file's blocks when tiled, else full-width strips within READ_BUDGET."""
    bh, bw = ds.block_shapes[0]
    if bw < ds.width:
        return bh, bw
    itemsize = np.dtype(ds.dtypes[0]).itemsize
    return max(1, min(ds.height, READ_BUDGET // max(1, ds.count * ds.width * itemsize))), ds.width


def similarity_output(spec: JobSpec) -> OutputSpec:
    query = spec.options.similarity
    return OutputSpec(name=RASTER_OUTPUT, path=spec.outputs[RASTER_OUTPUT], kind="similarity", dtype="float32",
                      band_names=["similarity"], nodata=float("nan"), product="similarity",
                      tags={"EMBEDDINGS": os.path.basename(spec.inputs[INPUT].path),
                            "POSITIVES": str(len(query.positives) + len(query.polygons)),
                            "NEGATIVES": str(len(query.negatives))})


def _ring_area(ring) -> float:
    xs = np.asarray([p[0] for p in ring])
    ys = np.asarray([p[1] for p in ring])
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def matching_areas(mask: np.ndarray, transform) -> List[Tuple[tuple, list]]:
    """(polygon, [area in CRS units²]) of every 8-connected group of True patches (holes kept)."""
    out = []
    for geom, _ in shapes(mask.astype(np.uint8), mask=mask, transform=transform, connectivity=8):
        rings = geom["coordinates"]
        out.append((polygon(rings), [_ring_area(rings[0]) - sum(_ring_area(r) for r in rings[1:])]))
    return out


def _progress(done: int, total: int, t0: float) -> dict:
    elapsed = time.monotonic() - t0
    eta = elapsed / done * (total - done) if done else None
    return {"event": "progress", "stage": "tiles", "done": done, "total": total,
            "fraction": done / total if total else 1.0, "eta_s": None if eta is None else round(eta, 1),
            "message": f"{done}/{total} block rows"}


def run_similarity(spec, *, emit: Optional[Emit] = None, cancel: Optional[threading.Event] = None,
                   base_dir: Optional[str] = None) -> dict:
    """Validate, stream the similarity into its GeoTIFF (+ areas GeoPackage), publish both at the end."""
    started = time.monotonic()
    emit = emit or (lambda event: None)
    cancel = cancel or threading.Event()
    spec = parse_jobspec(spec, base_dir=base_dir)
    for warning in spec.warnings:
        emit({"event": "log", "level": "warning", "message": warning})
    layout = inspect_similarity(spec)
    query = spec.options.similarity
    grid = layout.grid
    out = similarity_output(spec)
    writer = OutputWriter(out, grid)
    areas: Optional[GeoPackageWriter] = None
    mask = np.zeros((grid.height, grid.width), dtype=bool) if AREAS_OUTPUT in spec.outputs else None
    try:
        with rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=1), rasterio.open(layout.path) as ds:
            rows, cols = _blocks(ds)
            total = -(-grid.height // rows)
            emit({"event": "log", "level": "info",
                  "message": f"similarity: {grid.width}x{grid.height} patches, {ds.count} features, "
                             f"{len(query.positives) + len(query.polygons)} positive and {len(query.negatives)} "
                             f"negative example(s)"})
            t0 = time.monotonic()
            for index, row_off in enumerate(range(0, grid.height, rows)):
                if cancel.is_set():
                    raise JobCancelled()
                h = min(rows, grid.height - row_off)
                strip = np.empty((1, h, grid.width), dtype=np.float32)
                for col_off in range(0, grid.width, cols):
                    w = min(cols, grid.width - col_off)
                    data = ds.read(window=Window(col_off, row_off, w, h))
                    strip[0, :, col_off:col_off + w] = score(data, layout.prototype, layout.negatives, ds.nodata)
                valid = np.isfinite(strip[0])
                writer.write(row_off, strip, valid)
                if mask is not None:
                    mask[row_off:row_off + h] = valid & (strip[0] >= query.threshold)
                emit(_progress(index + 1, total, t0))
        writer.finish(style_for(out, writer.stats()))
        if mask is not None:
            areas = GeoPackageWriter(spec.outputs[AREAS_OUTPUT], AREAS_TABLE, grid.crs.to_wkt(), "POLYGON",
                                     [("area", "DOUBLE")], f"TerraMind similarity >= {query.threshold:g}")
            areas.add_all(matching_areas(mask, grid.transform))
            areas.finish()
        if cancel.is_set():
            raise JobCancelled()
        publish(writer.moves() + (areas.moves() if areas is not None else []))  # both or neither
    except BaseException:
        writer.abort()
        if areas is not None:
            areas.abort()
        raise
    outputs = [output_entry(out)]
    if areas is not None:
        outputs.append({"name": AREAS_OUTPUT, "path": areas.path, "style": None, "kind": "areas",
                        "threshold": query.threshold})
    return {"outputs": outputs, "elapsed_s": round(time.monotonic() - started, 3), "tiles": total, "device": "cpu"}


def plan_similarity(spec: JobSpec) -> dict:
    """What the job would read and write (CLI ``--dry-run``); nothing written."""
    layout = inspect_similarity(spec)
    with rasterio.open(layout.path) as ds:
        rows, _ = _blocks(ds)
        features = ds.count
    g = layout.grid
    return {"task": spec.task, "grid": {"crs": g.crs.to_string(), "transform": list(g.transform)[:6],
                                        "width": g.width, "height": g.height},
            "inputs": {INPUT: {"path": layout.path, "features": features}},
            "examples": {"positives": len(spec.options.similarity.positives) + len(spec.options.similarity.polygons),
                         "negatives": len(spec.options.similarity.negatives)},
            "windows": -(-g.height // rows), "outputs": dict(spec.outputs), "warnings": list(spec.warnings)}


# the own-job interface the engine calls for this task (engine/tasks.py: Task.job)
def run(spec, *, emit: Optional[Emit] = None, cancel: Optional[threading.Event] = None, models=None,
        base_dir: Optional[str] = None) -> dict:
    return run_similarity(spec, emit=emit, cancel=cancel, base_dir=base_dir)


def validate(spec, base_dir: Optional[str] = None) -> JobSpec:
    parsed = parse_jobspec(spec, base_dir=base_dir)
    inspect_similarity(parsed)
    return parsed


def plan(spec, base_dir: Optional[str] = None) -> dict:
    return plan_similarity(parse_jobspec(spec, base_dir=base_dir))
