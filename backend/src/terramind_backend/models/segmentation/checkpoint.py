"""Load a TerraTorch fine-tuned segmentation checkpoint without TerraTorch.

Sources, in order of authority:

1. the checkpoint file: a Lightning ``.ckpt`` (``state_dict`` with ``model.`` prefixes,
   ``hyper_parameters.model_args`` / ``class_names``, ``datamodule_hyper_parameters.means/stds``),
   or a plain state dict (``.pt``/``.pth``/``.safetensors``);
2. the TerraTorch config YAML it was trained with (``config=`` or found beside it: ``<ckpt>.yaml``,
   ``<stem>.yaml``/``.yml``, ``config.yaml``): fills what the file lacks (model_args, class names,
   the datamodule's means/stds);
3. the class sidecar ``<ckpt>.classes.json`` (see ``classes.py``): the user's edits, which override
   class names and colours; it may also give ``means``/``stds``.

Only tensors are loaded: ``torch.load(weights_only=True)``. A checkpoint whose hyper-parameters
hold Python objects is refused with instructions to re-save it; nothing is ever unpickled.
"""
from __future__ import annotations

import pickle  # nosec B403: only to catch UnpicklingError; files load with torch.load(weights_only=True)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .classes import (ClassTableError, SegmentationClass, build_class_table, read_sidecar, sidecar_path)
from .factory import (SegmentationConfig, SegmentationModel, UnsupportedCheckpointError,
                      build_segmentation_model, parse_model_args)

_SUPPORTED_FACTORIES = (None, "EncoderDecoderFactory", "terratorch.models.EncoderDecoderFactory")
_RESAVE_HINT = (
    "Re-save it with tensors and plain hyper-parameters only, in the environment you trained in:\n"
    "    import torch\n"
    "    from terratorch.tasks import SemanticSegmentationTask\n"
    "    task = SemanticSegmentationTask.load_from_checkpoint('model.ckpt')  # your own training environment\n"
    "    torch.save({'state_dict': task.state_dict(), 'hyper_parameters': {'model_args': dict(task.hparams['model_args']),\n"
    "                'class_names': task.hparams.get('class_names')}}, 'model_clean.ckpt')\n"
    "or save only task.state_dict() and put the training config YAML beside it as model_clean.ckpt.yaml.")


class CheckpointError(ValueError):
    """The checkpoint file cannot be read (missing, corrupt, or holding Python objects)."""


@dataclass
class ExpectedInput:
    """One input of the model: the name it is fed under and how to standardize it."""

    name: str                          # key of the model's input dict (as in backbone_modalities)
    modality: Optional[str]            # our canonical name (S2L2A, S1GRD, ...) or None for a new modality
    bands: Optional[List[str]]         # band names in model order (None: the pretrained order)
    num_bands: Optional[int]
    mean: Optional[List[float]]
    std: Optional[List[float]]
    stats_source: str                  # "checkpoint", "config", "sidecar", "pretraining" or "unknown"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CheckpointInfo:
    path: Path
    model_args: dict
    config: SegmentationConfig
    classes: List[SegmentationClass]
    class_source: str                  # "sidecar", "checkpoint", "config" or "default"
    inputs: List[ExpectedInput]
    config_path: Optional[Path] = None
    notes: List[str] = field(default_factory=list)

    @property
    def sidecar_path(self) -> Path:
        return sidecar_path(self.path)

    def to_dict(self) -> dict:
        """JSON-ready description for the plugin (classes, expected inputs, architecture)."""
        c = self.config
        return {
            "path": str(self.path),
            "num_classes": c.num_classes,
            "classes": [k.to_dict() for k in self.classes],
            "class_source": self.class_source,
            "sidecar": str(self.sidecar_path),
            "sidecar_exists": self.sidecar_path.is_file(),
            "config": str(self.config_path) if self.config_path else None,
            "inputs": [i.to_dict() for i in self.inputs],
            "backbone": c.backbone,
            "tim_modalities": c.tim_modalities,
            "necks": [n.get("name") for n in c.necks],
            "decoder": c.decoder,
            "notes": list(self.notes),
        }


