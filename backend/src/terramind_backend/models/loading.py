"""Official checkpoint -> our modules: TerraTorch's three key filters, ``ckpt_path`` and band re-slicing.

The official ``TerraMind_v1_<size>.pt`` is a plain state dict of the full encoder-decoder (keys as in
``encdec.TerraMind``). Each wrapper takes what it needs, exactly as TerraTorch 1.1.1 does:

- ``filter_backbone_state``: keep a checkpoint key if the model has it with the same shape; other
  model keys keep their initialisation (new modalities, ``tokenizer.*``, pos_emb of another img_size).
- ``filter_generate_state``: checkpoint key k -> model key ``sampler.model.`` + k.
- ``filter_tim_state``: k -> k (the ViT part) *and* ``sampler.model.`` + k (the generator); the
  generator must be complete.

Unlike TerraTorch the filters are loud where a silent random init would hide a wrong file: a missing
transformer block (``encoder.*``/``decoder.*`` ...) raises ``CheckpointMismatch``. Each filter returns
``(state_dict, LoadReport)``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

log = logging.getLogger("terramind_backend.models")

__all__ = ["LoadReport", "CheckpointMismatch", "filter_backbone_state", "filter_generate_state",
           "filter_tim_state", "load_official", "load_ckpt_path", "select_band_weights", "reject_bands"]

GENERATOR_PREFIX = "sampler.model."
# Model keys that must come from the checkpoint (relative to the encoder-decoder / ViT root).
_REQUIRED_PREFIXES = ("encoder.", "encoder_norm.", "decoder.", "decoder_norm.", "decoder_proj_context.", "mask_token")


class CheckpointMismatch(RuntimeError):
    """The checkpoint does not provide the transformer weights this model needs."""


@dataclass
class LoadReport:
    loaded: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # in both, shapes differ (kept the model's value)
    missing: List[str] = field(default_factory=list)   # model keys the checkpoint lacks (kept init)

    def log(self, label: str) -> None:
        for key in self.skipped:
            log.warning("%s: shape of %s differs from the checkpoint; keeping the model's own value", label, key)
        noisy = [k for k in self.missing if not k.startswith("tokenizer") and not k.endswith("pos_emb")]
        if noisy:
            log.warning("%s: %d weights not in the checkpoint, randomly initialised: %s", label, len(noisy),
                        ", ".join(noisy[:8]) + (" ..." if len(noisy) > 8 else ""))


def _required(key: str) -> bool:
    return key.startswith(_REQUIRED_PREFIXES)


def _filter(state: Mapping[str, torch.Tensor], model: nn.Module,
            targets: Callable[[str], List[Tuple[str, bool]]]) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """Map checkpoint keys to model keys; ``targets(k)`` -> [(model_key, strict_shape)]."""
    own = model.state_dict()
    clean, report = {}, LoadReport()
    for key, value in state.items():
        for target, strict in targets(key):
            if target not in own:
                continue
            if tuple(value.shape) != tuple(own[target].shape):
                if strict:
                    raise CheckpointMismatch(f"{key} has shape {list(value.shape)} in the checkpoint but "
                                             f"{target} needs {list(own[target].shape)}")
                report.skipped.append(target)
                continue
            clean[target] = value
            report.loaded.append(target)
    for key in own:
        if key not in clean:
            report.missing.append(key)
            clean[key] = own[key]
    return clean, report


def _check_required(report: LoadReport, prefix: str = "") -> None:
    bad = [k for k in report.missing + report.skipped if k.startswith(prefix) and _required(k[len(prefix):])]
    if bad:
        raise CheckpointMismatch(f"The checkpoint lacks {len(bad)} transformer weights of this model "
                                 f"(e.g. {', '.join(bad[:3])}); is it a TerraMind 1.0 file of the same size?")


def filter_backbone_state(state: Mapping[str, torch.Tensor], model: nn.Module):
    """Checkpoint -> backbone (TerraMindViT) state dict, as TerraTorch's ``checkpoint_filter_fn``."""
    clean, report = _filter(state, model, lambda k: [(k, False)])
    _check_required(report)
    return clean, report


def filter_generate_state(state: Mapping[str, torch.Tensor], model: nn.Module):
    """Checkpoint -> generation wrapper: every key k loads into ``sampler.model.k``."""
    clean, report = _filter(state, model, lambda k: [(GENERATOR_PREFIX + k, False)])
    _check_required(report, GENERATOR_PREFIX)
    return clean, report


