"""Which arithmetic a model runs: the precision names, what ``auto`` means on a device, and the bf16 policy.

``fp32`` is TerraTorch's exact arithmetic; ``bf16`` runs the heavy matmuls under bf16 autocast (≈ 1 %
relative deviations, docs/models.md); ``auto`` is bf16 where a short measurement (`bf16_probe`) finds it
clearly faster on the device, else fp32. Torch is imported
only inside the functions, so the torch-free JobSpec parser shares ``PRECISIONS``.
"""
from __future__ import annotations

from typing import Optional, Sequence

__all__ = ["PRECISIONS", "check_precision", "fast_bf16_available", "resolve_precision", "runs_in_bf16"]

PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` itself, or a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    return precision


def fast_bf16_available(device) -> bool:
    """Whether bf16 matrix products are clearly faster than fp32 on ``device``, as measured by `bf16_probe`
    (once per device and process, cached per machine); other devices (MPS) keep fp32."""
    import torch

    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False
    if device.type not in ("cpu", "cuda"):
        return False
    from .bf16_probe import bf16_probe

    return bf16_probe(device).bf16_faster


def resolve_precision(precision: str, device) -> str:
    """``fp32``/``bf16`` as given; ``auto`` = ``bf16`` where ``fast_bf16_available`` else ``fp32``."""
    if check_precision(precision) == "auto":
        return "bf16" if fast_bf16_available(device) else "fp32"
    return precision


def runs_in_bf16(configured: str, requested: Optional[str], device, modules: Sequence, what: str) -> bool:
    """Whether a call runs in bf16: ``requested`` (None = ``configured``) resolved on ``device``.

    When the model's ``configured`` precision resolves to bf16, the first bf16 call converts ``modules`` (what
    runs under autocast) for good (`bf16_weights`); an fp32 call on converted modules is refused with a message
    naming ``what``.
    """
    from .bf16_weights import convert_matmul_weights, is_converted

    if resolve_precision(requested or configured, device) != "bf16":
        if any(is_converted(m) for m in modules):
            raise ValueError(f"{what} was built with precision 'bf16' (or 'auto' resolving to bf16 here) and "
                             f"holds bf16 weights; build it with precision='fp32' for fp32 arithmetic.")
        return False
    if resolve_precision(configured, device) == "bf16":
        convert_matmul_weights(modules)
    return True
