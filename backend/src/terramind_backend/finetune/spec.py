"""The ``finetune`` JobSpec (docs/finetune.md): structure checks only, no files opened, no torch.

Scene inputs are parsed by the same helper as every job's ``inputs`` (engine/jobspec.py), so paths,
bands, scale, offset and nodata mean the same everywhere.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from ..engine.errors import JobValidationError
from ..catalog import DEFAULT_MODEL, parse_model_name
from ..engine.jobspec import (_DEVICE, VERSION, InputSpec, _float, _input, _int, _known_keys, _options, _path,
                              _str, model_field)
from ..engine.modalities import INPUT_MODALITIES, resolve
from ..engine.tasks import TASKS

TASK = "finetune"
DECODERS = ("UNetDecoder", "UperNetDecoder", "FCNDecoder")
CLASS_WEIGHTS = (None, "balanced")
CHIP_MULTIPLE = 32  # TerraTorch pads tensors to 2 x patch size; whole multiples need no padding
LabelValue = Union[int, str]


def label_value(value: LabelValue) -> LabelValue:
    """One spelling per label code: integer literals in text ("3") are the integer 3, so a text field, an
    integer field, a raster and the classes list all name class 3 alike."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return text or None
    return value


@dataclass(frozen=True)
class LabelSpec:
    path: str
    field: Optional[str] = None   # vector class attribute
    layer: Optional[str] = None   # vector layer (multi-layer GeoPackage)


@dataclass(frozen=True)
class Scene:
    inputs: Dict[str, InputSpec]
    labels: LabelSpec


@dataclass(frozen=True)
class ClassSpec:
    value: LabelValue             # label code: raster pixel value or vector field value
    name: Optional[str] = None
    color: Optional[str] = None


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 12
    batch_size: int = 8
    chip_size: int = 224
    decoder: str = "UNetDecoder"
    decoder_channels: Optional[Union[int, Tuple[int, ...]]] = None
    tim: bool = False
    bands: Optional[Dict[str, Tuple[str, ...]]] = None
    modality_drop_rate: float = 0.0
    lr: float = 1e-4
    backbone_lr: float = 1e-5
    freeze_backbone: bool = True
    weight_decay: float = 0.05
    class_weights: Optional[Union[str, Tuple[float, ...]]] = None
    dice: bool = False
    val_fraction: float = 0.2
    block_size: int = 4
    early_stopping: int = 5
    augment: bool = True
    resume: bool = False
    min_labelled_pixels: int = 1000


@dataclass(frozen=True)
class FinetuneSpec:
    model: str
    training: Tuple[Scene, ...]
    checkpoint: str
    classes: Optional[Tuple[ClassSpec, ...]] = None
    resolution: float = 10.0
    device: str = "auto"
    seed: int = 0
    merge_method: str = "mean"
    tim_modalities: Tuple[str, ...] = ("LULC",)
    training_options: TrainingOptions = TrainingOptions()
    warnings: Tuple[str, ...] = field(default=(), compare=False)
    task: str = TASK

    @property
    def size(self) -> str:
        return parse_model_name(self.model).size

    @property
    def modalities(self) -> Tuple[str, ...]:
        return tuple(self.training[0].inputs)

    def sidecar(self, suffix: str) -> str:
        """Files written beside the checkpoint: metrics.json, report.html, classes.json, state.pt."""
        return f"{self.checkpoint}.{suffix}"


def _fail(name, message):
    raise JobValidationError(message, field=name)


def _bool(raw: dict, key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        _fail(f"{where}.{key}", f"{where}.{key} must be true or false, got {value!r}.")
    return value


def _labels(raw, where: str, base_dir) -> LabelSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict) or "path" not in raw:
        _fail(f"{where}.path", f"{where} needs a 'path': the label raster or polygon file.")
    fld = raw.get("field")
    layer = raw.get("layer")
    return LabelSpec(path=_path(raw["path"], f"{where}.path", base_dir),
                     field=None if fld is None else _str(fld, f"{where}.field"),
                     layer=None if layer is None else _str(layer, f"{where}.layer"))


def _scene(raw, i: int, base_dir, warnings: List[str]) -> Scene:
    where = f"training[{i}]"
    if not isinstance(raw, dict):
        _fail(where, f"{where} must be an object with 'inputs' and 'labels'.")
    _known_keys(raw, ("inputs", "labels"), f"{where}.", warnings)
    raw_inputs = raw.get("inputs")
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        _fail(f"{where}.inputs", f"{where}.inputs must map at least one modality to a raster.")
    inputs: Dict[str, InputSpec] = {}
    for key, value in raw_inputs.items():
        mod = resolve(key)
        if mod is None:
            _fail(f"{where}.inputs.{key}", f"Unknown modality {key!r}; known modalities: {', '.join(INPUT_MODALITIES)}.")
        if mod in inputs:
            _fail(f"{where}.inputs.{key}", f"Modality {mod} is given twice.")
        try:  # band counts are checked against the training bands later (scenes.py)
            inputs[mod] = _input(mod, value, base_dir, any_band_count=True)
        except JobValidationError as exc:
            raise JobValidationError(exc.message.replace("inputs.", f"{where}.inputs.", 1),
                                     f"{where}.{exc.field}") from None
    if "labels" not in raw:
        _fail(f"{where}.labels", f"{where}.labels is missing: give the label raster or polygon file.")
    return Scene(inputs=inputs, labels=_labels(raw["labels"], f"{where}.labels", base_dir))


