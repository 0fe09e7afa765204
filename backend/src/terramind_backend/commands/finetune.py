"""`terramind finetune`: train a segmentation model on one scene's labels (docs/finetune.md).

It only builds a ``finetune`` JobSpec and runs it like every job (``jobs.execute``): same progress
bar, ``--json-progress``, ``--dry-run`` and exit codes. Several scenes: write a JobSpec and use
``terramind run``.
"""
from __future__ import annotations

import argparse
import os

from .common_args import add_device, add_model_and_inputs, add_run_options, inputs_from_args
from .jobs import execute


def _labels_arg(text: str):
    """LABELS[:FIELD]; a path that exists as given wins (so C:\\labels.tif or a: in a name still work)."""
    if os.path.exists(text) or ":" not in text:
        return text, None
    path, fld = text.rsplit(":", 1)
    if not fld or "/" in fld or "\\" in fld:
        return text, None
    return path, fld


def register(subparsers) -> None:
    p = subparsers.add_parser("finetune", help="train a segmentation model on your labels (raster or polygons)")
    g = p.add_argument_group("job")
    add_model_and_inputs(g, "backbone size; _tim = TiM")
    g.add_argument("--labels", required=True, type=_labels_arg, metavar="LABELS[:FIELD]",
                   help="label raster, or polygon file and its class field, e.g. fields.gpkg:crop")
    g.add_argument("--out", required=True, metavar="MODEL.ckpt", help="checkpoint to write")
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--decoder", default="UNetDecoder", help="UNetDecoder (default), UperNetDecoder or FCNDecoder")
    g.add_argument("--batch", type=int, default=8, help="chips per step (default 8)")
    g.add_argument("--chip", type=int, default=224, help="chip size in px, a multiple of 32 (default 224)")
    g.add_argument("--lr", type=float, default=1e-4, help="learning rate of necks, decoder and head (default 1e-4)")
    g.add_argument("--train-backbone", action="store_true", help="train the backbone too (at --backbone-lr)")
    g.add_argument("--backbone-lr", type=float, default=1e-5)
    g.add_argument("--class-weights", choices=("balanced",), help="weight classes by inverse frequency")
    g.add_argument("--dice", action="store_true", help="add a Dice loss to the cross-entropy")
    g.add_argument("--val-fraction", type=float, default=0.2, help="share held out for validation (default 0.2)")
    g.add_argument("--early-stopping", type=int, default=5, help="epochs without improvement before stopping (0 = off)")
    g.add_argument("--resolution", type=float, default=10.0, help="pixel size in the scene CRS (default 10)")
    add_device(g)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--resume", action="store_true", help="continue an earlier run of the same job from its last epoch")
    add_run_options(p)
    p.set_defaults(func=run_finetune)


def build_spec(args) -> dict:
    inputs = inputs_from_args(args)
    path, fld = args.labels
    return {"version": 1, "task": "finetune", "model": args.model,
            "training": [{"inputs": inputs, "labels": {"path": path, "field": fld}}],
            "outputs": {"checkpoint": args.out}, "resolution": args.resolution, "device": args.device,
            "seed": args.seed,
            "training_options": {"epochs": args.epochs, "decoder": args.decoder, "batch_size": args.batch,
                                 "chip_size": args.chip, "lr": args.lr, "freeze_backbone": not args.train_backbone,
                                 "backbone_lr": args.backbone_lr, "class_weights": args.class_weights,
                                 "dice": args.dice, "val_fraction": args.val_fraction,
                                 "early_stopping": args.early_stopping, "resume": args.resume}}


def run_finetune(args: argparse.Namespace) -> int:
    return execute(build_spec(args), args)
