"""Per-modality encoder and decoder embeddings of TerraMind 1.0 (state-dict names as the checkpoints).

Every encoder embedding returns ``(x, emb)``: ``x`` [B, N, D] is the content (projected patches or
token embeddings) and ``emb`` [1 or B, N, D] the position + modality embedding; the transformer input
is ``x + emb``. The encoder-decoder keeps them apart because its decoder context re-adds ``emb``.

- ``ImageEncoderEmbedding``      raw pixels [B, C, H, W] -> 16x16 patches -> Linear (no bias)
- ``ImageTokenEncoderEmbedding`` image-tokenizer ids [B, h, w] or [B, h*w] -> Embedding
- ``SequenceEncoderEmbedding``   sequence ids [B, L] (coordinates) -> Embedding, 1-D positions
- ``ImageTokenDecoderEmbedding`` target image positions -> pos + mod embedding; ``forward_logits``
- ``SequenceDecoderEmbedding``   target sequence positions; ``forward_logits``

Decoder embeddings tie ``to_logits.weight`` to ``token_emb.weight`` (one tensor, two state-dict keys).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Linear
from .posemb import resize_grid, sincos_1d, sincos_2d

__all__ = ["ImageEncoderEmbedding", "ImageTokenEncoderEmbedding", "SequenceEncoderEmbedding", "encoder_embedding_for", "decoder_embedding_for",
           "ImageTokenDecoderEmbedding", "SequenceDecoderEmbedding", "MAX_SEQUENCE_POSITIONS"]

INIT_STD = 0.02
MAX_SEQUENCE_POSITIONS = 512  # the 1-D position buffer is always [1, 512, D], whatever max_length says


def _mod_emb(dim: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(1, 1, dim).normal_(std=INIT_STD))


class _GridPositions(nn.Module):
    """Shared logic of image-like embeddings: a square sin-cos grid buffer, resized on demand."""

    def _init_grid(self, dim: int, patch_size: int, image_size: int):
        self.dim_tokens = dim
        self.patch_size = (patch_size, patch_size)
        self.image_size = (image_size, image_size)
        grid = image_size // patch_size
        self.register_buffer("pos_emb", sincos_2d(grid, grid, dim))
        self._resized = {}  # (rows, cols) -> resized pos_emb, cached: the grid buffer is fixed

    def grid_pos_emb(self, rows: int, cols: int) -> torch.Tensor:
        """[1, rows*cols, D] positions for a token grid (bicubic resize of the stored square grid)."""
        if (rows * self.patch_size[0], cols * self.patch_size[1]) == self.image_size:
            return self.pos_emb
        # cache the last resize; the key holds the buffer's identity and contents version (loading or
        # .to() replace or bump it). Inference tensors have no version counter: never cached then.
        version = None if self.pos_emb.is_inference() else self.pos_emb._version
        key = (rows, cols, self.pos_emb.data_ptr(), self.pos_emb.device, self.pos_emb.dtype, version)
        cached = self._resized.get(key)
        if cached is None or torch.is_grad_enabled() or version is None:
            cached = resize_grid(self.pos_emb, rows, cols)
            if not torch.is_grad_enabled() and version is not None:
                self._resized = {key: cached}
        return cached


class ImageEncoderEmbedding(_GridPositions):
    """Raw image -> tokens. Patches are flattened in (ph, pw, channel) order, channel fastest."""

    def __init__(self, num_channels: int, dim: int, patch_size: int = 16, image_size: int = 224):
        super().__init__()
        self.num_channels = num_channels
        self._init_grid(dim, patch_size, image_size)
        self.mod_emb = _mod_emb(dim)
        self.proj = Linear(num_channels * patch_size * patch_size, dim, bias=False)
        nn.init.xavier_uniform_(self.proj.weight)

    @property
    def in_channels(self) -> int:
        """Channels the projection expects (changes when ``bands=`` re-slices it)."""
        return self.proj.in_features // (self.patch_size[0] * self.patch_size[1])

    def forward(self, image: torch.Tensor, input_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if image.ndim != 4:
            raise ValueError(f"Expected an image tensor [B, C, H, W], got shape {tuple(image.shape)}")
        B, C, H, W = image.shape
        ph, pw = self.patch_size
        if C != self.in_channels:
            raise ValueError(f"Expected {self.in_channels} channels, got {C} (input shape {tuple(image.shape)})")
        if H % ph or W % pw:
            raise ValueError(f"Image size {H}x{W} is not a multiple of the patch size {ph}x{pw}")
        rows, cols = H // ph, W // pw
        patches = (image.reshape(B, C, rows, ph, cols, pw).permute(0, 2, 4, 3, 5, 1)
                   .reshape(B, rows * cols, ph * pw * C))
        return self.proj(patches), self.grid_pos_emb(rows, cols) + self.mod_emb


class ImageTokenEncoderEmbedding(_GridPositions):
    """Image-tokenizer ids -> token embeddings (square token grids only, as in TerraTorch)."""

    def __init__(self, vocab_size: int, dim: int, patch_size: int = 16, image_size: int = 224):
        super().__init__()
        self.vocab_size = vocab_size
        self._init_grid(dim, patch_size, image_size)
        self.mod_emb = _mod_emb(dim)
        self.token_emb = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.token_emb.weight, std=INIT_STD)

    def forward(self, ids: torch.Tensor, input_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        B = ids.shape[0]
        ids = ids.reshape(B, -1)
        side = math.isqrt(ids.shape[1])
        if side * side != ids.shape[1]:
            raise ValueError(f"Image tokens must form a square grid, got {ids.shape[1]} tokens")
        return self.token_emb(ids.long()), self.grid_pos_emb(side, side) + self.mod_emb


def _sequence_positions(pos_emb: torch.Tensor, mask: Optional[torch.Tensor], length: int, limit: int = None):
    """Position embeddings of a sequence; with a mask (True = not part of it), valid tokens count 0, 1, ..."""
    if mask is None:
        return pos_emb[:, :length]
    pos_id = (~mask).long().cumsum(dim=1) - 1
    pos_id = pos_id.masked_fill(mask, 0)
    if limit is not None:
        pos_id = pos_id.masked_fill(pos_id >= limit, 0)
    pos = pos_emb[0][pos_id]  # [B, L, D]
    return pos.masked_fill(mask.unsqueeze(-1), 0.0)


class SequenceEncoderEmbedding(nn.Module):
    """Sequence ids [B, L] (coordinates) -> token embeddings with 1-D sin-cos positions."""

    def __init__(self, vocab_size: int, max_length: int, dim: int, padding_idx: int = 0):
        super().__init__()
        self.vocab_size, self.max_length, self.dim_tokens = vocab_size, max_length, dim
        self.register_buffer("pos_emb", sincos_1d(MAX_SEQUENCE_POSITIONS, dim))
        self.mod_emb = _mod_emb(dim)
        self.token_emb = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        nn.init.normal_(self.token_emb.weight, std=INIT_STD)

    def forward(self, ids: torch.Tensor, input_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if ids.ndim != 2:
            raise ValueError(f"Expected sequence ids [B, L], got shape {tuple(ids.shape)}")
        if ids.shape[1] > MAX_SEQUENCE_POSITIONS:
            raise ValueError(f"Sequences longer than {MAX_SEQUENCE_POSITIONS} tokens are not supported")
        pos = _sequence_positions(self.pos_emb, input_mask, ids.shape[1])
        return self.token_emb(ids.long()), pos + self.mod_emb


class ImageTokenDecoderEmbedding(ImageTokenEncoderEmbedding):
    """Decoder side of an image-token modality: target position embeddings and the logits head."""

    def __init__(self, vocab_size: int, dim: int, patch_size: int = 16, image_size: int = 224):
        super().__init__(vocab_size, dim, patch_size, image_size)
        self.to_logits = _tied_logits(self.token_emb)

    def forward_embed(self, num_tokens: int) -> torch.Tensor:
        """[1, num_tokens, D] position + modality embedding of a square target grid."""
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"Image tokens must form a square grid, got {num_tokens} tokens")
        return self.grid_pos_emb(side, side) + self.mod_emb

    def forward_logits(self, y: torch.Tensor) -> torch.Tensor:
        return F.linear(y, self.to_logits.weight)


class SequenceDecoderEmbedding(SequenceEncoderEmbedding):
    """Decoder side of a sequence modality (coordinates): positions over the target tokens, logits head."""

    def __init__(self, vocab_size: int, max_length: int, dim: int, padding_idx: int = 0):
        super().__init__(vocab_size, max_length, dim, padding_idx)
        self.to_logits = _tied_logits(self.token_emb)

    def forward_embed(self, ids: torch.Tensor, target_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(token embeddings, position + modality embedding); positions count the target tokens
        (``target_mask`` False) 0, 1, ... and wrap to 0 past ``max_length`` as TerraTorch does."""
        pos = _sequence_positions(self.pos_emb, target_mask, ids.shape[1], limit=self.max_length)
        return self.token_emb(ids.long()), pos + self.mod_emb

    def forward_logits(self, y: torch.Tensor) -> torch.Tensor:
        return F.linear(y, self.to_logits.weight)