def _classes(raw) -> Optional[Tuple[ClassSpec, ...]]:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        _fail("classes", "classes must be a list of {value, name, color} or null (discover them from the labels).")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            entry = {"value": entry}
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value):
            _fail(f"classes[{i}].value", f"classes[{i}].value must be the label code (an integer or text), "
                                         f"got {value!r}.")
        value = label_value(value)
        if value in seen:
            _fail(f"classes[{i}].value", f"Class value {value!r} is listed twice.")
        seen.add(value)
        color = entry.get("color")
        if color is not None and not re.match(r"^#[0-9a-fA-F]{6}$", str(color)):
            _fail(f"classes[{i}].color", f"classes[{i}].color must look like #RRGGBB, got {color!r}.")
        name = entry.get("name")
        out.append(ClassSpec(value=value, name=None if name is None else str(name), color=color))
    if len(out) < 2:
        _fail("classes", "Training needs at least two classes.")
    return tuple(out)


def _positive(raw, key, default, where, lo=None, hi=None) -> float:
    value = _float(raw.get(key, default), f"{where}.{key}", allow_none=False)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        _fail(f"{where}.{key}", f"{where}.{key} must be between {lo} and {hi}, got {value}.")
    return value


def _training_options(raw, tim_from_model: bool, warnings: List[str]) -> TrainingOptions:
    where = "training_options"
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(where, f"{where} must be an object, got {raw!r}.")
    _known_keys(raw, TrainingOptions.__dataclass_fields__, f"{where}.", warnings)
    d = TrainingOptions()
    chip = _int(raw.get("chip_size", d.chip_size), f"{where}.chip_size", lo=CHIP_MULTIPLE, hi=1024)
    if chip % CHIP_MULTIPLE:
        _fail(f"{where}.chip_size", f"{where}.chip_size must be a multiple of {CHIP_MULTIPLE}, got {chip}.")
    decoder = raw.get("decoder", d.decoder)
    if decoder not in DECODERS:
        _fail(f"{where}.decoder", f"Unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}.")
    channels = raw.get("decoder_channels")
    if channels is not None:
        if isinstance(channels, list):
            channels = tuple(_int(c, f"{where}.decoder_channels", lo=1) for c in channels)
        else:
            channels = _int(channels, f"{where}.decoder_channels", lo=1)
    bands = raw.get("bands")
    if bands is not None:
        if not isinstance(bands, dict) or not all(isinstance(v, list) and v for v in bands.values()):
            _fail(f"{where}.bands", f"{where}.bands must map modalities to lists of band names, got {bands!r}.")
        parsed = {}
        for key, names in bands.items():
            mod = resolve(key)
            if mod is None:
                _fail(f"{where}.bands", f"{where}.bands: unknown modality {key!r}.")
            parsed[mod] = tuple(_str(n, f"{where}.bands.{key}").upper() for n in names)
        bands = parsed
    weights = raw.get("class_weights")
    if isinstance(weights, list):
        weights = tuple(_positive({"w": w}, "w", 0, f"{where}.class_weights", lo=0.0, hi=1e6) for w in weights)
    elif weights not in CLASS_WEIGHTS:
        _fail(f"{where}.class_weights", f"{where}.class_weights must be null, \"balanced\" or a list of numbers.")
    tim = _bool(raw, "tim", tim_from_model, where)
    if tim and bands:
        _fail(f"{where}.bands", "TiM needs every pre-trained band of its inputs: remove training_options.bands or "
                                "train without TiM.")
    return TrainingOptions(
        epochs=_int(raw.get("epochs", d.epochs), f"{where}.epochs", lo=1, hi=10000),
        batch_size=_int(raw.get("batch_size", d.batch_size), f"{where}.batch_size", lo=1, hi=4096),
        chip_size=chip, decoder=decoder, decoder_channels=channels, tim=tim, bands=bands,
        modality_drop_rate=_positive(raw, "modality_drop_rate", d.modality_drop_rate, where, 0.0, 1.0),
        lr=_positive(raw, "lr", d.lr, where, 1e-9, 10.0),
        backbone_lr=_positive(raw, "backbone_lr", d.backbone_lr, where, 1e-10, 10.0),
        freeze_backbone=_bool(raw, "freeze_backbone", d.freeze_backbone, where),
        weight_decay=_positive(raw, "weight_decay", d.weight_decay, where, 0.0, 10.0),
        class_weights=weights, dice=_bool(raw, "dice", d.dice, where),
        val_fraction=_positive(raw, "val_fraction", d.val_fraction, where, 0.01, 0.9),
        block_size=_int(raw.get("block_size", d.block_size), f"{where}.block_size", lo=1, hi=1000),
        early_stopping=_int(raw.get("early_stopping", d.early_stopping), f"{where}.early_stopping", lo=0),
        augment=_bool(raw, "augment", d.augment, where), resume=_bool(raw, "resume", d.resume, where),
        min_labelled_pixels=_int(raw.get("min_labelled_pixels", d.min_labelled_pixels),
                                 f"{where}.min_labelled_pixels", lo=1))


