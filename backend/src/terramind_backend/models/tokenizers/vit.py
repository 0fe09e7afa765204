"""ViT-B encoder and decoder of the TerraMind 1.0 tokenizers (TerraTorch presets ``vit_b_enc``/``vit_b_dec``).

Both are plain pre-norm ViT-B stacks (768 wide, 12 blocks, 12 heads, LayerNorm eps 1e-6 with bias) on a 16-pixel
patch grid, with a frozen 2-D sin-cos position grid stored as a ``[1, 768, 16, 16]`` parameter that is resized
bicubically to the actual token grid, and a residual "post-MLP" (LayerNorm -> Linear -> Tanh -> Linear) at the
end (ViT-VQGAN). State-dict keys follow TerraTorch (``proj``, ``pos_emb``, ``blocks.N.{norm1,attn,norm2,mlp}``,
``norm_mlp``, ``post_mlp``, ``out_proj``). Token grids may be non-square.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Linear as FusedLinear

PATCH = 16


def sincos_grid(n: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """The ``[1, dim, n, n]`` sin-cos grid TerraTorch initialises ``pos_emb`` with (the checkpoint overrides it).

    Channel quarters are sin/cos of the first grid axis, then sin/cos of the second one.
    """
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    coords = torch.arange(n, dtype=torch.float32)
    first = coords[:, None, None] * omega          # varies along the first spatial axis
    second = coords[None, :, None] * omega         # varies along the second one
    first, second = first.expand(n, n, quarter), second.expand(n, n, quarter)
    grid = torch.cat([first.sin(), first.cos(), second.sin(), second.cos()], dim=-1)
    return grid.permute(2, 0, 1).unsqueeze(0).contiguous()


# Two execution modes with the same parameters. "exact" (encoder) keeps TerraTorch's op order and kernels
# (F.linear, softmax(q·kᵀ·s)·v), so FSQ rounding sees bit-identical latents and tokens match. "fused" (decoder)
# uses scaled_dot_product_attention and the oneDNN linear path of ..layers, with GELU and the residual additions
# fused into the GEMMs; it agrees to ~1e-6 relative.


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type = nn.GELU, fused: bool = False):
        super().__init__()
        linear = FusedLinear if fused else nn.Linear
        self.fc1 = linear(dim, hidden)
        self.act = act()
        self.fc2 = linear(hidden, dim)
        self.fused = fused

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + fc2(act(fc1(x)))``."""
        if not self.fused:
            return residual + self.fc2(self.act(self.fc1(x)))
        if isinstance(self.act, nn.GELU) and self.act.approximate == "none":
            h = self.fc1(x, gelu=True)
        else:
            h = self.act(self.fc1(x))
        return self.fc2(h, residual=residual)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, fused: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.fused = fused
        linear = FusedLinear if fused else nn.Linear
        self.qkv = linear(dim, dim * 3)
        self.proj = linear(dim, dim)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + proj(attention(x))``."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
            return self.proj(out, residual=residual)
        out = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1) @ v
        return residual + self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, fused: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), fused=fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.norm1(x), residual=x)
        return self.mlp(self.norm2(x), residual=x)


class _ViTStack(nn.Module):
    """Shared body: frozen position grid, blocks and the residual post-MLP."""

    def __init__(self, dim: int, depth: int, num_heads: int, resolution: int, fused: bool):
        super().__init__()
        self.dim = dim
        self.pos_emb = nn.Parameter(sincos_grid(resolution // PATCH, dim), requires_grad=False)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, fused=fused) for _ in range(depth)])
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.post_mlp = Mlp(dim, 4 * dim, act=nn.Tanh, fused=fused)

    def position_tokens(self, nh: int, nw: int) -> torch.Tensor:
        grid = self.pos_emb
        if grid.shape[-2:] != (nh, nw):
            grid = F.interpolate(grid, size=(nh, nw), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def run(self, tokens: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        x = tokens + self.position_tokens(nh, nw)
        x = self.blocks(x)
        return self.post_mlp(self.norm_mlp(x), residual=x)


class ViTEncoder(_ViTStack):
    """``[B, C, H, W]`` image (H, W multiples of 16) -> ``[B, 768, H/16, W/16]`` features."""

    def __init__(self, in_channels: int, dim: int = 768, depth: int = 12, num_heads: int = 12,
                 resolution: int = 256):
        super().__init__(dim, depth, num_heads, resolution, fused=False)
        self.in_channels = in_channels
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        nh, nw = h // PATCH, w // PATCH
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        x = self.run(tokens, nh, nw)
        return x.transpose(1, 2).reshape(b, self.dim, nh, nw)


class ViTDecoder(_ViTStack):
    """``[B, 768, h, w]`` features -> ``[B, out_channels, 16h, 16w]`` (per-token (c, ph, pw) patches)."""

    def __init__(self, out_channels: int, dim: int = 768, depth: int = 12, num_heads: int = 12,
                 resolution: int = 256):
        super().__init__(dim, depth, num_heads, resolution, fused=True)
        self.out_channels = out_channels
        self.out_proj = nn.Linear(dim, out_channels * PATCH * PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, nh, nw = x.shape
        x = self.run(x.flatten(2).transpose(1, 2), nh, nw)
        x = self.out_proj(x)                                   # [B, nh*nw, C*16*16]
        x = x.reshape(b, nh, nw, self.out_channels, PATCH, PATCH)
        return x.permute(0, 3, 1, 4, 2, 5).reshape(b, self.out_channels, nh * PATCH, nw * PATCH)
