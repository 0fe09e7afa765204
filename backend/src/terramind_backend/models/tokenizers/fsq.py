"""Finite Scalar Quantization (FSQ, https://arxiv.org/abs/2309.15505) as TerraMind 1.0 uses it.

Each of the ``len(levels)`` latent channels is squashed with a **sigmoid** (not tanh) and rounded to one of
``L_i`` values in [0, 1]. A token is the mixed-radix number of those per-channel levels, first channel least
significant. There are no learned parameters; the buffers are non-persistent, so they never appear in a
state dict (TerraTorch's layout).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn


def parse_levels(levels: "str | Sequence[int]") -> Tuple[int, ...]:
    """``"8-8-8-6-5"`` or ``[8, 8, 8, 6, 5]`` -> ``(8, 8, 8, 6, 5)``."""
    if isinstance(levels, str):
        levels = [int(part) for part in levels.split("-")]
    levels = tuple(int(level) for level in levels)
    if not levels or min(levels) < 2:
        raise ValueError(f"FSQ levels must be integers >= 2, got {levels!r}")
    return levels


class FiniteScalarQuantizer(nn.Module):
    """Quantize ``[B, D, h, w]`` latents (D = number of levels) to codes in [0, 1] and integer tokens."""

    def __init__(self, levels: "str | Sequence[int]"):
        super().__init__()
        self.levels = parse_levels(levels)
        basis = [1]
        for level in self.levels[:-1]:
            basis.append(basis[-1] * level)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int32), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int32), persistent=False)
        self.codebook_size = basis[-1] * self.levels[-1]

    @property
    def dim(self) -> int:
        return len(self.levels)

    def _channel_view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1)

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z [B, D, h, w]`` -> ``(codes [B, D, h, w] in [0, 1], loss [1] (always 0), tokens [B, h, w] int32)``."""
        if z.dim() != 4 or z.shape[1] != self.dim:
            raise ValueError(f"FSQ expects latents [B, {self.dim}, h, w], got {tuple(z.shape)}")
        steps = self._channel_view(self._levels - 1)
        number = torch.round(torch.sigmoid(z) * steps)
        codes = number / steps
        # Exact in float: every summand is an integer below 2**24.
        tokens = (number * self._channel_view(self._basis)).sum(dim=1).to(torch.int32)
        loss = torch.zeros(1, device=z.device)
        return codes, loss, tokens

    def indices_to_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, h, w]`` (any integer dtype) -> codes ``[B, D, h, w]`` in [0, 1]."""
        if tokens.dim() != 3:
            raise ValueError(f"Tokens must be shaped [B, h, w], got {tuple(tokens.shape)}")
        if tokens.is_floating_point():
            raise TypeError(f"Tokens must be integers, got dtype {tokens.dtype}")
        tokens = tokens.long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.codebook_size):
            raise ValueError(f"Token ids must lie in [0, {self.codebook_size - 1}], "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        digits = (tokens.unsqueeze(1) // self._channel_view(self._basis)) % self._channel_view(self._levels)
        return digits / self._channel_view(self._levels - 1)
