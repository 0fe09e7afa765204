"""Keep the matmul weights of bf16-run modules in bf16 instead of letting autocast re-cast them every call.

Under ``torch.autocast(dtype=bfloat16)`` every Linear/Conv weight is cast from fp32 on each call (autocast's
cast cache lives only for one autocast region): for the 184 M-parameter LULC ViT decoder that is ~1 GB of
memory traffic per batch, a quarter of its bf16 decode time on one CPU core, and the diffusion UNet pays it at
every DDIM step. Casting those weights once gives the same numbers (it is the same round-to-nearest-even
cast autocast does) and halves their memory.

A converted module must then always run under bf16 autocast (``F.linear`` refuses fp32 inputs with bf16
weights), so models convert only when their *configured* precision resolves to bf16 and refuse a later fp32
call with a clear message: that policy is ``precision.runs_in_bf16``, shared by the backbone, the generation
transformer and the tokenizer decoders. Everything else (norms, embeddings, position grids, biases of
non-matmul layers) stays fp32, as it would under autocast.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MATMUL_MODULES", "convert_matmul_weights", "is_converted"]

MATMUL_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_FLAG = "_terramind_bf16_weights"


def convert_matmul_weights(modules: Sequence[nn.Module]) -> int:
    """Cast the weights and biases of every Linear/Conv inside ``modules`` to bf16, once (idempotent).
    Returns the number of parameters converted by this call."""
    converted = 0
    for root in modules:
        if getattr(root, _FLAG, False):
            continue
        for module in root.modules():
            if isinstance(module, MATMUL_MODULES):
                for name, param in list(module.named_parameters(recurse=False)):
                    if param.dtype == torch.float32:
                        module._parameters[name] = nn.Parameter(param.detach().to(torch.bfloat16),
                                                                requires_grad=False)
                        converted += param.numel()
        setattr(root, _FLAG, True)
    return converted


def is_converted(module: nn.Module) -> bool:
    return bool(getattr(module, _FLAG, False))