# --- reading files -----------------------------------------------------------------------------------

def _unsafe_objects(path: Path) -> List[str]:
    """Names of the Python objects a zip checkpoint would unpickle (read without unpickling)."""
    import torch

    getter = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        return list(getter(str(path))) if getter else []
    except Exception:  # noqa: BLE001 - only used to improve the message
        return []


def _torch_load(path: Path) -> dict:
    import zipfile

    import torch

    try:
        # mmap keeps memory flat when only the hyper-parameters are needed (describe_checkpoint).
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        found = _unsafe_objects(path)
        if not found and "Unsupported global" not in str(exc):
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (damaged, or another format)") from None
        names = f" It contains Python objects: {', '.join(found[:6])}{' ...' if len(found) > 6 else ''}." if found else ""
        raise CheckpointError(f"{path.name} cannot be loaded safely (torch.load(weights_only=True) refused it)."
                              f"{names} This backend never unpickles arbitrary objects. {_RESAVE_HINT}") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def read_checkpoint_file(path) -> dict:
    """The raw checkpoint as a dict with at least ``state_dict`` (tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {"state_dict": load_file(str(path), device="cpu")}
    data = _torch_load(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} holds a {type(data).__name__}, not a checkpoint dict")
    if "state_dict" not in data:
        if all(hasattr(v, "shape") for v in data.values()):
            return {"state_dict": data}
        raise CheckpointError(f"{path.name} has no 'state_dict' (keys: {', '.join(map(str, list(data)[:8]))})")
    return data


def find_config(path, explicit=None) -> Optional[Path]:
    if explicit:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise CheckpointError(f"Config file not found: {explicit}")
        return explicit
    path = Path(path)
    for candidate in (path.with_name(path.name + ".yaml"), path.with_name(path.name + ".yml"),
                      path.with_suffix(".yaml"), path.with_suffix(".yml"), path.with_name("config.yaml")):
        if candidate.is_file():
            return candidate
    return None


def read_config(path: Path) -> dict:
    """The parts of a TerraTorch (LightningCLI) config we use: model_args, factory, classes, means/stds."""
    import yaml

    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointError(f"Cannot read config {path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"Config {path} is not a YAML mapping")
    model = cfg.get("model") or {}
    model_init = model.get("init_args", model) if isinstance(model, dict) else {}
    class_path = model.get("class_path") if isinstance(model, dict) else None
    if class_path and not str(class_path).endswith("SemanticSegmentationTask"):
        raise UnsupportedCheckpointError(f"Config {path.name}: task {class_path} is not supported; only "
                                         "SemanticSegmentationTask checkpoints can be run", part="task")
    data = cfg.get("data") or {}
    data_init = data.get("init_args", data) if isinstance(data, dict) else {}
    out = {"model_args": model_init.get("model_args", cfg.get("model_args")),
           "model_factory": model_init.get("model_factory"),
           "class_names": model_init.get("class_names", cfg.get("class_names")),
           "means": data_init.get("means", cfg.get("means")), "stds": data_init.get("stds", cfg.get("stds"))}
    return {k: v for k, v in out.items() if v is not None}


def clean_state_dict(state: dict) -> Tuple[Dict[str, object], List[str]]:
    """Strip Lightning's ``model.`` prefix and ``_timm_module.``; drop the loss and auxiliary heads."""
    out, dropped = {}, []
    for key, value in state.items():
        if key.startswith("model."):
            key = key[len("model."):]
        elif key.startswith("criterion.") or key.startswith("loss"):
            dropped.append(key)
            continue
        if key.startswith("aux_heads."):
            dropped.append(key)
            continue
        out[key.replace("_timm_module.", "")] = value
    return out, dropped


# --- expected inputs -----------------------------------------------------------------------------------

