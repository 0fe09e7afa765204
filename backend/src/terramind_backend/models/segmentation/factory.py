"""Rebuild a TerraTorch ``EncoderDecoderFactory`` segmentation model from its ``model_args``.

``model_args`` is the dict a fine-tuning config passes to ``SemanticSegmentationTask``: ``backbone``,
``backbone_*``, ``necks``, ``decoder``, ``decoder_*``, ``head_*``, ``num_classes``, ``rescale``.
The model is built with random weights (``backbone_pretrained`` forced off; the checkpoint holds
every tensor) and mirrors ``PixelWiseModel``'s forward: reflect-padding of tensor inputs to a multiple
of 2 × patch size, encoder → necks → decoder → head, bilinear rescale, crop. State-dict keys are
TerraTorch's without the Lightning ``model.`` prefix (``encoder.*``, ``neck.<i>.*``, ``decoder.*``,
``head.head.*``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...catalog import backbone_name, backbone_names_hint, parse_model_name
from ..layers import set_reference_arithmetic
from .decoders import DECODERS
from .heads import SegmentationHead
from .necks import NECKS, build_necks

# model_args keys that do not change the inference graph.
_IGNORED_ARGS = {"backbone_pretrained", "backbone_ckpt_path", "aux_decoders"}
_ROUTED = ("backbone_", "decoder_", "head_")


class UnsupportedCheckpointError(ValueError):
    """A checkpoint uses a part (backbone, neck, decoder, argument) this backend cannot run.

    ``part`` names the category ("backbone", "neck", "decoder", "head", "model_args", "task", "file").
    """

    def __init__(self, message: str, part: str = "model_args"):
        super().__init__(message)
        self.part = part


def _strip_source(name) -> str:
    """TerraTorch registry names may carry a source prefix (``terratorch_UNetDecoder``)."""
    if not isinstance(name, str):
        return repr(name)
    return name[len("terratorch_"):] if name.startswith("terratorch_") else name


@dataclass
class SegmentationConfig:
    """``model_args`` split into parts, validated; nothing built yet."""

    backbone: str
    backbone_kwargs: Dict[str, object]
    necks: List[dict]
    decoder: str
    decoder_kwargs: Dict[str, object]
    head_kwargs: Dict[str, object]
    num_classes: int
    rescale: bool = True
    padding: str = "reflect"
    patch_size: Optional[int] = None
    ignored: List[str] = field(default_factory=list)

    @property
    def modalities(self) -> List[str]:
        mods = self.backbone_kwargs.get("modalities")
        if mods is None:
            return []
        if isinstance(mods, dict):
            return list(mods)
        return [m if isinstance(m, str) else next(iter(m)) for m in mods]

    @property
    def tim_modalities(self) -> List[str]:
        return list(self.backbone_kwargs.get("tim_modalities") or []) if self.is_tim else []

    @property
    def is_tim(self) -> bool:
        return parse_model_name(self.backbone).variant == "_tim"

    @property
    def size(self) -> str:
        return parse_model_name(self.backbone).size


def parse_model_args(model_args: dict) -> SegmentationConfig:
    """Validate ``model_args`` and route ``backbone_``/``decoder_``/``head_`` kwargs like TerraTorch."""
    if not isinstance(model_args, dict):
        raise UnsupportedCheckpointError(f"model_args must be a mapping, got {type(model_args).__name__}")
    args = dict(model_args)
    routed = {p: {} for p in _ROUTED}
    backbone = _strip_source(args.pop("backbone", None))
    decoder = _strip_source(args.pop("decoder", "FCNDecoder"))
    if backbone_name(backbone, variants=("", "_tim")) is None:
        raise UnsupportedCheckpointError(
            f"Unsupported backbone {backbone!r}: this backend runs TerraMind 1.0 backbones only "
            f"({backbone_names_hint(variants=('', '_tim'))}).", part="backbone")
    if decoder not in DECODERS:
        raise UnsupportedCheckpointError(
            f"Unsupported decoder {decoder!r}. Supported decoders: {', '.join(sorted(DECODERS))}.", part="decoder")
    num_classes = args.pop("num_classes", None)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise UnsupportedCheckpointError(
            f"model_args.num_classes is {num_classes!r}: only segmentation checkpoints (with num_classes) "
            "are supported, not regression or custom models.", part="task")
    necks = args.pop("necks", None) or []
    if not isinstance(necks, list) or not all(isinstance(n, dict) for n in necks):
        raise UnsupportedCheckpointError("model_args.necks must be a list of {name: ..., ...} entries", part="neck")
    for spec in necks:
        resolve_neck_name(spec.get("name"))
    rescale = bool(args.pop("rescale", True))
    for key in ("peft_config",):
        if args.get(key):
            raise UnsupportedCheckpointError(f"model_args.{key} (PEFT/LoRA adapters) is not supported", part=key)
        args.pop(key, None)
    ignored = [k for k in list(args) if k in _IGNORED_ARGS]
    for key in ignored:
        args.pop(key)
    for key in list(args):
        for prefix in _ROUTED:
            if key.startswith(prefix):
                routed[prefix][key[len(prefix):]] = args.pop(key)
                break
    if args:
        raise UnsupportedCheckpointError(f"Unsupported model_args {sorted(args)} (TerraTorch would reject them "
                                         "too, or they need parts this backend does not have)")
    bb = routed["backbone_"]
    if bb.pop("use_temporal", False):
        raise UnsupportedCheckpointError("backbone_use_temporal (TemporalWrapper) is not supported", part="backbone")
    for key in [k for k in bb if k.startswith("temporal_")]:
        bb.pop(key)
    padding = bb.pop("padding", "reflect")
    patch_size = bb.get("patch_size")
    bb.pop("pretrained", None)
    bb.pop("ckpt_path", None)
    head = routed["head_"]
    unknown_head = set(head) - {"channel_list", "dropout"}
    if unknown_head:
        raise UnsupportedCheckpointError(f"Unsupported head arguments {sorted('head_' + k for k in unknown_head)}",
                                         part="head")
    return SegmentationConfig(backbone=backbone, backbone_kwargs=bb, necks=[dict(n) for n in necks], decoder=decoder,
                              decoder_kwargs=routed["decoder_"], head_kwargs=head, num_classes=num_classes,
                              rescale=rescale, padding=padding, patch_size=patch_size, ignored=ignored)


def resolve_neck_name(name) -> str:
    key = _strip_source(name)
    if key not in NECKS:
        raise UnsupportedCheckpointError(
            f"Unsupported neck {name!r}. Supported necks: {', '.join(sorted(NECKS))}.", part="neck")
    return key


def _pad_to_multiple(x: torch.Tensor, multiple: int, mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _patch_size(backbone: nn.Module, configured) -> int:
    """Configured ``backbone_patch_size``, else the first submodule's ``patch_size`` (TerraTorch's rule)."""
    value = configured
    if value is None:
        value = next((m.patch_size for m in backbone.modules() if hasattr(m, "patch_size")), 16)
    if isinstance(value, (tuple, list)):
        value = value[-1]
    return int(value)


class SegmentationModel(nn.Module):
    """Encoder, necks, decoder and head of a TerraTorch pixel-wise segmentation model; returns logits."""

    def __init__(self, config: SegmentationConfig, encoder: nn.Module, neck: nn.Module, decoder: nn.Module,
                 head: nn.Module):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.neck = neck
        self.decoder = decoder
        self.head = head
        self.patch_size = _patch_size(encoder, config.patch_size)
        self.num_classes = config.num_classes

    def forward(self, x: Union[torch.Tensor, Dict[str, torch.Tensor]], seed: Optional[int] = None) -> torch.Tensor:
        """Logits ``[B, num_classes, H, W]`` for a tensor (first modality) or a ``{modality: tensor}`` dict.

        ``seed`` makes a TiM backbone's imagined modalities reproducible (None: drawn from Python's
        ``random``, as TerraTorch does); plain backbones do not sample and ignore it.

        Tensors are reflect-padded to a multiple of 2 × patch size as in TerraTorch. Dicts are passed
        unpadded like TerraTorch does, except when a side is not a multiple of the patch size (where
        TerraTorch fails): then every modality is padded the same way.
        """
        multiple = 2 * self.patch_size
        if isinstance(x, dict):
            image_size = tuple(next(iter(x.values())).shape[-2:])
            if any(s % self.patch_size for s in image_size):
                x = {k: _pad_to_multiple(v, multiple, self.config.padding) for k, v in x.items()}
            input_size = tuple(next(iter(x.values())).shape[-2:])
        else:
            image_size = tuple(x.shape[-2:])
            x = _pad_to_multiple(x, multiple, self.config.padding)
            input_size = tuple(x.shape[-2:])
        features = self.encoder(x, seed=seed) if (self.config.is_tim and seed is not None) else self.encoder(x)
        features = self.neck(list(features), image_size=input_size)
        logits = self.head(self.decoder(features))
        if self.config.rescale and tuple(logits.shape[-2:]) != input_size:
            logits = F.interpolate(logits, size=input_size, mode="bilinear")
        return logits[..., : image_size[0], : image_size[1]]


def _build_backbone(config: SegmentationConfig) -> nn.Module:
    from ..registry import build_model

    kwargs = dict(config.backbone_kwargs)
    try:
        return build_model(config.backbone, pretrained=False, **kwargs)
    except TypeError as exc:
        raise UnsupportedCheckpointError(f"Backbone {config.backbone}: unsupported arguments "
                                         f"{sorted('backbone_' + k for k in kwargs)} ({exc})", part="backbone") from None


def build_segmentation_model(model_args: Union[dict, SegmentationConfig], *, backbone: Optional[nn.Module] = None
                             ) -> SegmentationModel:
    """The model described by ``model_args`` with random weights (load a state dict next).

    The backbone runs in reference arithmetic (``layers.set_reference_arithmetic``): classes are an
    argmax, and near-tied pixels only come out as TerraTorch's when the logits round the same way.
    """
    config = model_args if isinstance(model_args, SegmentationConfig) else parse_model_args(model_args)
    encoder = backbone if backbone is not None else _build_backbone(config)
    set_reference_arithmetic(encoder, True)
    channels = getattr(encoder, "out_channels", None)
    if channels is None:
        raise UnsupportedCheckpointError(f"Backbone {config.backbone} does not report out_channels", part="backbone")
    try:
        neck, channels = build_necks(config.necks, list(channels), resolve_name=resolve_neck_name)
    except ValueError as exc:
        if isinstance(exc, UnsupportedCheckpointError):
            raise
        raise UnsupportedCheckpointError(str(exc), part="neck") from None
    try:
        decoder = DECODERS[config.decoder](channels, **config.decoder_kwargs)
    except TypeError as exc:
        raise UnsupportedCheckpointError(f"Decoder {config.decoder}: unsupported arguments "
                                         f"{sorted('decoder_' + k for k in config.decoder_kwargs)} ({exc})",
                                         part="decoder") from None
    except ValueError as exc:
        raise UnsupportedCheckpointError(f"Decoder {config.decoder}: {exc}", part="decoder") from None
    head = SegmentationHead(decoder.out_channels, config.num_classes, **config.head_kwargs)
    return SegmentationModel(config, encoder, neck, decoder, head)
