"""`terramind` console script: one sub-command per module in ``terramind_backend.commands``.

Each command module exposes ``register(subparsers)`` and sets ``func`` on its parser, so the
CLI grows without this file knowing the details. Heavy imports (torch) happen inside commands.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

COMMAND_MODULES = ("doctor", "jobs", "finetune", "serve", "similarity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="terramind", description="TerraMind 1.0 inference for geospatial rasters.")
    parser.add_argument("--version", action="version", version=f"terramind {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.commands.{name}":
                continue  # command not shipped in this build
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("terramind: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing: one clear line, details with TERRAMIND_DEBUG=1
        import os

        if os.environ.get("TERRAMIND_DEBUG"):
            raise
        print(f"terramind: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
