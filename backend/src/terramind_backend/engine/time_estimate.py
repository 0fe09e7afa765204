"""How long a job will take, estimated before it starts from its grid (windows x a per-window cost).

The costs are CPU seconds per 224x224 tile for ``terramind_v1_tiny`` at batch 8 and the default precision
(bf16 on the AMX CPU they were measured on), from `make bench` (docs/benchmarks.md, "Latest run"):
embeddings 0.0122 s/tile; S2L2A -> LULC 0.160 s/tile (backbone + token generation + the LULC token decoder);
S2L2A -> DEM with 10 diffusion steps 5.00 s/tile (an earlier, loaded run: 0.0135, 0.157, 3.55:
the estimate is good to about +-40 %). Token generation (~0.03 s/tile, docs/benchmarks.md,
"Generation") and the backbone scale with the model's backbone parameter count (other sizes were not
measured: their cost is tiny's times the ratio of parameters); the tokenizer decoders have one size for every
model, so they do not. Precision fp32 on the CPU costs about 3x (fp32 vs bf16 columns of the same
benchmarks). There are no GPU measurements yet, so a job on a GPU gets no estimate.
"""
from __future__ import annotations

from typing import Optional

from ..catalog import BACKBONES
from .modalities import COORDINATES

TILE_PX = 224
# CPU s per 224x224 tile, terramind_v1_tiny, batch 8, default precision (bf16 here).
CPU_SECONDS_PER_TILE = {
    "backbone": 0.0122,        # one encoder pass (embeddings row)
    "tokens": 0.03,            # generating one modality's tokens
    "lulc_decoder": 0.118,     # LULC tokens -> classes: 0.160 - backbone - tokens
    "diffusion_step": 0.484,   # one DDIM step of a diffusion decoder: (5.002 - 0.160) / 10
}
FP32_FACTOR = 3.0
NON_DIFFUSION = ("LULC", COORDINATES)     # decoded without diffusion steps (LULC: a ViT; coordinates: none)


def _on_gpu(device: str) -> bool:
    from ..environment import pick_device  # "auto" picks a GPU when there is one

    try:
        return pick_device(device) != "cpu"
    except (RuntimeError, ValueError):  # a GPU that is not there: the job reports it; no CPU estimate for it
        return device != "cpu"


def _decode_seconds(modality: str, timesteps: int) -> float:
    if modality == COORDINATES:
        return 0.0
    if modality in NON_DIFFUSION:
        return CPU_SECONDS_PER_TILE["lulc_decoder"]
    return CPU_SECONDS_PER_TILE["diffusion_step"] * timesteps


def seconds_per_tile(spec) -> Optional[float]:
    """Estimated seconds for one 224x224 tile of ``spec`` (a parsed JobSpec); None when not measured (GPU)."""
    if _on_gpu(spec.device):
        return None
    # other sizes: tiny's cost times the ratio of backbone parameters (catalog.py)
    scale = BACKBONES[spec.size].parameters / BACKBONES["tiny"].parameters
    cost = CPU_SECONDS_PER_TILE["backbone"] * scale
    if spec.task == "generate":
        for modality in spec.outputs:
            cost += CPU_SECONDS_PER_TILE["tokens"] * scale + _decode_seconds(modality, spec.timesteps)
    elif spec.task == "reconstruct":
        cost += sum(_decode_seconds(modality, spec.timesteps) for modality in spec.outputs)
    elif spec.task == "tim-embed":
        cost += CPU_SECONDS_PER_TILE["tokens"] * scale * len(spec.options.tim_modalities)
    if spec.options.precision == "fp32":
        cost *= FP32_FACTOR
    return cost


def estimate_seconds(spec, windows: int) -> Optional[float]:
    """Estimated run time of ``windows`` windows of ``spec``; None when there is no measured cost (GPU)."""
    per_tile = seconds_per_tile(spec)
    if per_tile is None:
        return None
    return windows * per_tile * (spec.tiling.window / TILE_PX) ** 2


def describe(seconds: Optional[float]) -> str:
    """'about 2 h 5 min' / 'about 40 s'; 'unknown' when not estimated."""
    if seconds is None:
        return "unknown (no measured costs for a GPU)"
    if seconds < 60:
        return f"about {seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"about {minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"about {minutes} min"
