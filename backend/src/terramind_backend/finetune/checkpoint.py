"""Write the trained model as a Lightning checkpoint TerraTorch 1.1.1 opens, and the resume state.

``SemanticSegmentationTask.load_from_checkpoint`` calls the task with ``hyper_parameters`` (only the
names its ``__init__`` takes; extra keys such as ``class_colors`` are ignored) and loads
``state_dict`` strictly: keys are the task's (``model.encoder.*``, ``model.neck.*``,
``model.decoder.*``, ``model.head.*``, and the loss's tensors: ``loss.criterion_state``).
The datamodule's ``means``/``stds`` go where TerraTorch's generic datamodules put them.
Every file is written to a hidden temporary name and renamed into place.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Callable, Optional

from .loss import IGNORE_INDEX, criterion_state, loss_hparam

LIGHTNING_VERSION = "2.5.1"  # the format written; Lightning reads it through its migration table


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    folder, base = os.path.split(path)
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path: str, text: str) -> str:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def imagined_tokenizer_tensors(model, download_progress=None) -> dict:
    """TerraTorch's TiM backbone holds a (pretrained) tokenizer for every imagined modality, which the
    forward pass never runs; ours builds none (models/segmentation/checkpoint.py skips them on load).
    TerraTorch loads strictly, so a TiM checkpoint carries them: ``encoder.tokenizer.<key>.*``."""
    from ..models.modalities import MODALITY_INFO
    from ..models.tokenizers import build_tokenizer

    if not model.config.is_tim:
        return {}
    present = set(getattr(model.encoder, "tokenizer", {}) or {})
    out = {}
    for key in sorted(set(model.encoder.tim_keys.values()) - present):
        tok = build_tokenizer(MODALITY_INFO[key].tokenizer, pretrained=True, download_progress=download_progress)
        out.update({f"encoder.tokenizer.{key}.{k}": v for k, v in tok.state_dict().items()})
    return out


def lightning_checkpoint(model, args: dict, classes, means: dict, stds: dict, *, label_values, epoch: int,
                         step: int, lr: float, weight_decay: float, freeze_backbone: bool, dice: bool,
                         class_weights: Optional[list], extra_tensors: Optional[dict] = None) -> dict:
    state = {f"model.{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    state.update({f"model.{k}": v for k, v in (extra_tensors or {}).items()})
    state.update(criterion_state(dice, class_weights))
    names = [c.name for c in classes]
    hparams = {"model_args": args, "model_factory": "EncoderDecoderFactory",
               "loss": loss_hparam(dice), "ignore_index": IGNORE_INDEX,
               "class_weights": class_weights, "lr": lr, "optimizer": "AdamW",
               "optimizer_hparams": {"weight_decay": weight_decay}, "freeze_backbone": freeze_backbone,
               "plot_on_val": False, "class_names": names,
               # ours (TerraTorch ignores them): colours and the label codes the classes were trained from
               "class_colors": [c.color for c in classes], "label_values": list(label_values)}
    return {"epoch": epoch, "global_step": step, "pytorch-lightning_version": LIGHTNING_VERSION,
            "state_dict": state, "hyper_parameters": hparams,
            "datamodule_hyper_parameters": {"means": means, "stds": stds, "num_classes": len(classes),
                                            "class_names": names},
            "optimizer_states": [], "lr_schedulers": [], "callbacks": {}, "loops": {}}


def save_torch(path: str, obj) -> str:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(path: str, data) -> str:
    return write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def load_state(path: str) -> dict:
    """The resume state, tensors and plain values only."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
