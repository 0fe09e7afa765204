"""Patched diffusion UNet of the TerraMind 1.0 DiVAE tokenizers (TerraTorch ``unet_patched``).

A guided-diffusion UNet (Dhariwal & Nichol 2021; https://arxiv.org/abs/2105.05233) run on a 4x4-patchified
image with the FSQ codes upsampled (nearest) and concatenated as extra channels ("patched UNet", cf.
https://arxiv.org/abs/2207.04316). It predicts the clean sample x0. Architecture: 256 base channels, multipliers
(1, 2, 2, 2), 3 ResBlocks per level, single-head attention at downsampling factors 4 and 8, no scale-shift norm.

State-dict keys follow TerraTorch (``time_embed``, ``input_blocks.I.J``, ``middle_block.J``,
``output_blocks.I.J``, ``out``). The forward pass is written for CPU inference speed: GroupNorm+SiLU in place,
the timestep MLP evaluated once per step for the whole batch, fused scaled-dot-product attention, in-place
residual adds, and no dtype round trips.
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 4           # pixels per side folded into channels before the UNet
DOWNSAMPLINGS = 3   # len(channel_mult) - 1: image sizes must be multiples of PATCH * 2**DOWNSAMPLINGS = 32


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[N, dim]`` of timesteps ``[N]``: cos first, then sin (guided-diffusion order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)


def _norm_silu(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    return F.silu(F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps), inplace=True)


def patchify(x: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C*p*p, H/p, W/p]`` with channel order (c, ph, pw), c slowest."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * patch * patch, h // patch, w // patch)


def unpatchify(x: torch.Tensor, channels: int, patch: int = PATCH) -> torch.Tensor:
    """Inverse of ``patchify``."""
    b, _, nh, nw = x.shape
    x = x.reshape(b, channels, patch, patch, nh, nw).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, channels, nh * patch, nw * patch)


class ResBlock(nn.Module):
    """GN-SiLU-Conv, add the projected timestep embedding, GN-SiLU-(Dropout)-Conv, plus a (1x1) skip."""

    def __init__(self, channels: int, emb_channels: int, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(_norm(out_channels), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb_silu: torch.Tensor) -> torch.Tensor:
        """``emb_silu`` is SiLU(timestep embedding), shared by every block of the step."""
        h = self.in_layers[2](_norm_silu(self.in_layers[0], x))
        h += self.emb_layers[1](emb_silu)[:, :, None, None]
        h = self.out_layers[3](_norm_silu(self.out_layers[0], h))
        return h.add_(self.skip_connection(x))


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention with the legacy qkv channel split (q, k, v consecutive chunks)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        qkv = self.qkv(F.group_norm(flat, self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps))
        # [B, 3C, T] -> three [B, 1, T, C] (one head); scale 1/sqrt(C) equals guided-diffusion's C^-1/4 on q and k.
        q, k, v = qkv.transpose(1, 2).unsqueeze(1).split(c, dim=-1)
        attended = F.scaled_dot_product_attention(q, k, v)       # [B, 1, T, C]
        out = self.proj_out(attended.squeeze(1).transpose(1, 2))
        return out.add_(flat).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """One entry of ``input_blocks``/``output_blocks``: layers applied in order, ResBlocks also get the step."""

    def forward(self, x: torch.Tensor, emb_silu: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb_silu) if isinstance(layer, ResBlock) else layer(x)
        return x


class PatchedUNet(nn.Module):
    """x0-predicting UNet on 4x4 patches: ``(x_t [B, C, H, W], t, codes [B, D, h, w]) -> x0 [B, C, H, W]``."""

    def __init__(self, channels: int, cond_channels: int, model_channels: int = 256,
                 channel_mult=(1, 2, 2, 2), num_res_blocks: int = 3, attention_resolutions=(4, 8)):
        super().__init__()
        self.channels = channels
        self.model_channels = model_channels
        emb_dim = 4 * model_channels
        in_channels = channels * PATCH * PATCH + cond_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        ch = model_channels * channel_mult[0]
        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(in_channels, ch, 3, padding=1)])])
        skip_channels = [ch]
        factor = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: List[nn.Module] = [ResBlock(ch, emb_dim, model_channels * mult)]
                ch = model_channels * mult
                if factor in attention_resolutions:
                    layers.append(AttentionBlock(ch))
                self.input_blocks.append(Stage(layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch)]))
                skip_channels.append(ch)
                factor *= 2

        self.middle_block = Stage([ResBlock(ch, emb_dim), AttentionBlock(ch), ResBlock(ch, emb_dim)])

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, model_channels * mult)]
                ch = model_channels * mult
                if factor in attention_resolutions:
                    layers.append(AttentionBlock(ch))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    factor //= 2
                self.output_blocks.append(Stage(layers))

        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, channels * PATCH * PATCH, 3, padding=1))

    def step_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """SiLU(time_embed(t)) ``[N, 4*model_channels]`` for timesteps ``[N]`` (N = 1 broadcasts over the batch)."""
        return F.silu(self.time_embed(timestep_embedding(t, self.model_channels)))

    def forward(self, sample: torch.Tensor, timestep: "torch.Tensor | int", codes: torch.Tensor,
                channels_last: bool = False) -> torch.Tensor:
        """x0 prediction. ``channels_last`` runs the convolutions on NHWC activations, which oneDNN's bf16
        (AMX) kernels prefer; for float32 it brings nothing on CPU."""
        b, c, height, width = sample.shape
        if height % (PATCH << DOWNSAMPLINGS) or width % (PATCH << DOWNSAMPLINGS):
            raise ValueError(f"The diffusion decoder needs image sides that are multiples of "
                             f"{PATCH << DOWNSAMPLINGS}, got {height}x{width}")
        nh, nw = height // PATCH, width // PATCH
        # Fold 4x4 patches into channels and append the nearest-upsampled condition.
        x = patchify(sample)
        x = torch.cat([x, F.interpolate(codes.to(x.dtype), size=(nh, nw), mode="nearest")], dim=1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        t = torch.as_tensor(timestep, device=sample.device).reshape(-1)
        emb = self.step_embedding(t)

        skips = []
        for stage in self.input_blocks:
            x = stage(x, emb)
            skips.append(x)
        x = self.middle_block(x, emb)
        for stage in self.output_blocks:
            x = stage(torch.cat([x, skips.pop()], dim=1), emb)
        return unpatchify(self.out[2](_norm_silu(self.out[0], x)), c)
