"""`terramind run | generate | embed | tim-embed | reconstruct | segment`: the job engine from a shell.

Every product command only builds a JobSpec and calls the same `run_job` as the stdio server.
Progress: a bar on stderr when it is a terminal; ``--json-progress`` prints every event and the
result as JSON lines on stdout. Exit codes: 0 done, 1 job failed, 2 invalid job, 130 cancelled.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

from ..models.precision import PRECISIONS  # torch-free
from .common_args import add_device, add_model_and_inputs, add_run_options, inputs_from_args, out_arg

EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 1, 2, 130


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("job")
    add_model_and_inputs(g, "model size family")
    g.add_argument("--crs", help="target CRS (default: first optical input's CRS)")
    g.add_argument("--resolution", type=float, default=10.0, help="target pixel size in CRS units (default 10)")
    g.add_argument("--bounds", type=float, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                   help="extent to process (default: the first input's extent)")
    g.add_argument("--bounds-crs", help="CRS of --bounds (default: the target CRS)")
    g.add_argument("--window", type=int, default=224, help="window size in px (default 224)")
    g.add_argument("--overlap", type=int, default=32, help="overlap between windows in px (default 32)")
    g.add_argument("--batch", type=int, default=8, help="windows per model call (default 8)")
    add_device(g)
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument("--checkpoint", help="local TerraMind checkpoint instead of the official weights")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="model arithmetic: auto = bf16 where measured faster here (terramind doctor shows it), "
                        "fp32 = exact (default auto)")
    add_run_options(p)


def _location_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--use-location", action="store_true",
                   help="feed each window's centre (lon, lat, WGS 84) as the Coordinates input")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a JobSpec JSON file (docs/jobspec.md)")
    p.add_argument("job", metavar="JOB.json", help="JobSpec file; relative paths in it are relative to its folder")
    add_run_options(p)
    p.set_defaults(func=run_file)

    p = subparsers.add_parser("generate", help="generate modalities (LULC, NDVI, DEM, S1GRD, S1RTC, S2L2A, Coordinates)")
    _common(p)
    _location_arg(p)
    p.add_argument("--out", dest="outputs", action="append", type=out_arg, required=True,
                   metavar="MODALITY=PATH", help="output per generated modality, e.g. LULC=lulc.tif; "
                                                 "Coordinates=points.gpkg writes one point per window")
    p.add_argument("--timesteps", type=int, default=10, help="diffusion steps for image outputs (default 10)")
    p.add_argument("--probabilities", action="store_true", help="also write LULC class probabilities")
    p.add_argument("--confidence", action="store_true",
                   help="also write <name>_confidence and <name>_entropy for LULC (docs/uncertainty.md)")
    p.add_argument("--spread", type=int, metavar="N", default=0,
                   help="also write <name>_spread for continuous outputs: std over N seeded generations (N x cost)")
    p.set_defaults(func=run_product, task="generate")

    for task, text in (("embed", "TerraMind encoder embeddings per 16 px patch"),
                       ("tim-embed", "Thinking-in-Modalities embeddings per 16 px patch")):
        p = subparsers.add_parser(task, help=text)
        _common(p)
        _location_arg(p)
        p.add_argument("--out", required=True, metavar="PATH", help="embeddings GeoTIFF (one band per feature)")
        p.add_argument("--layer", type=int, default=-1, help="encoder layer (default -1, the last)")
        p.add_argument("--merge", default="mean", help="merge of several modalities: mean, max or concat")
        if task == "tim-embed":
            p.add_argument("--tim", nargs="+", default=["LULC"], help="TiM modalities (default LULC)")
        p.set_defaults(func=run_product, task=task)

    p = subparsers.add_parser("reconstruct", help="round-trip inputs through their tokenizers")
    _common(p)
    p.add_argument("--out", dest="outputs", action="append", type=out_arg, required=True,
                   metavar="MODALITY=PATH", help="reconstructed input, e.g. S2L2A=s2_rec.tif")
    p.add_argument("--timesteps", type=int, default=10, help="diffusion steps (default 10)")
    p.set_defaults(func=run_product, task="reconstruct")

    p = subparsers.add_parser("segment", help="classes from a fine-tuned TerraTorch segmentation checkpoint "
                                              "(--checkpoint model.ckpt)")
    _common(p)
    p.add_argument("--out", required=True, metavar="PATH", help="class map GeoTIFF")
    p.add_argument("--probabilities", metavar="PATH", help="also write class probabilities to this GeoTIFF")
    p.set_defaults(func=run_product, task="segment")


def build_spec(args) -> dict:
    """The JobSpec dict a product command stands for."""
    inputs = inputs_from_args(args)
    spec = {"version": 1, "task": args.task, "model": args.model, "inputs": inputs, "crs": args.crs,
            "resolution": args.resolution, "device": args.device, "seed": args.seed,
            "tiling": {"window": args.window, "overlap": args.overlap, "batch_size": args.batch},
            "options": {"checkpoint": args.checkpoint, "precision": args.precision}}
    if args.bounds:
        spec["extent"] = {"bounds": list(args.bounds), "crs": args.bounds_crs or args.crs or _first_crs(inputs)}
    if getattr(args, "use_location", False):
        spec["options"]["use_location"] = True
    if args.task == "segment":
        spec["outputs"] = {"classes": args.out}
        if args.probabilities:
            spec["outputs"]["probabilities"] = args.probabilities
    elif args.task in ("embed", "tim-embed"):
        spec["outputs"] = {"embeddings": args.out}
        spec["options"].update(layer=args.layer, merge_method=args.merge)
        if args.task == "tim-embed":
            spec["options"]["tim_modalities"] = args.tim
    else:
        spec["outputs"] = dict(args.outputs)
        spec["timesteps"] = args.timesteps
        spec["options"]["probabilities"] = bool(getattr(args, "probabilities", False))
        if getattr(args, "confidence", False) or getattr(args, "spread", 0):
            spread = getattr(args, "spread", 0)
            spec["options"]["uncertainty"] = {"confidence": bool(getattr(args, "confidence", False)),
                                              "spread": bool(spread), **({"samples": spread} if spread else {})}
    return spec


def _first_crs(inputs: dict) -> str:
    import rasterio

    first = next(iter(inputs.values()))["path"]
    try:
        with rasterio.open(first) as ds:
            return ds.crs.to_string() if ds.crs else "EPSG:4326"
    except Exception:  # noqa: BLE001 - validation reports the unreadable file properly
        return "EPSG:4326"


class _Bar:
    """A one-line progress bar on stderr (only drawn when stderr is a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        if event.get("event") == "log" and event.get("level") in ("warning", "info"):
            sys.stderr.write("\r\033[K" + event["message"] + "\n")
            return
        if event.get("event") != "progress":
            return
        now = time.monotonic()
        if now - self._last < 0.1 and event["done"] < event["total"]:
            return
        self._last = now
        width = 30
        filled = int(width * event["fraction"])
        eta = event.get("eta_s")
        eta_text = f" ETA {eta:.0f}s" if eta is not None else ""
        where = event["message"] if "phase" in event else f"{event['done']}/{event['total']}"  # tiles and model step
        sys.stderr.write(f"\r\033[K{event['stage']:<8} [{'#' * filled}{'.' * (width - filled)}] {where}{eta_text}")
        if event["stage"] == "tiles" and event["done"] >= event["total"]:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _with_executor(spec, args):
    """The JobSpec with --executor/--address applied (they override its executor)."""
    if not (args.executor or args.address) or not isinstance(spec, dict):
        return spec
    if args.executor == "local" and args.address:
        raise SystemExit("terramind: error: --address is a Ray cluster address; drop it or use --executor ray")
    executor = spec.get("executor") or {}
    executor = dict(executor) if isinstance(executor, dict) else {"kind": executor}
    executor["kind"] = "ray" if args.address else args.executor
    if args.address:
        executor["address"] = args.address
    return {**spec, "executor": executor}


def _needs_confirmation(spec, args, base_dir) -> Optional[int]:
    """Print the run-time estimate; refuse a job that looks like a mistake unless --yes (engine/guards.py)."""
    from ..engine import JobValidationError
    from ..engine.guards import preflight
    from ..engine.time_estimate import describe

    try:
        checked = preflight(spec, base_dir)
    except JobValidationError:
        return None  # run_job reports it, with its field
    estimate = checked["estimate"]
    if estimate is not None and not getattr(args, "quiet", False):
        print(f"terramind: {estimate['windows']:,} windows, estimated run time {describe(estimate['seconds'])}",
              file=sys.stderr)
    if getattr(args, "yes", False) or not checked["confirm"]:
        return None
    message = (f"This job looks like a mistake: {'; '.join(checked['confirm'])}. Check the settings, or add --yes "
               f"to run it.")
    if args.json_progress:
        print(json.dumps({"event": "error", "kind": "validation", "message": message, "field": "confirm"}), flush=True)
    print(f"terramind: {message}", file=sys.stderr)
    return EXIT_INVALID


def execute(spec, args, base_dir=None) -> int:
    """Run a JobSpec as every command does: progress, --json-progress, --dry-run, exit codes."""
    from ..engine import JobCancelled, JobValidationError, explain, plan_job, run_job
    from ..signals import on_signals, signal_name, termination_signals

    spec = _with_executor(spec, args)

    if args.dry_run:
        try:
            print(json.dumps(plan_job(spec, base_dir=base_dir), indent=2))
        except JobValidationError as exc:
            print(f"terramind: invalid job{f' [{exc.field}]' if exc.field else ''}: {exc.message}", file=sys.stderr)
            return EXIT_INVALID
        return 0

    refused = _needs_confirmation(spec, args, base_dir)
    if refused is not None:
        return refused

    if args.json_progress:
        def emit(event):
            # one write per line: a SIGTERM between a line and its newline would glue the error event to it
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()
    else:
        emit = _Bar(not args.quiet)
    stopped = []

    def stop(signum):  # SIGTERM: cancel, so the engine removes its temporary files
        stopped.append(signum)
        raise JobCancelled(f"Stopped by {signal_name(signum)}; no output was written.")

    try:
        with on_signals(termination_signals(), stop):
            result = run_job(spec, emit=emit, base_dir=base_dir)
    except JobValidationError as exc:
        where = f" [{exc.field}]" if exc.field else ""
        if args.json_progress:
            print(json.dumps({"event": "error", "kind": "validation", "message": exc.message, "field": exc.field}),
                  flush=True)
        print(f"terramind: invalid job{where}: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except (JobCancelled, KeyboardInterrupt) as exc:
        message = str(exc) if isinstance(exc, JobCancelled) else "Job cancelled; no output was written."
        if args.json_progress:
            print(json.dumps({"event": "error", "kind": "cancelled", "message": message, "field": None}), flush=True)
        print(f"terramind: {message}", file=sys.stderr)
        return 128 + stopped[0] if stopped else EXIT_CANCELLED
    except Exception as exc:  # every failure: one clear line, and an error event for --json-progress
        if os.environ.get("TERRAMIND_DEBUG"):
            raise
        message = explain(exc, spec, base_dir)
        if args.json_progress:
            print(json.dumps({"event": "error", "kind": "runtime", "message": message, "field": None}), flush=True)
        print(f"terramind: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    if args.json_progress:
        print(json.dumps({"event": "result", **result}), flush=True)
    else:
        for out in result["outputs"]:
            print(f"{out['name']}: {out['path']}")
        work = f"{result['tiles']} windows" if "tiles" in result else f"{result.get('epochs_run', 0)} epoch(s)"
        print(f"{work} on {result['device']} in {result['elapsed_s']:.1f} s", file=sys.stderr)
    return 0


def run_file(args) -> int:
    try:
        with open(args.job, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as exc:
        print(f"terramind: cannot read {args.job}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    except json.JSONDecodeError as exc:
        print(f"terramind: {args.job} is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return execute(spec, args, base_dir=os.path.dirname(os.path.abspath(args.job)))


def run_product(args) -> int:
    return execute(build_spec(args), args)
