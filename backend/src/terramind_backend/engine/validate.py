"""Checks that need the files, run before any heavy work; nothing is written while checking.

`validate_job(spec)` = `parse_jobspec` (structure) + `inspect_job` (rasters, grid, outputs). The
second returns a `Layout`, the resolved facts the runner needs (target grid, per-input band
indexes and nodata, extent polygon), so the runner and the validator can never disagree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioIOError
from rasterio.warp import transform_bounds, transform_geom

from . import predictors
from .errors import JobValidationError
from .grid import Bounds, Grid, build_grid, geojson_bounds, intersect, wkt_to_geojson
from .jobspec import JobSpec, parse_jobspec
from .modalities import MODALITIES
from .tasks import TASKS, own_job
from .uncertainty import derived_files

MAX_PIXELS = 200_000 * 200_000  # refuse absurd grids (a typo in resolution) before allocating anything


@dataclass(frozen=True)
class SourceInfo:
    modality: str
    path: str
    bands: Tuple[int, ...]       # 1-based indexes into the file, in model band order
    nodata: Optional[float]
    crs: CRS
    bounds: Bounds               # in the file's CRS
    res: Tuple[float, float]


@dataclass(frozen=True)
class Layout:
    grid: Grid                   # target grid covering the extent
    sources: Dict[str, SourceInfo]
    polygon: Optional[dict]      # extent polygon in the target CRS (GeoJSON), None for a box


def validate_job(spec, base_dir: Optional[str] = None) -> JobSpec:
    """Validate a JobSpec dict (or JobSpec) completely; raise `JobValidationError(message, field)`."""
    job = own_job(spec)
    if job is not None:  # a task with its own JobSpec form (engine/tasks.py)
        return job.validate(spec, base_dir=base_dir)
    parsed = parse_jobspec(spec, base_dir=base_dir)
    if not predictors.available(parsed.task):
        raise JobValidationError(f"Task {parsed.task!r} is not available in this backend build.", "task")
    if parsed.executor.kind == "ray":
        from .executors.ray import require_ray

        require_ray()
    inspect_job(parsed)
    return parsed


def _crs(text: str, field_name: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise JobValidationError(f"{field_name} {text!r} is not a CRS rasterio understands ({exc}).", field_name)


def _source(mod: str, spec: JobSpec) -> SourceInfo:
    item = spec.inputs[mod]
    where = f"inputs.{mod}"
    if not os.path.exists(item.path):
        raise JobValidationError(f"Input {mod}: file not found: {item.path}", f"{where}.path")
    try:
        with rasterio.open(item.path) as ds:
            count, crs, transform, bounds, nodata = ds.count, ds.crs, ds.transform, ds.bounds, ds.nodata
            res = ds.res
    except RasterioIOError as exc:
        raise JobValidationError(f"Input {mod}: cannot open {item.path} as a raster ({exc}).", f"{where}.path")
    if crs is None:
        raise JobValidationError(f"Input {mod} ({os.path.basename(item.path)}) has no CRS; assign one in QGIS "
                                 f"(Set Layer CRS) or with gdal_edit.py -a_srs.", f"{where}.path")
    if transform.b != 0 or transform.d != 0:
        raise JobValidationError(f"Input {mod} ({os.path.basename(item.path)}) is rotated or sheared; warp it to a "
                                 f"north-up grid first.", f"{where}.path")
    need = MODALITIES[mod].channels
    if item.bands is None:
        if TASKS[spec.task].checkpoint_sets_bands:  # e.g. segment: its predictor checks against the checkpoint
            need = count
        if count != need:
            raise JobValidationError(
                f"Input {mod} ({os.path.basename(item.path)}) has {count} band(s) but {mod} needs {need} "
                f"({', '.join(MODALITIES[mod].band_names)}); give a band mapping in {where}.bands.", f"{where}.bands")
        bands = tuple(range(1, need + 1))
    else:
        bad = [b for b in item.bands if b > count]
        if bad:
            raise JobValidationError(f"Input {mod}: band(s) {bad} requested but {os.path.basename(item.path)} has only "
                                     f"{count} band(s).", f"{where}.bands")
        bands = item.bands
    nodata = item.nodata if item.nodata is not None else nodata
    return SourceInfo(mod, item.path, bands, nodata, crs, tuple(bounds), tuple(res))


def _output_files(spec: JobSpec):
    """(key, path, JobSpec field) of every file a job writes, including derived probability files."""
    files = []
    for key, path in spec.outputs.items():
        files.append((key, path, f"outputs.{key}"))
        if spec.options.probabilities and TASKS[spec.task].modality_outputs and key == "LULC":
            stem, _ = os.path.splitext(path)
            files.append((f"{key}_probabilities", f"{stem}_probabilities.tif", f"outputs.{key}"))
        files += [(name, p, f"outputs.{key}") for name, p in derived_files(spec.task, key, path, spec.options.uncertainty)]
    return files


def check_output_files(spec: JobSpec) -> None:
    """Every file a job writes: not an input, not twice, in a writable folder."""
    inputs = {os.path.realpath(i.path): m for m, i in spec.inputs.items()}
    seen: Dict[str, str] = {}
    for key, path, name in _output_files(spec):
        real = os.path.realpath(path)
        if real in inputs:
            raise JobValidationError(f"Output {key} would overwrite input {inputs[real]} ({path}); "
                                     f"choose another file name.", name)
        if real in seen:
            raise JobValidationError(f"Outputs {seen[real]} and {key} both write {path}.", name)
        seen[real] = key
        if os.path.isdir(path):
            raise JobValidationError(f"Output {key} path {path} is a folder; give a .tif file name.", name)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise JobValidationError(f"Output {key}: folder {folder} does not exist.", name)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise JobValidationError(f"Output {key}: folder {folder} is not writable.", name)
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise JobValidationError(f"Output {key}: {path} exists and is read-only.", name)


def _check_checkpoint(spec: JobSpec) -> None:
    path = spec.options.checkpoint
    if path is None:
        return
    if not os.path.isfile(path):
        raise JobValidationError(f"options.checkpoint: file not found: {path} (a relative path is resolved against "
                                 f"the JobSpec's folder).", "options.checkpoint")
    if not os.access(path, os.R_OK):
        raise JobValidationError(f"options.checkpoint: {path} is not readable.", "options.checkpoint")


def inspect_job(spec: JobSpec) -> Layout:
    """Open every input (metadata only), resolve the target grid and check the outputs."""
    sources = {mod: _source(mod, spec) for mod in spec.inputs}
    first = next(iter(sources.values()))
    anchor = next((s for s in sources.values() if MODALITIES[s.modality].optical), first)
    target_crs = _crs(spec.crs, "crs") if spec.crs else anchor.crs
    if target_crs.is_geographic and spec.resolution > 1:
        raise JobValidationError(f"The target CRS {target_crs.to_string()} is in degrees, so resolution "
                                 f"{spec.resolution} makes no sense; choose a projected CRS (e.g. UTM) in 'crs'.",
                                 "resolution")

    polygon = None
    if spec.extent is None:
        bounds = transform_bounds(first.crs, target_crs, *first.bounds, densify_pts=21)
    else:
        ext_crs = _crs(spec.extent.crs, "extent.crs")
        if spec.extent.polygon is not None or spec.extent.polygon_wkt is not None:
            try:
                geom = spec.extent.polygon or wkt_to_geojson(spec.extent.polygon_wkt)
            except ValueError as exc:
                raise JobValidationError(f"extent.polygon_wkt is not a valid polygon: {exc}.", "extent.polygon_wkt")
            polygon = transform_geom(ext_crs, target_crs, geom) if ext_crs != target_crs else geom
            bounds = geojson_bounds(polygon)
        else:
            bounds = transform_bounds(ext_crs, target_crs, *spec.extent.bounds, densify_pts=21)
    if not (bounds[0] < bounds[2] and bounds[1] < bounds[3]):
        raise JobValidationError("The extent is empty (zero width or height).", "extent")

    same_lattice = anchor.crs == target_crs and abs(anchor.res[0] - spec.resolution) < 1e-9 * spec.resolution
    with rasterio.open(anchor.path) as ds:
        grid = build_grid(target_crs, bounds, spec.resolution, ds.transform if same_lattice else None)
    if grid.width == 0 or grid.height == 0:
        raise JobValidationError("The extent is empty at this resolution (less than one pixel).", "extent")
    if grid.width * grid.height > MAX_PIXELS:
        raise JobValidationError(f"The target grid would be {grid.width}×{grid.height} px; check resolution "
                                 f"({spec.resolution}) and extent.", "resolution")

    for mod, src in sources.items():
        src_bounds = transform_bounds(src.crs, target_crs, *src.bounds, densify_pts=21)
        if intersect(src_bounds, grid.bounds) is None:
            raise JobValidationError(f"Input {mod} ({os.path.basename(src.path)}) does not overlap the extent.",
                                     f"inputs.{mod}.path")
    check_output_files(spec)
    _check_checkpoint(spec)
    return Layout(grid=grid, sources=sources, polygon=polygon)
