"""What a `similarity` job asks (JobSpec options), checked without opening a file.

A similarity job reads one embeddings raster written by `embed`/`tim-embed` (input key
``embeddings``) and writes the cosine similarity of every patch to the positive examples
(``similarity``, a GeoTIFF) and optionally the patches above ``threshold`` as polygons (``areas``,
a GeoPackage). Examples are map points (``positives``/``negatives``, ``[x, y]`` pairs) and/or
polygons (``polygons``, WKT, each counted as one positive example: the mean of its patches), all in
``points_crs`` (default: the embeddings' CRS). docs/similarity.md explains the score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import JobValidationError

TASK = "similarity"
INPUT = "embeddings"                 # the one input key: an embeddings GeoTIFF
RASTER_OUTPUT = "similarity"         # required: the 0–1 similarity GeoTIFF
AREAS_OUTPUT = "areas"               # optional: GeoPackage of patches with similarity ≥ threshold
OUTPUTS = (RASTER_OUTPUT, AREAS_OUTPUT)
OPTION_KEYS = ("positives", "negatives", "polygons", "points_crs", "threshold")
MAX_EXAMPLES = 1000

Point = Tuple[float, float]


@dataclass(frozen=True)
class SimilarityQuery:
    positives: Tuple[Point, ...] = ()
    negatives: Tuple[Point, ...] = ()
    polygons: Tuple[str, ...] = ()       # WKT POLYGON/MULTIPOLYGON, each one positive example
    points_crs: Optional[str] = None     # CRS of points and polygons; None = the embeddings' CRS
    threshold: Optional[float] = None    # 0 < t ≤ 1; required for the areas output


def _points(raw, name: str) -> Tuple[Point, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise JobValidationError(f"{name} must be a list of [x, y] points, got {raw!r}.", name)
    if len(raw) > MAX_EXAMPLES:
        raise JobValidationError(f"{name} has {len(raw)} points; at most {MAX_EXAMPLES} are allowed.", name)
    points = []
    for p in raw:
        ok = isinstance(p, (list, tuple)) and len(p) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf") for v in p)
        if not ok:
            raise JobValidationError(f"{name}: each point must be [x, y] with two finite numbers, got {p!r}.", name)
        points.append((float(p[0]), float(p[1])))
    return tuple(points)


def parse_query(options: dict, outputs: dict, warnings: List[str]) -> SimilarityQuery:
    """``options.similarity`` (a dict from the JobSpec); raises JobValidationError, notes unknown keys."""
    warnings += [f"Ignored unknown key options.similarity.{k!r}." for k in options if k not in OPTION_KEYS]
    positives = _points(options.get("positives"), "options.similarity.positives")
    negatives = _points(options.get("negatives"), "options.similarity.negatives")
    polygons = options.get("polygons") or ()
    if not isinstance(polygons, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in polygons):
        raise JobValidationError(f"options.similarity.polygons must be a list of WKT polygons, got {polygons!r}.",
                                 "options.similarity.polygons")
    if not positives and not polygons:
        raise JobValidationError("similarity needs at least one positive example: options.similarity.positives "
                                 "(points) or options.similarity.polygons.", "options.similarity.positives")
    crs = options.get("points_crs")
    if crs is not None and (not isinstance(crs, str) or not crs.strip()):
        raise JobValidationError(f"options.similarity.points_crs must be a CRS string like \"EPSG:4326\", "
                                 f"got {crs!r}.", "options.similarity.points_crs")
    threshold = options.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise JobValidationError(f"options.similarity.threshold must be a number in (0, 1], got {threshold!r}.",
                                     "options.similarity.threshold")
        threshold = float(threshold)
    if AREAS_OUTPUT in outputs and threshold is None:
        raise JobValidationError("outputs.areas needs options.similarity.threshold: the similarity (0–1) from "
                                 "which a patch counts as a match.", "options.similarity.threshold")
    return SimilarityQuery(positives=positives, negatives=negatives, polygons=tuple(p.strip() for p in polygons),
                           points_crs=crs.strip() if crs else None, threshold=threshold)


def output_suffix(key: str) -> Tuple[str, ...]:
    """File name endings an output accepts."""
    return (".gpkg",) if key == AREAS_OUTPUT else (".tif", ".tiff")
