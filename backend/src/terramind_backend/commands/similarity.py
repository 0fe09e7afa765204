"""`terramind similarity`: find patches like the given examples in an embeddings raster.

Builds a `similarity` JobSpec (docs/similarity.md) and runs it through the same engine entry as
every other command (`jobs.execute`: progress, ``--json-progress``, ``--dry-run``, exit codes).
"""
from __future__ import annotations

import argparse

from .common_args import add_run_options
from .jobs import execute


def _xy(text: str):
    try:
        x, y = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is X,Y (two numbers, e.g. 512340,5412080), got {text!r}")
    return [x, y]


def register(subparsers) -> None:
    p = subparsers.add_parser("similarity", help="cosine similarity of every patch of an embeddings raster to "
                                                 "clicked examples (0-1)")
    p.add_argument("--embeddings", required=True, metavar="EMB.tif", help="embeddings written by embed/tim-embed")
    p.add_argument("--at", dest="positives", action="append", type=_xy, default=[], metavar="X,Y",
                   help="a positive example (repeat; several are averaged)")
    p.add_argument("--negative", dest="negatives", action="append", type=_xy, default=[], metavar="X,Y",
                   help="a negative example: patches nearer to it than to the positives score 0 (repeat)")
    p.add_argument("--polygon", dest="polygons", action="append", default=[], metavar="WKT",
                   help="a positive example area, WKT POLYGON (the mean of the patches it covers)")
    p.add_argument("--crs", help="CRS of the points and polygons (default: the embeddings' CRS)")
    p.add_argument("--out", required=True, metavar="SIM.tif", help="similarity GeoTIFF (0-1)")
    p.add_argument("--threshold", type=float, help="similarity from which a patch is a match (0-1], for --areas")
    p.add_argument("--areas", metavar="AREAS.gpkg", help="also write the matching areas as polygons (GeoPackage)")
    add_run_options(p)
    p.set_defaults(func=run_similarity)


def build_spec(args) -> dict:
    query = {"positives": args.positives, "negatives": args.negatives, "polygons": args.polygons,
             "points_crs": args.crs}
    outputs = {"similarity": args.out}
    if args.threshold is not None:
        query["threshold"] = args.threshold
    if args.areas:
        outputs["areas"] = args.areas
    return {"version": 1, "task": "similarity", "inputs": {"embeddings": args.embeddings}, "outputs": outputs,
            "options": {"similarity": query}}


def run_similarity(args) -> int:
    return execute(build_spec(args), args)