def _stats_for(name: str, stats, n: int) -> Optional[List[float]]:
    """means/stds as a datamodule gives them: {modality: [...]} or one list for a single modality."""
    if stats is None:
        return None
    if isinstance(stats, dict):
        value = stats.get(name)
        if value is None:
            lowered = {str(k).lower(): v for k, v in stats.items()}
            value = lowered.get(name.lower())
    else:
        value = stats if n == 1 else None
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = [value]
    return [float(v) for v in value]


def _expected_inputs(config: SegmentationConfig, sources: List[Tuple[str, dict]]) -> List[ExpectedInput]:
    from ..modalities import (CANONICAL_NAMES, MODALITY_INFO, PRETRAINED_BANDS, PRETRAINING_MEAN,
                              PRETRAINING_STD, UnknownModalityError, resolve_input_modality)

    canonical = {v: k for k, v in CANONICAL_NAMES.items()}
    raw = config.backbone_kwargs.get("modalities")
    names = config.modalities or ["S2L2A"]
    new_channels = {}
    for entry in (raw.items() if isinstance(raw, dict) else raw or []):
        if isinstance(entry, dict):
            new_channels.update({k: v for k, v in entry.items() if isinstance(v, int)})
        elif isinstance(entry, tuple) and isinstance(entry[1], int):
            new_channels[entry[0]] = entry[1]
    bands_cfg = config.backbone_kwargs.get("bands") or {}
    inputs = []
    for name in names:
        key = None
        if name not in new_channels:
            try:
                key = resolve_input_modality(name)
            except UnknownModalityError as exc:
                raise UnsupportedCheckpointError(f"Backbone modality: {exc}", part="backbone") from None
        bands = bands_cfg.get(name) if isinstance(bands_cfg, dict) else None
        bands = [str(b) for b in bands] if bands else None
        info = MODALITY_INFO.get(key) if key else None
        if bands:
            num = len(bands)
        elif name in new_channels:
            num = new_channels[name]
        elif info is not None and info.kind == "image":
            num = info.channels
        else:
            num = 1  # tokenized maps (LULC, NDVI) are single-band rasters
        mean = std = None
        source = "unknown"
        for label, src in sources:
            m, s = _stats_for(name, src.get("means"), len(names)), _stats_for(name, src.get("stds"), len(names))
            if m is not None and s is not None:
                mean, std, source = m, s, label
                break
        if mean is None and key in PRETRAINING_MEAN:
            order = PRETRAINED_BANDS.get(key)
            full_mean, full_std = PRETRAINING_MEAN[key], PRETRAINING_STD[key]
            if bands and order and all(b.upper() in order for b in bands):
                idx = [order.index(b.upper()) for b in bands]
                mean, std, source = [full_mean[i] for i in idx], [full_std[i] for i in idx], "pretraining"
            elif not bands:
                mean, std, source = list(full_mean), list(full_std), "pretraining"
        inputs.append(ExpectedInput(name=name, modality=canonical.get(key) if key else None, bands=bands,
                                    num_bands=num, mean=mean, std=std, stats_source=source))
    return inputs


# --- public API -------------------------------------------------------------------------------------

