"""Transformer layers of TerraMind 1.0 with the checkpoint's parameter names.

Speed (CPU inference, measured in bench/bench_embeddings.py):
- Attention runs through ``F.scaled_dot_product_attention`` (one fused kernel instead of matmul,
  softmax, matmul); masks keep TerraTorch's meaning (bool, True = blocked) and its numerics (blocked
  scores become -finfo.max rather than -inf, so a fully blocked row averages instead of giving NaN).
- ``Linear`` runs fp32 CPU inference through oneDNN (``torch.ops.mkldnn._linear_pointwise``), which
  fuses the MLP's exact GELU and the residual additions into the GEMMs (fewer passes over memory and
  fewer parallel regions, which matters most on a busy multi-threaded CPU); it falls back
  to ``F.linear`` when autograd is recording, under autocast (bf16), on other devices/dtypes, or
  when oneDNN is missing.

Reference arithmetic (``set_reference_arithmetic``, off by default): the fused kernels above round
differently from TerraTorch, which computes attention as scores = q·kᵀ · scale → masked_fill →
softmax → ·v and every projection as a plain ``F.linear`` followed by separate GELU / residual
additions. With the flag on, these layers evaluate in that order, so an fp32 forward reproduces
TerraTorch's rounding (bit for bit on the same torch build). Fine-tuned segmentation turns it on: an
argmax over near-tied logits must give TerraTorch's classes. Embeddings and generation keep the
faster default path (differences there stay within ~1e-6 relative).
"""
from __future__ import annotations

from typing import Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Linear", "LayerNorm", "Attention", "CrossAttention", "Mlp", "GatedMlp", "Block", "DecoderBlock",
           "init_weights_mae", "set_reference_arithmetic", "uses_reference_arithmetic"]


def _probe_onednn() -> bool:
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x = torch.ones(2, 4)
        w = torch.ones(3, 4)
        fused = op.binary(x, torch.ones(2, 3), w, None, "add")
        return (bool(torch.backends.mkldnn.is_available()) and op(x, w, None, "none", [], "").shape == (2, 3)
                and bool((fused == 5).all()))
    except Exception:  # CPU builds without oneDNN, or the private op changed
        return False


_ONEDNN = _probe_onednn()


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters) with a oneDNN inference path and an optional fused GELU."""

    reference = False  # True: always plain F.linear, then GELU / residual (see the module docstring)

    def _fast(self, x: torch.Tensor) -> bool:
        return (not self.reference and _ONEDNN and torch.backends.mkldnn.enabled and x.device.type == "cpu"
                and x.dtype == torch.float32
                and self.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
                and not (torch.is_grad_enabled() and (self.weight.requires_grad or x.requires_grad)))

    def forward(self, x: torch.Tensor, gelu: bool = False, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``linear(x)``, then GELU (``gelu=True``) or ``+ residual`` (fused into the GEMM on the fast path)."""
        if self._fast(x):
            flat = x.reshape(-1, x.shape[-1])
            if residual is not None and not gelu:
                out = torch.ops.mkldnn._linear_pointwise.binary(
                    flat, residual.reshape(-1, self.out_features), self.weight, self.bias, "add")
            else:
                out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias,
                                                         "gelu" if gelu else "none", [], "none" if gelu else "")
                if residual is not None:
                    out = out + residual.reshape(-1, self.out_features)
            return out.view(*x.shape[:-1], self.out_features)
        out = F.linear(x, self.weight, self.bias)
        if gelu:
            out = F.gelu(out)
        return out if residual is None else residual + out


