"""Command-line arguments every job command shares (`jobs.py`'s product commands, `finetune`, `similarity`).

One definition of each shared option (name, type, default, help) and of how the parsed ``--in``/``--bands``
become the JobSpec's ``inputs``, so the commands cannot drift apart. Torch-free, like the CLI's import path.
"""
from __future__ import annotations

import argparse

from ..catalog import DEFAULT_MODEL


def pair_arg(text: str, what: str):
    """NAME=VALUE as (name, value); ``what`` names the option in the error message."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{what} must look like NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def in_arg(text: str):
    return pair_arg(text, "--in")


def out_arg(text: str):
    return pair_arg(text, "--out")


def bands_arg(text: str):
    name, value = pair_arg(text, "--bands")
    try:
        return name, [int(b) for b in value.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bands {text!r}: give 1-based band numbers, e.g. S2L2A=1,2,3")


def add_model_and_inputs(group, model_help: str) -> None:
    """--model (its help says what the command uses it for, then the default), --in and --bands."""
    group.add_argument("--model", default=DEFAULT_MODEL, help=f"{model_help} (default {DEFAULT_MODEL})")
    group.add_argument("--in", dest="inputs", action="append", type=in_arg, required=True, metavar="MODALITY=PATH",
                       help="input raster per modality, e.g. S2L2A=scene.tif (repeat for more modalities)")
    group.add_argument("--bands", action="append", type=bands_arg, default=[], metavar="MODALITY=1,2,...",
                       help="1-based bands of that input in the model's band order")


def add_device(group) -> None:
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How a job runs and reports: executor, progress output, dry run, confirmation."""
    p.add_argument("--executor", choices=("local", "ray"),
                   help="where the windows run: this process (local) or a Ray cluster (docs/scale.md); "
                        "overrides the JobSpec's executor.kind")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="Ray cluster to run on (implies --executor ray); without it a Ray run starts a local "
                        "Ray instance for the job")
    p.add_argument("--json-progress", action="store_true", help="print events and the result as JSON lines on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and print the plan (grid, windows, batches) as JSON; load nothing, write nothing")
    p.add_argument("--yes", action="store_true",
                   help="run a job that looks like a mistake (very many windows, a resolution far finer than the "
                        "inputs') without asking")


def inputs_from_args(args) -> dict:
    """The JobSpec ``inputs`` of --in/--bands: {modality: {"path", "bands"}}; --bands without its --in exits."""
    bands = dict(args.bands)
    inputs = {mod: {"path": path, "bands": bands.pop(mod, None)} for mod, path in args.inputs}
    if bands:
        raise SystemExit(f"terramind: error: --bands given for {', '.join(bands)} without a matching --in")
    return inputs
