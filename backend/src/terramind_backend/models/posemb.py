"""Fixed sin-cos position embeddings of TerraMind and their resizing for other image sizes.

Conventions that the checkpoints depend on (facts §3.1, §12.1):
- 2-D: for the token at grid row r, column c (sequence index r*W + c) the vector is
  [sin(r w), cos(r w), sin(c w), cos(c w)], each part D/4 long, w_k = 10000^(-k/(D/4)).
  The row comes first (TerraTorch calls it "w").
- 1-D: [sin(n w), cos(n w)], w_k = 10000^(-k/(D/2)).
- Other grids: the stored (square) grid is resized bicubically (align_corners=False), never recomputed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TEMPERATURE = 10000.0


def _frequencies(count: int) -> torch.Tensor:
    return 1.0 / (TEMPERATURE ** (torch.arange(count, dtype=torch.float32) / count))


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """[1, h*w, dim] 2-D sin-cos embedding of an h x w token grid.

    Token k has slow index k // h in [0, w) (first half of the channels) and fast index k % h
    (second half), exactly as TerraTorch builds it; for the square grids in use that is (row, col).
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embeddings need a dimension divisible by 4, got {dim}")
    omega = _frequencies(dim // 4)
    slow = torch.arange(w, dtype=torch.float32).repeat_interleave(h)
    fast = torch.arange(h, dtype=torch.float32).repeat(w)
    out_s = slow[:, None] * omega[None]
    out_f = fast[:, None] * omega[None]
    return torch.cat([out_s.sin(), out_s.cos(), out_f.sin(), out_f.cos()], dim=1)[None]


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """[1, length, dim] 1-D sin-cos embedding."""
    if dim % 2:
        raise ValueError(f"1-D sin-cos position embeddings need an even dimension, got {dim}")
    out = torch.arange(length, dtype=torch.float32)[:, None] * _frequencies(dim // 2)[None]
    return torch.cat([out.sin(), out.cos()], dim=1)[None]


def resize_grid(pos_emb: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Bicubically resize a square [1, n*n, D] grid embedding to [1, rows*cols, D]."""
    _, count, dim = pos_emb.shape
    side = int(count ** 0.5)
    grid = pos_emb.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
