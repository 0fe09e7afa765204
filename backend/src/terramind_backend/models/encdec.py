"""The TerraMind 1.0 encoder-decoder, state-dict compatible with the official checkpoints.

State-dict keys (identical to ``TerraMind_v1_<size>.pt``): ``mask_token``,
``encoder_embeddings.<key>.*``, ``decoder_embeddings.<key>.*``, ``encoder.<i>.*``, ``encoder_norm.*``,
``decoder_proj_context.*``, ``decoder.<i>.*``, ``decoder_norm.*``. ``<key>`` are the internal modality
keys of ``modalities.MODALITY_INFO`` (``untok_sen2l2a@224``, ``tok_lulc@224``, ``coords`` ...).
Decoder and encoder embeddings of the same key share one ``mod_emb`` parameter.

API for generation / TiM (inference only; no training losses):

    model = TerraMind(["untok_sen2l2a@224"], ["tok_lulc@224"], **transformer_config("tiny"))
    load_encdec_weights(model, state_dict)              # models.loading: official file -> model

    enc = model.embed_inputs({"untok_sen2l2a@224": image})        # EncoderInput(tokens, emb, mask, mod_mask)
    ctx = model.encode(enc)                                        # Context(context, mask)
    logits = model.decode_image_logits("tok_lulc@224", ctx, positions=None, num_tokens=196)  # [B, 196, V]

- ``embed_inputs(inputs)``: ``inputs`` maps encoder keys to a tensor (all tokens are inputs) or to a
  dict ``{"tensor": t, "input_mask": m}`` (m [B, N] bool, True = not an input). Valid tokens are moved
  to the front in their original order and the sequence is cut to the largest valid count in the
  batch, as TerraTorch's generation sampler does; masked slots are zeroed. Image-token inputs take ids
  [B, h, w] or [B, h*w]; sequence inputs ids [B, L].
- ``forward_encoder(x, mask)``: encoder blocks + ``encoder_norm`` (x = tokens + emb).
- ``encode(enc)``: ``Context(context = decoder_proj_context(encoder(x)) + emb, mask)``; ``mask`` is the
  [B, 1, N] key mask (True = padding) or None, reused for cross-attention.
- ``decode_image_logits(key, ctx, positions, num_tokens)``: decoder queries are ``mask_token`` +
  position/modality embedding of target ``key`` at ``positions`` ([B, M] long indices into the
  ``num_tokens`` grid; None = all, in order); full self-attention among them; returns logits [B, M, V].
- ``decode_sequence_logits(key, ids, ctx, target_mask=None)``: autoregressive step for sequence targets
  (coords): queries ``token_emb(ids) + emb`` with a causal mask; returns logits [B, L, V].
- ``forward_decoder(y, context, xa_mask, sa_mask)``: decoder blocks + ``decoder_norm`` for custom use.
- ``modality_info``: {key: ModalityInfo} of every embedded modality (ids for masks).

``transformer_config(size)`` gives the per-size numbers (dim, depths, heads, MLP type, biases) of
``catalog.BACKBONES``.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, NamedTuple, Optional, Union

import torch
from torch import nn

from ..catalog import BACKBONES
from .embeddings import decoder_embedding_for, encoder_embedding_for
from .layers import Block, DecoderBlock, LayerNorm, init_weights_mae
from .modalities import MODALITY_INFO, ModalityInfo, modality_id

__all__ = ["transformer_config", "TerraMind", "EncoderInput", "Context"]

def transformer_config(size: str) -> dict:
    """Keyword arguments for ``TerraMind``/``TerraMindViT`` of one size, from its ``catalog.BACKBONES`` row."""
    try:
        row = BACKBONES[size]
    except KeyError:
        raise ValueError(f"Unknown TerraMind size {size!r}; choose one of {', '.join(BACKBONES)}") from None
    # tiny/small: plain GELU MLP with biases; base/large: SwiGLU (SiLU) without biases
    return dict(dim=row.dim, encoder_depth=row.encoder_depth, decoder_depth=row.decoder_depth,
                num_heads=row.num_heads, gated_mlp=row.gated_mlp, qkv_bias=row.bias, proj_bias=row.bias,
                mlp_bias=row.bias, mlp_ratio=4.0, act_layer=nn.SiLU if row.gated_mlp else nn.GELU)


class EncoderInput(NamedTuple):
    tokens: torch.Tensor              # [B, N, D] content (zero at padding)
    emb: torch.Tensor                 # [B, N, D] position + modality embedding (zero at padding)
    mask: Optional[torch.Tensor]      # [B, 1, N] bool, True = padding; None when nothing is padded
    mod_mask: torch.Tensor            # [B, N] int modality id per token (-1 at padding)


class Context(NamedTuple):
    context: torch.Tensor             # [B, N, D] decoder_proj_context(encoder(x)) + emb
    mask: Optional[torch.Tensor]      # [B, 1, N] bool cross-attention key mask (True = padding) or None


InputValue = Union[torch.Tensor, Mapping[str, torch.Tensor]]


class TerraMind(nn.Module):
    """Encoder-decoder TerraMind: embeddings per modality, encoder, decoder (see module docstring).

    Args:
        encoder_modalities: internal keys to embed as inputs, or a mapping key -> embedding module.
        decoder_modalities: token keys (``tok_*@224``, ``coords``) that can be decoded.
        dim, encoder_depth, decoder_depth, num_heads, mlp_ratio, qkv_bias, proj_bias, mlp_bias,
        gated_mlp, act_layer: transformer numbers (``transformer_config(size)``).
        image_size: default image size of the position grids (224).
    """

    def __init__(self, encoder_modalities: Union[Iterable[str], Mapping[str, nn.Module]],
                 decoder_modalities: Iterable[str] = (), *, dim: int = 768, encoder_depth: int = 12,
                 decoder_depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_bias: bool = True, mlp_bias: bool = True, gated_mlp: bool = False,
                 act_layer=nn.GELU, image_size: int = 224):
        super().__init__()
        self.dim = dim
        if isinstance(encoder_modalities, Mapping):
            enc = dict(encoder_modalities)
        else:
            enc = {key: encoder_embedding_for(key, dim, image_size) for key in encoder_modalities}
        dec = {key: decoder_embedding_for(key, dim, image_size) for key in decoder_modalities}
        self.encoder_embeddings = nn.ModuleDict(enc)
        self.decoder_embeddings = nn.ModuleDict(dec)
        block = dict(dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_bias=proj_bias,
                     mlp_bias=mlp_bias, act_layer=act_layer, gated_mlp=gated_mlp)
        self.encoder = nn.ModuleList([Block(**block) for _ in range(encoder_depth)])
        self.encoder_norm = LayerNorm(dim)
        self.decoder_proj_context = nn.Linear(dim, dim)  # with bias in every size
        self.decoder = nn.ModuleList([DecoderBlock(**block) for _ in range(decoder_depth)])
        self.decoder_norm = LayerNorm(dim)
        self.mask_token = nn.Parameter(torch.empty(1, 1, dim).normal_(std=0.02))
        init_weights_mae(self)
        for key in set(self.encoder_embeddings) & set(self.decoder_embeddings):  # one shared mod_emb
            self.decoder_embeddings[key].mod_emb = self.encoder_embeddings[key].mod_emb

    @property
    def modality_info(self) -> Dict[str, ModalityInfo]:
        keys = list(self.encoder_embeddings) + list(self.decoder_embeddings)
        return {k: MODALITY_INFO[k] for k in keys if k in MODALITY_INFO}

    # ---------------------------------------------------------------- encoder
    def embed_inputs(self, inputs: Mapping[str, InputValue]) -> EncoderInput:
        """Embed and concatenate encoder inputs (dict order); see the module docstring."""
        tokens, embs, masks, ids = [], [], [], []
        for key, value in inputs.items():
            if key not in self.encoder_embeddings:
                raise KeyError(f"No encoder embedding for {key!r}; this model embeds {list(self.encoder_embeddings)}")
            tensor, mask = (value["tensor"], value.get("input_mask")) if isinstance(value, Mapping) else (value, None)
            x, emb = self.encoder_embeddings[key](tensor, input_mask=mask)
            B, N, _ = x.shape
            tokens.append(x)
            embs.append(emb.expand(B, N, -1))
            masks.append(torch.zeros(B, N, dtype=torch.bool, device=x.device) if mask is None else mask.reshape(B, N))
            ids.append(torch.full((B, N), modality_id(key), dtype=torch.int32, device=x.device))
        tokens, emb = torch.cat(tokens, dim=1), torch.cat(embs, dim=1)
        mask, mod_mask = torch.cat(masks, dim=1), torch.cat(ids, dim=1)
        if not bool(mask.any()):
            return EncoderInput(tokens, emb, None, mod_mask)
        # valid tokens first (stable), cut to the largest valid count in the batch, zero the padding
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, : int((~mask).sum(1).max())]
        gather = order.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        tokens, emb = tokens.gather(1, gather), emb.gather(1, gather)
        mask, mod_mask = mask.gather(1, order), mod_mask.gather(1, order)
        pad = mask.unsqueeze(-1)
        tokens, emb = tokens.masked_fill(pad, 0.0), emb.masked_fill(pad, 0.0)
        mod_mask = mod_mask.masked_fill(mask, -1)
        # every row may be full after the cut (same valid count everywhere): then no mask is needed
        return EncoderInput(tokens, emb, mask.unsqueeze(1) if bool(mask.any()) else None, mod_mask)

    def forward_encoder(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.encoder:
            x = block(x, mask)
        return self.encoder_norm(x)

    def encode(self, enc: Union[EncoderInput, Mapping[str, InputValue]]) -> Context:
        """Run the encoder and project its output into the decoder's cross-attention context."""
        if not isinstance(enc, EncoderInput):
            enc = self.embed_inputs(enc)
        x = self.forward_encoder(enc.tokens + enc.emb, enc.mask)
        return Context(self.decoder_proj_context(x) + enc.emb, enc.mask)

    # ---------------------------------------------------------------- decoder
    def forward_decoder(self, y: torch.Tensor, context: torch.Tensor, xa_mask: Optional[torch.Tensor] = None,
                        sa_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.decoder:
            y = block(y, context, sa_mask=sa_mask, xa_mask=xa_mask)
        return self.decoder_norm(y)

    def decode_image_logits(self, key: str, ctx: Context, positions: Optional[torch.Tensor] = None,
                            num_tokens: int = 196) -> torch.Tensor:
        """Logits [B, M, V] of image-token target ``key`` at ``positions`` ([B, M]; None = all)."""
        emb_mod = self._decoder_embedding(key)
        B = ctx.context.shape[0]
        emb = emb_mod.forward_embed(num_tokens).expand(B, -1, -1)
        if positions is not None:
            emb = emb.gather(1, positions.unsqueeze(-1).expand(-1, -1, emb.shape[-1]))
        y = self.mask_token + emb
        y = self.forward_decoder(y, ctx.context, xa_mask=ctx.mask)
        return emb_mod.forward_logits(y)

    def decode_sequence_logits(self, key: str, ids: torch.Tensor, ctx: Context,
                               target_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Causal decoder pass for a sequence target: logits [B, L, V] for ids [B, L]."""
        emb_mod = self._decoder_embedding(key)
        B, L = ids.shape
        if target_mask is None:
            target_mask = torch.zeros(B, L, dtype=torch.bool, device=ids.device)
        x, emb = emb_mod.forward_embed(ids, target_mask)
        causal = torch.ones(L, L, dtype=torch.bool, device=ids.device).triu(1).expand(B, L, L)
        y = self.forward_decoder(x + emb, ctx.context, xa_mask=ctx.mask, sa_mask=causal)
        return emb_mod.forward_logits(y)

    def _decoder_embedding(self, key: str) -> nn.Module:
        try:
            return self.decoder_embeddings[key]
        except KeyError:
            raise KeyError(f"No decoder embedding for {key!r}; this model decodes {list(self.decoder_embeddings)}") from None