def read_checkpoint(path, config=None) -> Tuple[dict, CheckpointInfo]:
    """(cleaned state dict, description) of a fine-tuned segmentation checkpoint; no model built."""
    path = Path(path)
    raw = read_checkpoint_file(path)
    hparams = raw.get("hyper_parameters") or {}
    dm_hparams = raw.get("datamodule_hyper_parameters") or {}
    config_path = find_config(path, config)
    cfg = read_config(config_path) if config_path else {}
    notes = []
    model_args = hparams.get("model_args") or cfg.get("model_args")
    if not model_args:
        raise CheckpointError(f"{path.name} has no hyper_parameters.model_args and no TerraTorch config YAML was "
                              f"found beside it (looked for {path.name}.yaml, {path.stem}.yaml, config.yaml): "
                              "put the training config there or pass it explicitly")
    factory = hparams.get("model_factory", cfg.get("model_factory"))
    if factory not in _SUPPORTED_FACTORIES:
        raise UnsupportedCheckpointError(f"Model factory {factory!r} is not supported; only "
                                         "EncoderDecoderFactory models can be run", part="model_factory")
    if hparams.get("task") not in (None, "segmentation"):
        raise UnsupportedCheckpointError(f"Task {hparams.get('task')!r} is not supported; only segmentation "
                                         "checkpoints can be run", part="task")
    seg_config = parse_model_args(model_args)
    if seg_config.ignored:
        notes.append(f"ignored for inference: {', '.join(seg_config.ignored)}")

    sidecar = sidecar_path(path)
    side = {}
    if sidecar.is_file():
        import json

        try:
            loaded = json.loads(sidecar.read_text(encoding="utf-8"))
            side = loaded if isinstance(loaded, dict) else {}
        except ValueError as exc:
            raise ClassTableError(f"Cannot read class sidecar {sidecar}: {exc}") from None
    n = seg_config.num_classes
    if sidecar.is_file():
        classes, class_source = read_sidecar(sidecar, n), "sidecar"
    elif hparams.get("class_names"):
        classes, class_source = build_class_table(n, hparams["class_names"], hparams.get("class_colors")), "checkpoint"
    elif cfg.get("class_names"):
        classes, class_source = build_class_table(n, cfg["class_names"]), "config"
    else:
        classes, class_source = build_class_table(n), "default"
    stat_sources = [("sidecar", side), ("checkpoint", dm_hparams), ("config", cfg)]
    inputs = _expected_inputs(seg_config, stat_sources)
    state, dropped = clean_state_dict(raw["state_dict"])
    if dropped:
        notes.append(f"dropped {len(dropped)} training-only tensors (loss, auxiliary heads)")
    info = CheckpointInfo(path=path, model_args=dict(model_args), config=seg_config, classes=classes,
                          class_source=class_source, inputs=inputs, config_path=config_path, notes=notes)
    return state, info


def describe_checkpoint(path, config=None) -> dict:
    """JSON-ready summary of a checkpoint for the plugin: classes, expected inputs, architecture."""
    _, info = read_checkpoint(path, config)
    return info.to_dict()


@dataclass
class LoadedSegmentation:
    model: SegmentationModel
    info: CheckpointInfo


def _unused_tim_tokenizer_keys(model: SegmentationModel, unexpected: List[str]) -> set:
    """``encoder.tokenizer.<key>.*`` of modalities a TiM backbone only imagines: our TiM builds no
    tokenizer for them (it never decodes them), TerraTorch's stores one in every checkpoint."""
    imagined = set(getattr(model.encoder, "tim_keys", {}).values()) if model.config.is_tim else set()
    present = set(getattr(model.encoder, "tokenizer", {}) or {})
    prefixes = tuple(f"encoder.tokenizer.{k}." for k in imagined - present)
    return {k for k in unexpected if prefixes and k.startswith(prefixes)}


def load_segmentation_checkpoint(path, config=None, *, device="cpu") -> LoadedSegmentation:
    """Build the model of a checkpoint, load its tensors strictly, and put it in eval mode."""
    state, info = read_checkpoint(path, config)
    model = build_segmentation_model(info.config)
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    spare = _unused_tim_tokenizer_keys(model, unexpected)
    if spare:
        unexpected = [k for k in unexpected if k not in spare]
        info.notes.append(f"skipped {len(spare)} tokenizer tensors of imagined TiM modalities (never used at "
                          "inference; TerraTorch builds that tokenizer anyway)")
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:4])})")
        raise UnsupportedCheckpointError(
            f"{Path(path).name}: the tensors do not match the model its model_args describe "
            f"({info.config.backbone} + {info.config.decoder}): {'; '.join(parts)}", part="state_dict")
    return LoadedSegmentation(model=model.to(device).eval(), info=info)