def _tied_logits(token_emb: nn.Embedding) -> nn.Linear:
    """The logits head shares its weight with the token embedding, as in the checkpoints."""
    head = nn.Linear(token_emb.embedding_dim, token_emb.num_embeddings, bias=False)
    head.weight = token_emb.weight
    return head


def encoder_embedding_for(key: str, dim: int, image_size: int = 224) -> nn.Module:
    """The encoder embedding module of a known modality key (see ``modalities.MODALITY_INFO``)."""
    from .modalities import MODALITY_INFO

    info = MODALITY_INFO[key]
    if info.kind == "image":
        return ImageEncoderEmbedding(info.channels, dim, info.patch_size, image_size)
    if info.kind == "image_tokens":
        return ImageTokenEncoderEmbedding(info.vocab_size, dim, info.patch_size, image_size)
    return SequenceEncoderEmbedding(info.vocab_size, info.max_length, dim)


def decoder_embedding_for(key: str, dim: int, image_size: int = 224) -> nn.Module:
    """The decoder embedding of a token modality key (``tok_*@224`` or ``coords``); raw keys have none."""
    from .modalities import MODALITY_INFO

    info = MODALITY_INFO[key]
    if info.kind == "image_tokens":
        return ImageTokenDecoderEmbedding(info.vocab_size, dim, info.patch_size, image_size)
    if info.kind == "sequence":
        return SequenceDecoderEmbedding(info.vocab_size, info.max_length, dim)
    raise ValueError(f"{key} is a raw input modality and cannot be decoded; outputs are token modalities")
