"""``finetune`` jobs: validate → index chips → split → build → train → checkpoint, metrics, report.

Validation (``prepare``) finishes before a model loads or a file is written. At the end of each
epoch the metrics file, the report and the resume state are rewritten, and the checkpoint (with its
class sidecar) whenever the validation mIoU improved, each atomically; so a cancelled run keeps its
best checkpoint so far and says so, and ``resume`` continues from the last finished epoch.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Callable, Optional

from ..engine.errors import JobCancelled, JobValidationError
from .scenes import Prepared, prepare
from .spec import FinetuneSpec, parse_finetune

Emit = Callable[[dict], None]


def validate_finetune(raw, base_dir: Optional[str] = None) -> FinetuneSpec:
    """Every check a run makes before it loads a model (files, labels, classes, chips); writes nothing."""
    spec = parse_finetune(raw, base_dir)
    prepare(spec).close()
    return spec


def _class_weights(spec: FinetuneSpec, prepared: Prepared, train_idx) -> Optional[list]:
    weights = spec.training_options.class_weights
    if weights is None:
        return None
    n = len(prepared.classes)
    if isinstance(weights, tuple):
        if len(weights) != n:
            raise JobValidationError(f"training_options.class_weights lists {len(weights)} weights for {n} classes.",
                                     "training_options.class_weights")
        return [float(w) for w in weights]
    counts = [0] * n  # "balanced": inverse frequency in the training chips
    table = prepared.table
    for k in train_idx:
        for v, c in prepared.chips[k].counts.items():
            counts[table[v]] += c
    present = sum(1 for c in counts if c)
    total = sum(counts)
    return [round(total / (present * c), 6) if c else 0.0 for c in counts]


def _fingerprint(args: dict, prepared: Prepared, train_idx, spec: FinetuneSpec) -> str:
    """What a resume state must share with the run that continues it."""
    o = spec.training_options
    data = {"model_args": args, "labels": [str(v) for v in prepared.label_values],
            "chips": [(c.scene, c.row, c.col) for c in prepared.chips], "train": list(train_idx),
            "options": [o.batch_size, o.chip_size, o.lr, o.backbone_lr, o.freeze_backbone, o.weight_decay,
                        o.class_weights, o.dice, o.augment, o.epochs], "seed": spec.seed}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _read_resume(spec: FinetuneSpec, fingerprint: str) -> Optional[dict]:
    if not spec.training_options.resume:
        return None
    from .checkpoint import load_state

    path = spec.sidecar("state.pt")
    if not os.path.isfile(path):
        raise JobValidationError(f"Nothing to resume: {path} does not exist (it is written at the end of each epoch "
                                 "of a run with this checkpoint name).", "training_options.resume")
    try:
        state = load_state(path)
    except Exception as exc:  # noqa: BLE001 - damaged or foreign file
        raise JobValidationError(f"Cannot read the resume state {path}: {exc}", "training_options.resume") from None
    if state.get("fingerprint") != fingerprint:
        raise JobValidationError(f"{os.path.basename(path)} was written by a run with other scenes, labels, model or "
                                 "training options (only epochs may change); start a new run without resume.",
                                 "training_options.resume")
    if int(state["epoch"]) >= spec.training_options.epochs:
        raise JobValidationError(f"The earlier run already finished {state['epoch']} epoch(s); raise "
                                 "training_options.epochs to train longer.", "training_options.epochs")
    return state


def _metrics(spec, prepared, trainer, stopped, device, args, train_idx, val_idx) -> dict:
    from .metrics import per_class

    best = next((h for h in trainer.history if h.epoch == trainer.best_epoch), None)
    names = [c.name for c in prepared.classes]
    matrix = best.confusion if best is not None else None
    pixels = {n: p for n, p in zip(names, prepared.class_pixels)}

    def labelled(idx):
        return int(sum(sum(prepared.chips[k].counts.values()) for k in idx))
    return {
        "epochs": [h.record() for h in trainer.history], "best_epoch": trainer.best_epoch, "stopped": stopped,
        "classes": [dict(c.to_dict(), label=v) for c, v in zip(prepared.classes, prepared.label_values)],
        "per_class": per_class(matrix, prepared.classes) if matrix is not None else [],
        "confusion_matrix": {"classes": names, "rows": "reference", "columns": "predicted",
                             "matrix": matrix.tolist() if matrix is not None else []},
        "label_pixels": pixels,
        "split": {"train_chips": len(train_idx), "val_chips": len(val_idx), "train_labelled_pixels": labelled(train_idx),
                  "val_labelled_pixels": labelled(val_idx), "chip_size": spec.training_options.chip_size},
        "model": spec.model, "decoder": spec.training_options.decoder, "model_args": args, "seed": spec.seed,
        "device": device, "checkpoint": spec.checkpoint}


def _load_progress(emit: Emit, done: int, message: str) -> None:
    emit({"event": "progress", "stage": "load", "done": done, "total": 1, "fraction": float(done), "eta_s": None,
          "message": message})


def run_finetune(raw, *, emit: Optional[Emit] = None, cancel=None, models=None,
                 base_dir: Optional[str] = None) -> dict:
    """Run a ``finetune`` job (docs/finetune.md); returns the result payload."""
    import threading

    import torch

    from ..engine.runner import _resolve_device
    from . import checkpoint as ckpt
    from .model import build_model, input_stats, model_args
    from .report import render
    from .split import split_chips
    from .trainer import ChipReader, Trainer

    started = time.monotonic()
    emit = emit or (lambda event: None)
    cancel = cancel or threading.Event()
    spec = parse_finetune(raw, base_dir)
    for warning in spec.warnings:
        emit({"event": "log", "level": "warning", "message": warning})
    prepared = prepare(spec, emit, cancel)
    reader = None
    try:
        device = _resolve_device(spec.device)
        opts = spec.training_options
        args = model_args(spec, len(prepared.classes))
        names, means, stds = input_stats(args)
        train_idx, val_idx = split_chips(prepared.chips, opts.chip_size, opts.block_size, opts.val_fraction, spec.seed)
        weights = _class_weights(spec, prepared, train_idx)
        fingerprint = _fingerprint(args, prepared, train_idx, spec)
        resume = _read_resume(spec, fingerprint)
        emit({"event": "log", "level": "info",
              "message": f"finetune on {device}: {len(prepared.classes)} classes, {len(train_idx)} training and "
                         f"{len(val_idx)} validation chips of {opts.chip_size} px from {len(spec.training)} scene(s)"})

        _load_progress(emit, 0, f"Loading {args['backbone']}")
        torch.manual_seed(spec.seed)
        model = build_model(args, download_progress=lambda done, total, label: emit(
            {"event": "progress", "stage": "download", "done": int(done), "total": int(total or 0),
             "fraction": done / total if total else 0.0, "eta_s": None, "message": f"Downloading {label}"}))
        extra = ckpt.imagined_tokenizer_tensors(model)  # TiM only: what TerraTorch's strict load expects
        _load_progress(emit, 1, f"Loaded {args['backbone']}")
        reader = ChipReader(prepared, names, means, stds)
        trainer = Trainer(model, reader, prepared, train_idx, val_idx, device=device, class_weights=weights,
                          emit=emit, cancel=cancel)
        if resume is not None:
            trainer.restore(resume)
            emit({"event": "log", "level": "info", "message": f"Resuming after epoch {resume['epoch']}"})

        def write_metrics(stopped: str) -> None:
            metrics = _metrics(spec, prepared, trainer, stopped, device, args, train_idx, val_idx)
            ckpt.save_json(spec.sidecar("metrics.json"), metrics)
            best = next((h for h in trainer.history if h.epoch == trainer.best_epoch), trainer.history[-1])
            ckpt.write_text(spec.sidecar("report.html"), render(metrics, best.confusion))

        def on_epoch(result) -> None:
            if result.best:
                data = ckpt.lightning_checkpoint(
                    trainer.model, args, prepared.classes, means, stds, label_values=prepared.label_values,
                    epoch=result.epoch, step=result.epoch * trainer.steps_per_epoch, lr=opts.lr,
                    weight_decay=opts.weight_decay, freeze_backbone=opts.freeze_backbone, dice=opts.dice,
                    class_weights=weights, extra_tensors=extra)
                ckpt.save_torch(spec.checkpoint, data)
                ckpt.save_json(spec.sidecar("classes.json"), {"classes": [c.to_dict() for c in prepared.classes]})
            write_metrics("running")
            ckpt.save_torch(spec.sidecar("state.pt"), trainer.state(fingerprint))

        try:
            stopped = trainer.fit(on_epoch)
        except JobCancelled:
            epoch = len(trainer.history) + 1
            where = f"Training cancelled in epoch {epoch} of {opts.epochs}"
            if trainer.best_epoch:
                write_metrics("cancelled")
                raise JobCancelled(f"{where}; the best checkpoint so far (epoch {trainer.best_epoch}, validation mIoU "
                                   f"{trainer.best_miou:.3f}) was kept at {spec.checkpoint}. Resume with "
                                   "training_options.resume (CLI: --resume).") from None
            raise JobCancelled(f"{where}; no checkpoint was written.") from None
        write_metrics(stopped)
    finally:
        if reader is not None:
            reader.close()
        prepared.close()
    outputs = [("checkpoint", spec.checkpoint, "checkpoint"), ("metrics", spec.sidecar("metrics.json"), "metrics"),
               ("report", spec.sidecar("report.html"), "report"),
               ("classes", spec.sidecar("classes.json"), "classes-sidecar")]
    return {"outputs": [{"name": n, "path": p, "kind": k} for n, p, k in outputs],
            "elapsed_s": round(time.monotonic() - started, 3), "device": device,
            "epochs_run": len(trainer.history), "best_epoch": trainer.best_epoch,
            "best_val_miou": round(trainer.best_miou, 6), "stopped": stopped,
            "classes": [dict(c.to_dict(), label=v) for c, v in zip(prepared.classes, prepared.label_values)],
            "inputs": [{"modality": n, "bands": len(means[n])} for n in names]}


def plan_finetune(raw, base_dir: Optional[str] = None) -> dict:
    """What a run would train on (CLI ``--dry-run``): classes, chips, split, model; loads and writes nothing."""
    from .model import model_args
    from .split import split_chips

    spec = parse_finetune(raw, base_dir)
    prepared = prepare(spec)
    try:
        opts = spec.training_options
        train_idx, val_idx = split_chips(prepared.chips, opts.chip_size, opts.block_size, opts.val_fraction, spec.seed)
        return {"task": spec.task, "model": spec.model, "model_args": model_args(spec, len(prepared.classes)),
                "classes": [dict(c.to_dict(), label=v, pixels=n) for c, v, n in
                            zip(prepared.classes, prepared.label_values, prepared.class_pixels)],
                "scenes": [{"grid": {"crs": s.layout.grid.crs.to_string(), "width": s.layout.grid.width,
                                     "height": s.layout.grid.height}, "labelled_chips": len(s.chips)}
                           for s in prepared.scenes],
                "train_chips": len(train_idx), "val_chips": len(val_idx),
                "steps_per_epoch": -(-len(train_idx) // opts.batch_size), "epochs": opts.epochs,
                "outputs": {"checkpoint": spec.checkpoint}, "warnings": list(spec.warnings)}
    finally:
        prepared.close()


# the engine's interface for tasks with their own job (engine/tasks.py: Task.job)
run, validate, plan = run_finetune, validate_finetune, plan_finetune
