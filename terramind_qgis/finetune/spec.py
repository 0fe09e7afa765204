"""The finetune JobSpec (docs/finetune.md) from plain values; the dialog and ``terramind:finetune`` both use it.

Pure Python like ``jobspec_builder``: ``check_finetune`` lists the problems the plugin can see (``Problem`` with
the dotted field the dialog maps to a widget), ``build_finetune_spec`` raises ``JobSpecError`` with them. The
labels are checked on the QGIS side by ``labels.read_labels``; the backend validates everything again before
it trains.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from ..jobspec_builder import (JOBSPEC_VERSION, InputChoice, JobChoices, JobSpecError, Problem, check_job,
                               input_entry)
from ..vocabulary import MODEL_SIZES, values

DECODERS = ("UNetDecoder", "UperNetDecoder", "FCNDecoder")
CHIP_MULTIPLE = 32
CHECKPOINT_SUFFIX = ".ckpt"


@dataclass
class TrainingDefaults:
    """What the dialog and the Processing algorithm start from (the backend's defaults, docs/finetune.md)."""

    epochs: int = 12
    decoder: str = DECODERS[0]
    batch_size: int = 8
    chip_size: int = 224
    lr: float = 1e-4
    freeze_backbone: bool = True
    val_fraction: float = 0.2
    early_stopping: int = 5


DEFAULTS = TrainingDefaults()


@dataclass
class SceneChoice:
    """One training scene: its input rasters and its labels (the JobSpec ``labels`` object, once written)."""

    inputs: list[InputChoice]
    labels: Optional[dict] = None


@dataclass
class FinetuneChoices:
    scenes: list[SceneChoice]
    checkpoint: str = ""
    classes: Optional[list] = None          # [{"value", "name", "color"}] in model order; None = the backend finds them
    model_size: str = "tiny"
    device: str = "auto"
    seed: int = 0
    resolution: float = 10.0
    epochs: int = DEFAULTS.epochs
    decoder: str = DEFAULTS.decoder
    batch_size: int = DEFAULTS.batch_size
    chip_size: int = DEFAULTS.chip_size
    lr: float = DEFAULTS.lr
    freeze_backbone: bool = DEFAULTS.freeze_backbone
    val_fraction: float = DEFAULTS.val_fraction
    early_stopping: int = DEFAULTS.early_stopping
    class_weights: Optional[str] = None     # None | "balanced"
    dice: bool = False
    resume: bool = False
    extra_options: dict = field(default_factory=dict)   # other training_options keys, passed through


def _input_problems(scene: SceneChoice, index: int, resolution: float, device: str) -> list[Problem]:
    """The shared input checks (files, modalities, band mappings) of ``jobspec_builder``, per scene."""
    probe = JobChoices(task="embed", inputs=scene.inputs, temporary=True, resolution=resolution, device=device)
    return [p if index == 0 else Problem(p.field.replace("inputs", f"training.{index}.inputs", 1), p.message)
            for p in check_job(probe) if p.field.startswith(("inputs", "resolution", "device"))]


def check_finetune(choices: FinetuneChoices) -> list[Problem]:
    """Every problem the plugin can see before training; empty when the job can start."""
    problems: list[Problem] = []
    if not choices.scenes:
        return [Problem("inputs", "Add at least one input layer")]
    for index, scene in enumerate(choices.scenes):
        problems += _input_problems(scene, index, choices.resolution, choices.device)
    modalities = [sorted(i.modality for i in s.inputs if i.path) for s in choices.scenes]
    if any(m != modalities[0] for m in modalities[1:]):
        problems.append(Problem("inputs", "Every scene needs the same input modalities"))
    problems += _output_problems(choices)
    if choices.model_size not in values(MODEL_SIZES):
        problems.append(Problem("model", f"Unknown model size {choices.model_size!r}"))
    if choices.decoder not in DECODERS:
        problems.append(Problem("training.decoder", f"Unknown decoder {choices.decoder!r}; use "
                                f"{', '.join(DECODERS)}"))
    if choices.epochs < 1:
        problems.append(Problem("training.epochs", "Train for at least one epoch"))
    if choices.batch_size < 1:
        problems.append(Problem("training.batch_size", "The batch size must be at least 1"))
    if choices.chip_size < CHIP_MULTIPLE or choices.chip_size % CHIP_MULTIPLE:
        problems.append(Problem("training.chip_size", f"The chip size must be a multiple of {CHIP_MULTIPLE} px"))
    if not 0 < choices.val_fraction < 1:
        problems.append(Problem("training.val_fraction", "The validation share must be between 0 and 1"))
    if not choices.lr > 0:
        problems.append(Problem("training.lr", "The learning rate must be greater than 0"))
    return problems


def _output_problems(choices: FinetuneChoices) -> list[Problem]:
    path = choices.checkpoint.strip()
    if not path:
        return [Problem("outputs.checkpoint", "Choose where to save the trained model (.ckpt)")]
    if not path.lower().endswith(CHECKPOINT_SUFFIX):
        return [Problem("outputs.checkpoint", "The trained model is a Lightning checkpoint: end the file name "
                        "with .ckpt")]
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return [Problem("outputs.checkpoint", f"The folder {folder} does not exist")]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [Problem("outputs.checkpoint", f"Cannot write to {folder}")]
    for scene in choices.scenes:
        for item in scene.inputs:
            if item.path and os.path.abspath(item.path.split("|")[0]) == os.path.abspath(path):
                return [Problem("outputs.checkpoint", "The checkpoint would overwrite an input")]
    return []


def training_options(choices: FinetuneChoices) -> dict:
    options = {
        "epochs": int(choices.epochs), "decoder": choices.decoder, "batch_size": int(choices.batch_size),
        "chip_size": int(choices.chip_size), "lr": float(choices.lr),
        "freeze_backbone": bool(choices.freeze_backbone), "val_fraction": float(choices.val_fraction),
        "early_stopping": int(choices.early_stopping), "class_weights": choices.class_weights,
        "dice": bool(choices.dice), "resume": bool(choices.resume),
    }
    options.update(choices.extra_options)
    return options


def build_finetune_spec(choices: FinetuneChoices) -> dict:
    """The finetune JobSpec; every scene must have its written ``labels``. Raises ``JobSpecError``."""
    problems = check_finetune(choices)
    problems += [Problem(f"training.{i}.labels", "The labels were not written") for i, s in
                 enumerate(choices.scenes) if not s.labels]
    if problems:
        raise JobSpecError(problems)
    return {
        "version": JOBSPEC_VERSION,
        "task": "finetune",
        "model": f"terramind_v1_{choices.model_size}",
        "training": [{"inputs": {i.modality: input_entry(i) for i in s.inputs if i.path}, "labels": dict(s.labels)}
                     for s in choices.scenes],
        "classes": [dict(c) for c in choices.classes] if choices.classes else None,
        "outputs": {"checkpoint": os.path.abspath(choices.checkpoint.strip())},
        "resolution": float(choices.resolution),
        "device": choices.device,
        "seed": int(choices.seed),
        "training_options": training_options(choices),
    }
