"""Thinking-in-Modalities backbones (``terramind_v1_{size}_tim``).

A TiM backbone first "imagines" extra token modalities (default LULC) from its inputs with the full
encoder-decoder (``sampler.model``, frozen), then encodes the real inputs *plus* the imagined tokens
with the ViT, exactly like TerraTorch 1.1.1's ``TerraMindTiM`` (facts §6):

- imagined modalities already given as inputs are not generated;
- each is one ROAR pass (``tim_decoding_steps=1``, ``tim_top_p=0.8``, ``tim_temps=1``) seeded like
  ``models.sampling`` describes; generated tokens are not fed to the next imagined modality;
- the imagined tokens join the ViT input after the real inputs, under the TiM modality's name;
- Coordinates can be imagined (``tim_modalities=["coords", ...]``: decoded left to right from TerraTorch's
  50-token target, at most 4 new tokens, merged and ``[PAD]``-padded) and given as an input (lon, lat);
- ``merge_method`` as the backbone: mean/max include the imagined image modalities, 'concat' counts
  them, and 'dict' returns only the real inputs (TerraTorch's behaviour, kept on purpose).

Differences: ``bands`` and new (dict) modalities are refused with a clear error; ``tim_decoding_steps > 1``
works (later steps see earlier tokens, TerraTorch crashes); a ``seed`` makes runs reproducible without
touching torch's global RNG; a tokenizer is built only for tokenized *inputs* (TerraTorch also builds the
~740 MB LULC tokenizer for an imagined LULC it never decodes), so an imagined modality passed as input
must come as token ids unless it is also listed in ``modalities``.

State-dict keys: the ViT's (``encoder_embeddings.*`` incl. the imagined ``tok_*`` embeddings,
``encoder.*``, ``encoder_norm.*``), ``sampler.model.*`` and ``tokenizer.<key>.*``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..catalog import BACKBONES
from . import sampling
from .embeddings import ImageEncoderEmbedding, ImageTokenEncoderEmbedding, encoder_embedding_for
from .encdec import TerraMind, transformer_config
from .coords import generation_input
from .modalities import MODALITY_INFO, resolve_output_modality
from .roar import (SEQUENCE_TARGET_TOKENS, Sampler, embed_token_grid, encoder_input, generate_image_tokens,
                   generate_sequence_tokens, is_sequence)
from .vit import TerraMindViT

__all__ = ["TerraMindTiM", "build_tim"]

_TRAINING_ONLY = ("drop_path_rate", "drop_rate", "attn_drop_rate", "modality_drop_rate")


def _resolve_tim(name: str) -> str:
    return resolve_output_modality(name)


class TerraMindTiM(TerraMindViT):
    """TerraMind backbone that thinks in extra modalities first (see the module docstring).

    Args (beyond ``TerraMindViT``'s):
        tim_modalities: modalities to imagine (default ["LULC"]), in generation order.
        tim_decoding_steps, tim_temps, tim_top_p, tim_top_k: sampling of the imagined tokens.
        decoder_depth: depth of the generator's decoder.
        seed: default seed; None draws one from Python's ``random`` per call (as TerraTorch).
    """

    def __init__(self, modalities, tim_modalities: Optional[Sequence[str]] = None, *, decoder_depth: int = 12,
                 tim_decoding_steps: int = 1, tim_temps: float = 1.0, tim_top_p: float = 0.8, tim_top_k=0,
                 seed: Optional[int] = None, tokenizers: Optional[Mapping[str, nn.Module]] = None, **vit_kwargs):
        if not modalities or isinstance(modalities, (str, Mapping)) or any(isinstance(m, Mapping) for m in modalities):
            raise NotImplementedError(
                f"TiM models need a list of pre-trained modalities (S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM, LULC, "
                f"NDVI); new modalities have no trained generator embedding. Got {modalities!r}")
        super().__init__(list(modalities), tokenizers=tokenizers, **vit_kwargs)
        if isinstance(tim_modalities, str):
            tim_modalities = [tim_modalities]
        self.tim_modalities = list(tim_modalities or ["LULC"])
        self.input_names = list(self.mod_name_mapping)
        generator_inputs = [self.mod_name_mapping[n] for n in self.input_names]
        dim = vit_kwargs.get("dim", 768)
        img_size = vit_kwargs.get("img_size", 224)
        self.tim_keys: Dict[str, str] = {}
        for name in self.tim_modalities:
            key = _resolve_tim(name)
            if name in self.mod_name_mapping:
                if self.mod_name_mapping[name] != key:
                    raise NotImplementedError(f"TiM modality {name!r} is also an input as "
                                              f"{self.mod_name_mapping[name]}; only tokenized modalities can be both")
                self.tim_keys[name] = key
                continue
            if key in self.encoder_embeddings:
                raise ValueError(f"TiM modality {name!r} maps to {key}, which is already embedded")
            self.encoder_embeddings[key] = encoder_embedding_for(key, dim, img_size)
            self.mod_name_mapping[name] = key
            self.tim_keys[name] = key
        self.modalities = list(self.mod_name_mapping)
        self.image_modalities = [k for k, m in self.encoder_embeddings.items()
                                 if isinstance(m, (ImageEncoderEmbedding, ImageTokenEncoderEmbedding))]
        if self.merge_method == "concat":
            self.out_channels = [dim * len(self.image_modalities)] * len(self.out_channels)

        if any(is_sequence(k) for k in self.tim_keys.values()) and "coords" not in self.tokenizer:
            raise ValueError("Imagining Coordinates needs the coords tokenizer (tokenizers={'coords': ...})")
        steps = int(tim_decoding_steps)
        if steps < 1:
            raise ValueError(f"tim_decoding_steps must be >= 1, got {tim_decoding_steps}")
        if float(tim_temps) < 0 or not 0.0 <= float(tim_top_p) <= 1.0:
            raise ValueError(f"tim_temps must be >= 0 and tim_top_p in [0, 1], got {tim_temps}, {tim_top_p}")
        self.tim_decoding_steps, self.tim_temps = steps, float(tim_temps)
        self.tim_top_p, self.tim_top_k = float(tim_top_p), tim_top_k
        self.seed = seed
        # the generator sees the real inputs; with several steps also the imagined tokens decoded so far
        encoder_keys = list(dict.fromkeys(generator_inputs))
        if steps > 1:
            encoder_keys += [k for k in self.tim_keys.values() if k not in encoder_keys and not is_sequence(k)]
        cfg = {k: vit_kwargs[k] for k in ("dim", "encoder_depth", "num_heads", "mlp_ratio", "qkv_bias",
                                          "proj_bias", "mlp_bias", "gated_mlp", "act_layer") if k in vit_kwargs}
        self.sampler = Sampler(TerraMind(encoder_keys, list(dict.fromkeys(self.tim_keys.values())),
                                          decoder_depth=decoder_depth, image_size=img_size, **cfg))
        self.sampler.requires_grad_(False)

    # ------------------------------------------------------------------ forward
    def _token_ids(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Image-token ids of a tokenized input: tokenizer output, or ids given directly."""
        key = self.mod_name_mapping[name]
        if key in self.tokenizer:
            with torch.no_grad():
                return self.tokenizer[key].encode(value)[-1]
        if torch.is_floating_point(value):
            raise ValueError(f"{name!r} is only an imagined (TiM) modality here, so it has no tokenizer: pass "
                             f"token ids [B, h, w], or list {name!r} in modalities to give it as an image")
        return value

    def _sequence_input(self, name: str, value: torch.Tensor):
        """(ids, (x, emb)) of a Coordinates input: (lon, lat) floats are tokenized, integer ids taken as they
        are; ids after the first [EOS] are masked (TerraTorch's ``init_full_input_modality``)."""
        key = self.mod_name_mapping[name]
        ids = self.tokenizer[key].tokenize(value) if torch.is_floating_point(value) else value
        kept = generation_input(ids).shape[1]
        mask = None
        if kept < ids.shape[1]:
            mask = torch.zeros_like(ids, dtype=torch.bool)
            mask[:, kept:] = True
        return ids, self.encoder_embeddings[key](ids, input_mask=mask)

    def forward(self, d: Union[torch.Tensor, Mapping[str, torch.Tensor], None] = None, seed: Optional[int] = None,
                **kwargs) -> List:
        """Per-block outputs like ``TerraMindViT.forward``, with the imagined modalities in the input."""
        inputs = self._gather_inputs(d, kwargs)
        real_names = list(inputs)
        batch = len(next(iter(inputs.values())))

        embedded, grid = {}, (14, 14)  # TerraTorch's default grid when no image is given
        for name, value in inputs.items():
            key = self.mod_name_mapping[name]
            info = MODALITY_INFO.get(key)
            if info is not None and info.kind == "image_tokens":
                ids = self._token_ids(name, value)
                if ids.ndim == 2:  # [B, N] ids of a square grid
                    side = int(round(ids.shape[1] ** 0.5))
                    ids = ids.reshape(batch, side, side)
                rows, cols = ids.shape[-2:]
                embedded[name] = (key, ids, embed_token_grid(self.encoder_embeddings[key], ids, rows, cols))
                grid = (rows, cols)
            elif info is not None and is_sequence(key):
                embedded[name] = (key, *self._sequence_input(name, value))
            else:
                x_emb = self._embed(name, value)
                embedded[name] = (key, value, x_emb)
                if info is None or info.is_image:
                    grid = (value.shape[-2] // 16, value.shape[-1] // 16)

        targets = [(n, k) for n, k in self.tim_keys.items() if k not in {e[0] for e in embedded.values()}]
        if targets:
            seed = seed if seed is not None else (self.seed if self.seed is not None else sampling.draw_seed())
            generated = self._imagine(embedded, targets, grid, batch, int(seed))
            for name, key in targets:
                ids = generated[name]
                if is_sequence(key):
                    embedded[name] = (key, ids, self.encoder_embeddings[key](ids))
                else:
                    embedded[name] = (key, ids, embed_token_grid(self.encoder_embeddings[key], ids, *grid))

        tokens, counts, is_image = [], [], []
        for name, (key, _, (x, emb)) in embedded.items():
            tokens.append(x + emb)
            counts.append(x.shape[1])
            is_image.append(key in self.image_modalities)
        x = torch.cat(tokens, dim=1) if len(tokens) > 1 else tokens[0]
        outputs = self._encode(x)  # the backbone's encoder loop (TiM runs in fp32)
        # 'dict' keeps only the real inputs (TerraTorch captures the names before adding TiM tokens)
        names = real_names if self.merge_method == "dict" else list(embedded)
        return [self._merge(out, names, counts, is_image) for out in outputs]

    @torch.no_grad()
    def _imagine(self, embedded, targets, grid, batch: int, seed: int) -> Dict[str, torch.Tensor]:
        """Token ids [B, rows, cols] of every imagined modality, from the generator's view of the inputs."""
        model = self.sampler.model
        parts = []
        for name, (key, value, _) in embedded.items():
            if key not in model.encoder_embeddings:
                continue  # an imagined modality given as input: the generator has no embedding for it
            if MODALITY_INFO[key].kind == "image_tokens":
                x, emb = embed_token_grid(model.encoder_embeddings[key], value, *value.shape[-2:])
            elif is_sequence(key):
                x, emb = model.encoder_embeddings[key](generation_input(value))
            else:
                x, emb = model.encoder_embeddings[key](value)
            parts.append((key, x, emb.expand(batch, -1, -1)))
        ctx = model.encode(encoder_input(parts))
        out, step = {}, 0
        for name, key in targets:
            if is_sequence(key):
                result = generate_sequence_tokens(model, key, ctx, self.tokenizer[key],
                                                  target_tokens=SEQUENCE_TARGET_TOKENS["tim"],
                                                  temperature=self.tim_temps, top_k=self.tim_top_k,
                                                  top_p=self.tim_top_p, seed=seed + step)
                step += result.steps
                out[name] = result.tokens
                continue
            result = generate_image_tokens(model, key, parts, ctx, grid, steps=self.tim_decoding_steps,
                                           temperature=self.tim_temps, top_k=self.tim_top_k, top_p=self.tim_top_p,
                                           seed=seed, first_step=step)
            step += result.steps
            out[name] = result.tokens.view(batch, *grid)
        return out


def build_tim(size: str, *, modalities=None, tim_modalities=None, pretrained: bool = False, ckpt_path=None,
              bands=None, download_progress=None, img_size: int = 224, merge_method: Optional[str] = "mean",
              patch_size: int = 16, in_chans: int = 3, encoder_norm: bool = True, qk_norm: bool = False,
              tim_decoding_steps: int = 1, tim_temps: float = 1.0, tim_top_p: float = 0.8, tim_top_k=0,
              seed: Optional[int] = None, **training_only) -> TerraMindTiM:
    """``terramind_v1_<size>_tim`` with TerraTorch's keyword arguments (see the module docstring)."""
    from . import loading

    loading.reject_bands(bands)
    for key in training_only:
        if key not in _TRAINING_ONLY:
            raise TypeError(f"build_tim() got an unexpected keyword argument {key!r}")
    if qk_norm:
        raise NotImplementedError("qk_norm=True adds weights the TerraMind 1.0 checkpoints do not have")
    if patch_size != 16:
        raise ValueError("patch_size is fixed to 16 for pre-trained TerraMind modalities")
    cfg = transformer_config(size)
    decoder_depth = cfg.pop("decoder_depth")
    tokenizers = {}
    if modalities and not isinstance(modalities, (str, Mapping)):
        from .modalities import resolve_input_modality
        from .tokenizers import build_tokenizer

        for name in modalities:
            if isinstance(name, Mapping):
                continue  # refused by TerraMindTiM with a clear message
            key = resolve_input_modality(name)
            tok = MODALITY_INFO[key].tokenizer
            if tok and key not in tokenizers:
                tokenizers[key] = build_tokenizer(tok, pretrained=pretrained, download_progress=download_progress)
    # TerraTorch builds the coords tokenizer for an imagined Coordinates too: its sentinels and [PAD] shape the result
    tim_names = [tim_modalities] if isinstance(tim_modalities, str) else list(tim_modalities or [])
    if "coords" not in tokenizers and any(_resolve_tim(n) == "coords" for n in tim_names):
        from .tokenizers import build_tokenizer

        tokenizers["coords"] = build_tokenizer("coords", pretrained=pretrained, download_progress=download_progress)
    model = TerraMindTiM(modalities, tim_modalities, decoder_depth=decoder_depth,
                         tim_decoding_steps=tim_decoding_steps, tim_temps=tim_temps, tim_top_p=tim_top_p,
                         tim_top_k=tim_top_k, seed=seed, tokenizers=tokenizers, img_size=img_size,
                         merge_method=merge_method, patch_size=patch_size, in_chans=in_chans,
                         encoder_norm=encoder_norm, **cfg)
    if ckpt_path is not None:
        loading.load_ckpt_path(model, ckpt_path)
    elif pretrained:
        loading.load_official(model, BACKBONES[size].registry_name, loading.filter_tim_state, download_progress)
    return model.eval()