def filter_tim_state(state: Mapping[str, torch.Tensor], model: nn.Module):
    """Checkpoint -> TiM wrapper: k loads into the ViT key k and into ``sampler.model.k`` (which must fit)."""
    clean, report = _filter(state, model, lambda k: [(k, False), (GENERATOR_PREFIX + k, True)])
    gaps = [k for k in report.missing if k.startswith(GENERATOR_PREFIX)]
    if gaps:
        raise CheckpointMismatch(f"The checkpoint lacks {len(gaps)} weights of the TiM generator "
                                 f"(e.g. {', '.join(gaps[:3])}); Thinking-in-Modalities needs the full model")
    _check_required(LoadReport(missing=[k for k in report.missing if not k.startswith(GENERATOR_PREFIX)]))
    return clean, report


def load_official(model: nn.Module, name: str, filter_fn=filter_backbone_state, progress=None) -> LoadReport:
    """Load the official weights of registry ``name`` (HF cache / download via ``hub``) into ``model``."""
    from .. import hub

    state = hub.official_state_dict(name, progress=progress)
    clean, report = filter_fn(state, model)
    model.load_state_dict(clean, strict=True)
    report.log(name)
    return report


def load_ckpt_path(model: nn.Module, path) -> LoadReport:
    """``ckpt_path=``: a local file in the model's own key layout, loaded non-strictly (as TerraTorch)."""
    from .. import hub

    state = hub.load_checkpoint(path)
    result = model.load_state_dict(state, strict=False)
    report = LoadReport(loaded=[k for k in state if k not in result.unexpected_keys], missing=list(result.missing_keys))
    if result.missing_keys:
        log.warning("%s: %d model weights missing from the file: %s", path, len(result.missing_keys),
                    ", ".join(result.missing_keys[:8]))
    if result.unexpected_keys:
        log.warning("%s: %d keys in the file are not used by this model: %s", path, len(result.unexpected_keys),
                    ", ".join(result.unexpected_keys[:8]))
    return report


def select_band_weights(model: nn.Module, bands: Mapping[str, List[str]],
                        pretrained_bands: Mapping[str, List[str]]) -> None:
    """Re-slice raw patch embeddings to ``bands`` ({user modality name: [band names]}).

    A new bias-free projection for len(bands) channels is created (PyTorch's default init); for every
    requested band the model was pre-trained with, that band's weight column is copied into its new
    position. Unknown bands keep the fresh init; modalities without pretrained bands are left alone.
    """
    for name, names in bands.items():
        if name not in model.mod_name_mapping:
            raise ValueError(f"bands given for {name!r}, which is not one of this model's modalities "
                             f"{list(model.mod_name_mapping)}")
        key = model.mod_name_mapping[name]
        if key not in pretrained_bands:
            log.info("No pretrained bands for %s; its patch embedding is left unchanged", key)
            continue
        if isinstance(names, str) or not len(names):
            raise ValueError(f"bands[{name!r}] must be a non-empty list of band names, got {names!r}")
        emb = model.encoder_embeddings[key]
        pixels = emb.patch_size[0] * emb.patch_size[1]
        old = emb.proj.weight.detach().reshape(emb.dim_tokens, pixels, -1)
        new_proj = type(emb.proj)(pixels * len(names), emb.dim_tokens, bias=False,
                                  device=old.device, dtype=old.dtype)
        new = new_proj.weight.detach().clone().reshape(emb.dim_tokens, pixels, len(names))
        for index, band in enumerate(names):
            if band in pretrained_bands[key]:
                new[..., index] = old[..., pretrained_bands[key].index(band)]
            else:
                log.info("%s: band %s has no pretrained weights (random init)", name, band)
        new_proj.weight = nn.Parameter(new.reshape(emb.dim_tokens, -1))
        emb.proj = new_proj


def reject_bands(bands, model_kind: str = "TerraMind TiM") -> None:
    """``bands`` cannot be used with generator-backed models (TiM): their inputs must match pretraining."""
    if bands is not None:
        raise NotImplementedError(f"bands cannot be adapted for {model_kind} models; only the pre-trained bands "
                                  f"of each modality are supported (got bands={bands!r}). Reorder or select the "
                                  f"raster bands before the model instead.")