_TOP_KEYS = ("version", "task", "model", "training", "classes", "outputs", "resolution", "device", "seed", "options",
             "training_options")


def parse_finetune(raw: Any, base_dir: Optional[str] = None) -> FinetuneSpec:
    """Structural checks of a ``finetune`` JobSpec dict; relative paths resolve against ``base_dir``."""
    if isinstance(raw, FinetuneSpec):
        return raw
    if not isinstance(raw, dict):
        _fail(None, f"A JobSpec must be a JSON object, got {type(raw).__name__}.")
    warnings: List[str] = []
    _known_keys(raw, _TOP_KEYS, "", warnings)
    if raw.get("version", VERSION) != VERSION:
        _fail("version", f"Unsupported JobSpec version {raw.get('version')!r}; this backend reads version {VERSION}.")
    parsed_model = model_field(raw.get("model", DEFAULT_MODEL))
    tim_from_model = parsed_model.variant == "_tim"
    model = parsed_model.weights.registry_name
    training = raw.get("training")
    if not isinstance(training, list) or not training:
        _fail("training", "training must list at least one scene: [{\"inputs\": {...}, \"labels\": {...}}].")
    scenes = tuple(_scene(s, i, base_dir, warnings) for i, s in enumerate(training))
    first = set(scenes[0].inputs)
    for i, s in enumerate(scenes[1:], 1):
        if set(s.inputs) != first:
            _fail(f"training[{i}].inputs", f"Every scene must give the same modalities: scene 0 has "
                                           f"{', '.join(sorted(first))}, scene {i} has {', '.join(sorted(s.inputs))}.")
    outputs = raw.get("outputs")
    if not isinstance(outputs, dict) or "checkpoint" not in outputs:
        _fail("outputs.checkpoint", "finetune needs outputs.checkpoint: the .ckpt file to write, e.g. \"model.ckpt\".")
    _known_keys(outputs, ("checkpoint",), "outputs.", warnings)
    checkpoint = _path(outputs["checkpoint"], "outputs.checkpoint", base_dir)
    if not checkpoint.lower().endswith(".ckpt"):
        _fail("outputs.checkpoint", f"outputs.checkpoint must end in .ckpt, got {outputs['checkpoint']!r}.")
    device = str(raw.get("device", "auto") or "auto").strip().lower()
    if not _DEVICE.match(device):
        _fail("device", f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.")
    resolution = _float(raw.get("resolution", 10.0) or 10.0, "resolution", allow_none=False)
    if resolution <= 0:
        _fail("resolution", f"resolution must be a positive pixel size, got {resolution}.")
    options = _options(raw.get("options"), TASKS[TASK], [], base_dir)  # shared: merge_method, tim_modalities
    topts = _training_options(raw.get("training_options"), tim_from_model, warnings)
    if topts.tim and options.merge_method == "concat":
        _fail("options.merge_method", "TiM backbones support merge_method 'mean' or 'max'.")
    return FinetuneSpec(model=model, training=scenes, checkpoint=checkpoint, classes=_classes(raw.get("classes")),
                        resolution=resolution, device=device,
                        seed=_int(raw.get("seed", 0), "seed", lo=0, hi=2**31 - 1),
                        merge_method=options.merge_method, tim_modalities=options.tim_modalities,
                        training_options=topts, warnings=tuple(warnings))


def is_finetune(raw: Any) -> bool:
    return isinstance(raw, FinetuneSpec) or (isinstance(raw, dict) and raw.get("task") == TASK)


def output_paths(spec: FinetuneSpec) -> List[str]:
    """Every file a finetune job writes (the checkpoint and its sidecars)."""
    return [spec.checkpoint] + [spec.sidecar(s) for s in ("metrics.json", "report.html", "classes.json", "state.pt")]


def check_output_folder(spec: FinetuneSpec) -> None:
    folder = os.path.dirname(spec.checkpoint) or "."
    if os.path.isdir(spec.checkpoint):
        _fail("outputs.checkpoint", f"outputs.checkpoint {spec.checkpoint} is a folder; give a .ckpt file name.")
    if not os.path.isdir(folder):
        _fail("outputs.checkpoint", f"Output folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        _fail("outputs.checkpoint", f"Output folder {folder} is not writable.")
