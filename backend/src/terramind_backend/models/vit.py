"""TerraMind 1.0 backbone (``terramind_v1_{tiny,small,base,large}``): the encoder as a multi-modal ViT.

``build_backbone(size, **kwargs)`` takes TerraTorch 1.1.1's keyword arguments with the same meaning:

- ``modalities``: list of names (``"S2L2A"``, ``"s1grd"``, ``"LULC"``, ``"Coordinates"`` ...; rules in
  ``modalities.resolve_input_modality``) and/or dicts ``{"NAME": n_channels}`` for new raw modalities
  (a fresh patch embedding; an ``nn.Module`` value is used as the embedding and must return
  ``(x, emb)`` or TerraTorch's ``{"x", "emb"}`` dict). None/[] = one new modality ``"image"`` with
  ``in_chans`` channels.
- ``merge_method``: "mean" (default), "max", "concat", "dict" or None (see ``TerraMindViT.forward``).
- ``bands``: {modality name: [band names]} re-slices raw patch embeddings (``loading.select_band_weights``).
- ``img_size`` (multiple of 16; default 224), ``patch_size`` (new modalities), ``in_chans``.
- ``pretrained`` (official HF weights via ``hub``; HF_HOME/HF_HUB_CACHE/HF_HUB_OFFLINE/HF_TOKEN apply),
  ``ckpt_path`` (local file in this model's key layout; wins over ``pretrained``),
  ``download_progress=callable(done_bytes, total_bytes|None, label)``.
- ``precision`` (ours): "fp32" (default), "bf16" or "auto" transformer arithmetic (``build_backbone``).
- ``encoder_norm`` (default True). Training-only arguments (drop rates, modality_drop_rate) are
  accepted for compatibility; this runtime is inference-only, so they change nothing.

Tokenized inputs (LULC, NDVI, and explicitly named ``tok_*@224`` keys) run through the tokenizer from
``models.tokenizers.build_tokenizer`` (stored under ``tokenizer.<key>``; pretrained when the backbone is).
Coordinates ``[B, 2]`` (lon, lat) go through the coords tokenizer (``models.coords``: the official
``config.json`` when pretrained, TerraTorch's blank WordPiece otherwise); integer ids ``[B, L]`` are
embedded directly.

Forward: ``model(x)`` (first modality), ``model({"S2L2A": x, ...})`` or ``model(S2L2A=x, ...)`` returns
one tensor per encoder block, ``[B, tokens, D]``; only the last one is passed through ``encoder_norm``.

Input semantics as TerraTorch's: an input name that is not one of the model's modalities is dropped with
a warning (whole batch dicts can be passed). Deliberate differences (inputs it handles badly): the caller's
dict is never modified; ``model(S1GRD=x)`` without the first modality works; ``qk_norm=True`` is refused (no
checkpoint has those weights); the model is returned in eval mode; ``missing_mod_token`` (concat) is
initialised N(0, 0.02) instead of left uninitialised.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Union

import torch
from torch import nn

from ..catalog import BACKBONES
from .embeddings import ImageEncoderEmbedding, ImageTokenEncoderEmbedding, encoder_embedding_for
from .encdec import transformer_config
from .layers import Block, LayerNorm, init_weights_mae, set_reference_arithmetic, uses_reference_arithmetic
from .modalities import MODALITY_INFO, PRETRAINED_BANDS, known_inputs, resolve_input_modality

__all__ = ["TerraMindViT", "build_backbone", "build_modality_embeddings", "MERGE_METHODS"]

MERGE_METHODS = ("mean", "max", "concat", "dict", None)
_TRAINING_ONLY = ("drop_path_rate", "drop_rate", "attn_drop_rate", "modality_drop_rate")


def build_modality_embeddings(modalities, dim: int, img_size: int = 224, patch_size: int = 16):
    """(embeddings {key: module}, name mapping {user name: key}) for a TerraTorch ``modalities`` list."""
    embeddings: Dict[str, nn.Module] = {}
    mapping: Dict[str, str] = {}
    for entry in modalities:
        if isinstance(entry, Mapping):
            for name, value in entry.items():
                if isinstance(value, nn.Module):
                    embeddings[name] = value
                elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    embeddings[name] = ImageEncoderEmbedding(value, dim, patch_size, img_size)
                else:
                    raise ValueError(f"New modality {name!r} must be given as {{'{name}': number_of_channels}} "
                                     f"(a positive int) or an embedding nn.Module, got {value!r}")
                mapping[name] = name
            continue
        key = resolve_input_modality(entry)
        if key in embeddings:
            other = [n for n, k in mapping.items() if k == key][0]
            raise ValueError(f"Modalities {other!r} and {entry!r} both resolve to {key}; each pre-trained "
                             f"modality can be used once")
        embeddings[key] = encoder_embedding_for(key, dim, img_size)
        mapping[entry] = key
    return embeddings, mapping


class TerraMindViT(nn.Module):
    """Multi-modal TerraMind encoder returning per-block outputs (see the module docstring)."""

    def __init__(self, modalities=None, *, img_size: int = 224, merge_method: Optional[str] = "mean",
                 patch_size: int = 16, in_chans: int = 3, dim: int = 768, encoder_depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True, proj_bias: bool = True,
                 mlp_bias: bool = True, gated_mlp: bool = False, act_layer=nn.GELU, encoder_norm: bool = True,
                 tokenizers: Optional[Mapping[str, nn.Module]] = None):
        super().__init__()
        if merge_method not in MERGE_METHODS:
            raise ValueError(f"merge_method must be one of 'mean', 'max', 'concat', 'dict' or None, got {merge_method!r}")
        if not isinstance(img_size, int) or img_size <= 0 or img_size % 16:
            raise ValueError(f"img_size must be a positive multiple of 16 (the patch size), got {img_size!r}")
        if modalities is None or len(modalities) == 0:
            modalities = [{"image": in_chans}]
        elif isinstance(modalities, Mapping):
            modalities = [modalities]
        elif isinstance(modalities, str) or not isinstance(modalities, (list, tuple)):
            raise ValueError(f"modalities must be a list of names and {{name: channels}} dicts, got {modalities!r}")

        embeddings, self.mod_name_mapping = build_modality_embeddings(modalities, dim, img_size, patch_size)
        self.encoder_embeddings = nn.ModuleDict(embeddings)
        self.modalities = list(self.mod_name_mapping)
        self.img_size = img_size
        self.merge_method = merge_method
        self.image_modalities = [k for k, m in self.encoder_embeddings.items()
                                 if isinstance(m, (ImageEncoderEmbedding, ImageTokenEncoderEmbedding))]
        if merge_method == "concat":
            # TerraTorch leaves this uninitialised memory; pretrained checkpoints do not contain it
            self.missing_mod_token = nn.Parameter(torch.empty(dim).normal_(std=0.02))
        self.encoder = nn.ModuleList([
            Block(dim, num_heads, mlp_ratio, qkv_bias, proj_bias, mlp_bias, act_layer, gated_mlp)
            for _ in range(encoder_depth)])
        self.encoder_norm = LayerNorm(dim) if encoder_norm else nn.Identity()
        self.out_channels = [dim * (len(self.image_modalities) if merge_method == "concat" else 1)] * encoder_depth
        self.tokenizer = nn.ModuleDict(dict(tokenizers or {}))
        self.precision = "fp32"  # transformer arithmetic: fp32 | bf16 | auto (see build_backbone)
        init_weights_mae(self)

    def set_reference_arithmetic(self, enabled: bool = True) -> "TerraMindViT":
        """fp32 transformer arithmetic in TerraTorch's op order (explicit softmax attention, plain
        linear layers) instead of the fused kernels: slower, but rounds exactly like TerraTorch.
        Covers every transformer layer inside (a TiM model's generator too). Returns ``self``."""
        set_reference_arithmetic(self, enabled)
        return self

    @property
    def reference_arithmetic(self) -> bool:
        return uses_reference_arithmetic(self)

    # ---------------------------------------------------------------- inputs
    def _gather_inputs(self, d, kwargs) -> Dict[str, torch.Tensor]:
        if d is None:
            inputs = {}
        elif isinstance(d, Mapping):
            inputs = dict(d)  # never mutate the caller's dict
        else:
            inputs = {self.modalities[0]: d}
        inputs.update(kwargs)
        inputs = known_inputs(inputs, self.mod_name_mapping)  # names are matched exactly, as given at build time
        if not inputs:
            raise ValueError(f"No valid input given; pass a tensor or a dict with some of {self.modalities}")
        for name, value in inputs.items():
            if value is None:
                raise ValueError(f"Input {name!r} is None; pass a tensor for every given modality")
        return inputs

    def _embed(self, name: str, value):
        key = self.mod_name_mapping[name]
        emb = self.encoder_embeddings[key]
        if key in self.tokenizer and not (key == "coords" and not torch.is_floating_point(value)):
            value = _tokenize(self.tokenizer[key], key, value)
        elif isinstance(emb, ImageTokenEncoderEmbedding) and torch.is_floating_point(value):
            raise ValueError(f"{name!r} expects integer token ids; this model has no tokenizer for {key}")
        out = emb(value)
        if isinstance(out, Mapping):  # a user embedding module written for TerraTorch ({'x', 'emb'})
            return out["x"], out["emb"]
        return out

    # ---------------------------------------------------------------- forward
    def forward(self, d: Union[torch.Tensor, Mapping[str, torch.Tensor], None] = None, **kwargs) -> List:
        """Per-block outputs after merging (``merge_method``):

        mean / max: image modalities' tokens averaged / maxed -> [B, N, D] (sequence modalities dropped);
        concat: image modalities side by side on the feature axis -> [B, N, D * M] (absent configured
        modalities filled with ``missing_mod_token``); dict: {input name: [B, N_m, D]}; None: [B, sum N, D].
        """
        inputs = self._gather_inputs(d, kwargs)
        device = next(iter(inputs.values())).device
        tokens, counts, is_image = [], [], []
        low = self._bf16(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
            for name, value in inputs.items():
                x, emb = self._embed(name, value)
                tokens.append(x + emb)
                counts.append(x.shape[1])
                is_image.append(self.mod_name_mapping[name] in self.image_modalities)
            x = torch.cat(tokens, dim=1) if len(tokens) > 1 else tokens[0]

            outputs = self._encode(x)
        if low:  # bf16 arithmetic, fp32 results; other dtypes (e.g. float64 checks) are left alone
            outputs = [o.float() for o in outputs]
        return [self._merge(out, list(inputs), counts, is_image) for out in outputs]

    def _encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Every block's output; the last one normed (``encoder_norm``), as TerraTorch returns them."""
        outputs = []
        for block in self.encoder:
            x = block(x)
            outputs.append(x)  # blocks return new tensors, so no copy is needed
        outputs[-1] = self.encoder_norm(x)
        return outputs

    def _bf16(self, device: torch.device) -> bool:
        """Whether this forward runs in bf16; the first one converts the matmul weights that run under autocast
        to bf16 for good (``bf16_weights``: autocast would re-cast them every call)."""
        from .precision import runs_in_bf16

        return runs_in_bf16(self.precision, None, device, [self.encoder, self.encoder_embeddings], "This backbone")

    def _merge(self, out: torch.Tensor, names: List[str], counts: List[int], is_image: List[bool]):
        method = self.merge_method
        if method is None:
            return out
        parts = torch.split(out, counts, dim=1)
        if method == "dict":
            return dict(zip(names, parts))
        images = [p for p, keep in zip(parts, is_image) if keep]
        if not images:
            raise ValueError(f"merge_method={method!r} needs at least one image modality in the input")
        if len({p.shape[1] for p in images}) > 1:
            raise ValueError(f"merge_method={method!r} needs the same number of tokens for every image "
                             f"modality, got {[p.shape[1] for p in images]}")
        if method == "mean":
            return images[0] if len(images) == 1 else torch.stack(images, dim=1).mean(dim=1)
        if method == "max":
            return images[0] if len(images) == 1 else torch.stack(images, dim=1).max(dim=1).values
        missing = len(self.image_modalities) - len(names)  # TerraTorch counts all inputs here
        if missing > 0:
            fill = self.missing_mod_token.expand(out.shape[0], images[0].shape[1], -1)
            images = images + [fill] * missing
        return torch.cat(images, dim=-1)


def _tokenize(tokenizer: nn.Module, key: str, value):
    """Token ids of a tokenized input: image tokenizers -> [B, h, w]; coords -> [B, L]."""
    with torch.no_grad(), torch.autocast(value.device.type, enabled=False):  # tokenizers stay fp32
        if key == "coords":
            return tokenizer.encode(value)["tensor"]
        return tokenizer.encode(value)[-1]


def build_backbone(size: str, *, modalities=None, pretrained: bool = False, ckpt_path=None,
                   bands: Optional[Mapping[str, List[str]]] = None, download_progress=None,
                   img_size: int = 224, merge_method: Optional[str] = "mean", patch_size: int = 16,
                   in_chans: int = 3, encoder_norm: bool = True, qk_norm: bool = False,
                   precision: str = "fp32", **training_only) -> TerraMindViT:
    """Build ``terramind_v1_<size>`` with TerraTorch's keyword arguments (see the module docstring).

    ``precision`` (ours): transformer arithmetic. "fp32" (default; matches TerraTorch within 1e-6),
    "bf16" (autocast; ~1e-2 relative differences, like TerraTorch after its import switches
    ``float32_matmul_precision`` to "medium") or "auto" (bf16 where it is fast: CUDA with bf16, CPUs
    with AMX). Tokenizers always run in fp32; outputs are fp32.
    """
    from .precision import check_precision

    check_precision(precision)
    for key in list(training_only):
        if key not in _TRAINING_ONLY:
            raise TypeError(f"build_backbone() got an unexpected keyword argument {key!r}")
    if qk_norm:
        raise NotImplementedError("qk_norm=True adds weights the TerraMind 1.0 checkpoints do not have")
    cfg = transformer_config(size)
    cfg.pop("decoder_depth")
    model = TerraMindViT(modalities, img_size=img_size, merge_method=merge_method, patch_size=patch_size,
                         in_chans=in_chans, encoder_norm=encoder_norm, **cfg)
    model.precision = precision
    load_tokenizer_weights = bool(pretrained)  # as TerraTorch: tokenizers follow `pretrained`, even with ckpt_path
    tokenizers = {}
    for key in model.encoder_embeddings:
        info = MODALITY_INFO.get(key)
        if info is None or info.tokenizer is None:
            continue
        from .tokenizers import build_tokenizer
        tokenizers[key] = build_tokenizer(info.tokenizer, pretrained=load_tokenizer_weights,
                                          download_progress=download_progress)
    model.tokenizer = nn.ModuleDict(tokenizers)

    from . import loading

    if ckpt_path is not None:
        loading.load_ckpt_path(model, ckpt_path)
    elif pretrained:
        loading.load_official(model, BACKBONES[size].registry_name, loading.filter_backbone_state, download_progress)
    if bands is not None:
        loading.select_band_weights(model, bands, PRETRAINED_BANDS)
    return model.eval()