class LayerNorm(nn.Module):
    """LayerNorm whose bias can be a constant zero *buffer* (kept in the state dict as ``bias``)."""

    def __init__(self, dim: int, eps: float = 1e-6, bias: bool = False):
        super().__init__()
        self.eps = eps
        self.normalized_shape = (dim,)
        self.weight = nn.Parameter(torch.ones(dim))
        if bias:
            self.bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def _additive_mask(mask: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """Bool mask [B, Nq|1, Nk] (True = blocked) -> float mask [B, 1, Nq|1, Nk] for SDPA."""
    if mask is None:
        return None
    blocked = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    blocked.masked_fill_(mask, -torch.finfo(dtype).max)
    return blocked.unsqueeze(1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor],
            reference: bool) -> torch.Tensor:
    """softmax(q·kᵀ/√d, blocked → -finfo.max)·v for [B, h, N, d] heads; mask [B, Nq|1, Nk], True = blocked.

    ``reference``: unfused, in TerraTorch's order (scale applied to the scores, not to q), so the
    rounding is the same as TerraTorch's; otherwise one fused SDPA kernel.
    """
    if not reference:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=_additive_mask(mask, q.dtype))
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores.masked_fill(mask.unsqueeze(1), -torch.finfo(scores.dtype).max)
    return torch.matmul(scores.softmax(dim=-1), v)


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` is one Linear producing [q | k | v], each split by heads."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.reference = False  # see set_reference_arithmetic
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention output, plus ``residual`` when given (added inside the output projection)."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        x = _attend(q, k, v, mask, self.reference)
        return self.proj(x.transpose(1, 2).reshape(B, N, C), residual=residual)


class CrossAttention(nn.Module):
    """Multi-head attention from queries ``x`` to ``context``; parameters ``q``, ``kv``, ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.reference = False  # see set_reference_arithmetic
        self.q = Linear(dim, dim, bias=qkv_bias)
        self.kv = Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: Optional[torch.Tensor] = None,
                residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        M = context.shape[1]
        h = self.num_heads
        q = self.q(x).view(B, N, h, C // h).transpose(1, 2)
        k, v = self.kv(context).view(B, M, 2, h, C // h).permute(2, 0, 3, 1, 4)
        x = _attend(q, k, v, mask, self.reference)
        return self.proj(x.transpose(1, 2).reshape(B, N, C), residual=residual)


class Mlp(nn.Module):
    """fc1 -> activation -> fc2 (tiny, small)."""

    def __init__(self, dim: int, hidden: int, act_layer: Type[nn.Module] = nn.GELU, bias: bool = True):
        super().__init__()
        self.fc1 = Linear(dim, hidden, bias=bias)
        self.act = act_layer()
        self.fc2 = Linear(hidden, dim, bias=bias)
        # exact-erf GELU can be fused into fc1
        self._fused_gelu = type(self.act) is nn.GELU and self.act.approximate == "none"

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self._fused_gelu:
            return self.fc2(self.fc1(x, gelu=True), residual=residual)
        return self.fc2(self.act(self.fc1(x)), residual=residual)


class GatedMlp(nn.Module):
    """SwiGLU: fc2(act(fc1 x) * fc3 x), hidden = int(2 * hidden / 3) (base: 2048, large: 2730)."""

    def __init__(self, dim: int, hidden: int, act_layer: Type[nn.Module] = nn.SiLU, bias: bool = True):
        super().__init__()
        hidden = int(2 * hidden / 3)
        self.fc1 = Linear(dim, hidden, bias=bias)
        self.act = act_layer()
        self.fc2 = Linear(hidden, dim, bias=bias)
        self.fc3 = Linear(dim, hidden, bias=bias)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)) * self.fc3(x), residual=residual)


def _mlp(dim, mlp_ratio, gated, act_layer, bias):
    hidden = int(dim * mlp_ratio)
    return GatedMlp(dim, hidden, act_layer, bias) if gated else Mlp(dim, hidden, act_layer, bias)


class Block(nn.Module):
    """Pre-norm encoder block: x += attn(norm1 x); x += mlp(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_bias: bool = True, mlp_bias: bool = True, act_layer: Type[nn.Module] = nn.GELU,
                 gated_mlp: bool = False, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, proj_bias)
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = _mlp(dim, mlp_ratio, gated_mlp, act_layer, mlp_bias)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.attn(self.norm1(x), mask, residual=x)   # x + attn(norm1 x)
        return self.mlp(self.norm2(x), residual=x)       # x + mlp(norm2 x)


class DecoderBlock(nn.Module):
    """Decoder block: self-attention, cross-attention to the encoder context, MLP (all pre-norm)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_bias: bool = True, mlp_bias: bool = True, act_layer: Type[nn.Module] = nn.GELU,
                 gated_mlp: bool = False, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=norm_eps)
        self.self_attn = Attention(dim, num_heads, qkv_bias, proj_bias)
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias, proj_bias)
        self.query_norm = LayerNorm(dim, eps=norm_eps)
        self.context_norm = LayerNorm(dim, eps=norm_eps)
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = _mlp(dim, mlp_ratio, gated_mlp, act_layer, mlp_bias)

    def forward(self, y: torch.Tensor, context: torch.Tensor, sa_mask: Optional[torch.Tensor] = None,
                xa_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.self_attn(self.norm1(y), sa_mask, residual=y)
        y = self.cross_attn(self.query_norm(y), self.context_norm(context), xa_mask, residual=y)
        return self.mlp(self.norm2(y), residual=y)


def set_reference_arithmetic(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every Linear/Attention/CrossAttention in ``model`` to TerraTorch's op order (or back)."""
    for m in model.modules():
        if isinstance(m, (Linear, Attention, CrossAttention)):
            m.reference = bool(enabled)
    return model


def uses_reference_arithmetic(model: nn.Module) -> bool:
    """True when ``model`` has such layers and all of them run in reference arithmetic."""
    flags = [m.reference for m in model.modules() if isinstance(m, (Linear, Attention, CrossAttention))]
    return bool(flags) and all(flags)


def init_weights_mae(model: nn.Module, skip_prefix: str = "tokenizer") -> None:
    """MAE-style init used by TerraMind for weights a checkpoint does not provide.

    q, k, v (and k, v) are treated as separate matrices for the Xavier bound; biases 0, norms 1,
    embeddings N(0, 0.02). Tokenizers are skipped (they always come from their own files).
    """
    import math

    for name, m in model.named_modules():
        if name.startswith(skip_prefix) or f".{skip_prefix}" in name:
            continue
        if isinstance(m, nn.Linear):
            if "qkv" in name:
                bound = math.sqrt(6.0 / (m.weight.shape[0] // 3 + m.weight.shape[1]))
                nn.init.uniform_(m.weight, -bound, bound)
            elif "kv" in name:
                bound = math.sqrt(6.0 / (m.weight.shape[0] // 2 + m.weight.shape[1]))
                nn.init.uniform_(m.weight, -bound, bound)
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, LayerNorm):
            nn.init.ones_(m.weight)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
