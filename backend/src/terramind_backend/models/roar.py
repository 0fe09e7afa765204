"""Token decoding with the TerraMind encoder-decoder, shared by generation and TiM.

The encoder-decoder (``encdec.TerraMind``) lives under ``sampler.model`` in both (TerraTorch's state-dict
layout, hence `Sampler`). `generate_image_tokens` ROAR-decodes one image modality's token grid from an encoder
context, step by step (``sampling.roar_decode``), re-encoding the tokens decoded so far when there are several
steps; `generate_sequence_tokens` decodes a sequence modality (Coordinates) autoregressively.
`embed_token_grid` and `encoder_input` build the encoder's input from embedded parts.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from . import sampling
from .encdec import Context, EncoderInput, TerraMind
from .modalities import MODALITY_INFO, modality_id

__all__ = ["SEQUENCE_TARGET_TOKENS", "Sampler", "embed_token_grid", "encoder_input", "generate_image_tokens",
           "generate_sequence_tokens", "is_sequence", "transformer_arithmetic"]

# TerraTorch's target lengths of a Coordinates sequence: its max_tokens (4) in generation, 50 in TiM
SEQUENCE_TARGET_TOKENS = {"generate": 4, "tim": 50}


def is_sequence(key: str) -> bool:
    """Whether ``key`` is a sequence modality (Coordinates): generated left to right, not as an image."""
    return MODALITY_INFO[key].kind == "sequence"


def embed_token_grid(embedding: nn.Module, ids: torch.Tensor, rows: int, cols: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x, emb) of image-tokenizer ids [B, rows*cols] on a rows x cols grid (any aspect ratio)."""
    ids = ids.reshape(ids.shape[0], rows * cols).long()
    return embedding.token_emb(ids), embedding.grid_pos_emb(rows, cols) + embedding.mod_emb


def encoder_input(parts: Sequence[Tuple[str, torch.Tensor, torch.Tensor]]) -> EncoderInput:
    """Concatenate embedded inputs ``(key, x [B, N, D], emb [B, N, D])`` (all tokens valid)."""
    tokens = torch.cat([x for _, x, _ in parts], dim=1)
    emb = torch.cat([e for _, _, e in parts], dim=1)
    ids = torch.cat([torch.full(x.shape[:2], modality_id(k), dtype=torch.int32, device=x.device)
                     for k, x, _ in parts], dim=1)
    return EncoderInput(tokens, emb, None, ids)


def generate_image_tokens(model: TerraMind, key: str, parts, ctx: Context, grid: Tuple[int, int], *,
                          steps: int, temperature: float, top_k, top_p: float, seed: int,
                          first_step: int, low_precision: bool = False) -> sampling.RoarResult:
    """ROAR-decode the ``rows x cols`` tokens of image target ``key`` from the encoder context ``ctx``.

    Decoder queries are ``mask_token`` + the target's position/modality embedding with full
    self-attention among the positions decoded in a step. With several steps, the tokens decoded so
    far join the encoder input (``parts`` + the target's token embedding), so later steps condition on
    them (the model needs an encoder embedding for ``key``). ``low_precision``: bf16 transformer and the
    inverse-CDF draw (``sampling.sample_tokens``).
    """
    rows, cols = grid
    batch = ctx.context.shape[0]
    dec = model.decoder_embeddings[key]
    queries = model.mask_token + (dec.grid_pos_emb(rows, cols) + dec.mod_emb)  # [1, N, D]

    def logits_fn(tokens: torch.Tensor, decoded: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        with transformer_arithmetic(ctx.context.device, low_precision):
            context = ctx
            if bool(decoded.any()):
                done = decoded.nonzero()[:, 0]
                x, emb = embed_token_grid(model.encoder_embeddings[key], tokens, rows, cols)
                extra = (key, x[:, done], emb.expand(batch, -1, -1)[:, done])
                context = model.encode(encoder_input(list(parts) + [extra]))
            y = queries[:, positions].expand(batch, -1, -1)
            y = model.forward_decoder(y, context.context, xa_mask=context.mask)
            return dec.forward_logits(y)  # roar_decode samples in fp32

    budget = sampling.linear_token_budget(steps, rows * cols)
    return sampling.roar_decode(logits_fn, batch, rows * cols, seed=seed, first_step=first_step, budget=budget,
                                temperature=temperature, top_k=top_k, top_p=top_p, device=ctx.context.device,
                                exact=not low_precision)


def generate_sequence_tokens(model: TerraMind, key: str, ctx: Context, tokenizer, *, target_tokens: int,
                             temperature: float, top_k, top_p: float, seed: int,
                             low_precision: bool = False) -> sampling.RoarResult:
    """Autoregressively decode sequence target ``key`` (Coordinates) from the encoder context, as TerraTorch's
    ``autoregressive_step_batched``: an empty ``target_tokens``-long target ``[S_1] [S_1] 0 … [S_2]``, decoding
    starts at ``[S_1]``, at most ``min(max_length, target_tokens - 1)`` new tokens with a causal decoder, stop
    once every row holds the target's final sentinel; then the span merge (``CoordsTokenizer.merge_generated``).
    One schedule step, seeded with ``seed``; the returned ``tokens`` are the merged ids [B, L]."""
    batch, device = ctx.context.shape[0], ctx.context.device
    target = tokenizer.empty_target(batch, target_tokens, device)
    start, eos = target[:, 1:2], int(target[0, -1])
    new_tokens = min(MODALITY_INFO[key].max_length, target_tokens - 1)

    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        with transformer_arithmetic(device, low_precision):
            return model.decode_sequence_logits(key, ids, ctx)[:, -1]

    generator = sampling.sequence_generator(seed, device)
    out = sampling.autoregressive_decode(next_logits, start, max_new_tokens=new_tokens, eos_id=eos, seed=seed,
                                         temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                                         exact=not low_precision)
    noise = generator if device.type == "cpu" else sampling.sequence_generator(seed, "cpu")
    return sampling.RoarResult(tokens=tokenizer.merge_generated(out), noise_generator=noise, steps=1)


def transformer_arithmetic(device: torch.device, low_precision: bool):
    """bf16 autocast for the encoder-decoder when ``low_precision``, else plain fp32 (autocast off)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=low_precision)


class Sampler(nn.Module):
    """Holds the encoder-decoder under ``sampler.model`` (TerraTorch's state-dict layout)."""

    def __init__(self, model: TerraMind):
        super().__init__()
        self.model = model
