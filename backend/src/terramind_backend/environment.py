"""What this backend runs on: torch/device/GDAL versions and cached weights (doctor + protocol hello)."""
from __future__ import annotations

import os
import platform
from typing import Any, Dict

from . import __version__


def pick_device(requested: str = "auto") -> str:
    """'auto' → cuda if present, then mps, else cpu; an unavailable explicit choice is an error."""
    import torch

    requested = (requested or "auto").lower()
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested.startswith("cuda") and not cuda:
        raise RuntimeError("Device 'cuda' was requested but torch sees no CUDA GPU "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Use 'auto' or 'cpu'.")
    if requested == "mps" and not mps:
        raise RuntimeError("Device 'mps' was requested but Apple Metal is not available. Use 'auto' or 'cpu'.")
    if requested not in ("cpu", "mps") and not requested.startswith("cuda"):
        raise ValueError(f"Unknown device {requested!r}: use auto, cuda, cuda:N, mps or cpu.")
    return requested


def auto_precision(device: str, measure: bool) -> Dict[str, Any]:
    """What ``precision="auto"`` resolves to on ``device`` (`models/bf16_probe.py`): measured now when
    ``measure``, else only what is already known (``resolves_to`` None when not yet measured)."""
    import torch

    from .models.bf16_probe import bf16_probe, cached_probe

    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda") or (dev.type == "cuda" and not torch.cuda.is_bf16_supported()):
        return {"device": device, "resolves_to": "fp32", "summary": f"auto = fp32 on {device} (no bf16 probe)"}
    result = bf16_probe(dev) if measure else cached_probe(dev)
    if result is None:
        return {"device": device, "resolves_to": None, "summary": "not measured yet (first auto job measures it)"}
    return {"device": device, "resolves_to": "bf16" if result.bf16_faster else "fp32", "summary": result.summary(),
            "fp32_ms": result.fp32_ms, "bf16_ms": result.bf16_ms}


def describe(measure_precision: bool = False) -> Dict[str, Any]:
    """A JSON-able report used by `terramind doctor` (which measures the bf16 probe when needed) and the
    protocol's hello (which only reports a known result, to answer at once)."""
    import torch
    import rasterio
    import huggingface_hub

    from .hub import cached_official_weights, hub_cache_dir, offline_mode, repos_without_commit

    info: Dict[str, Any] = {
        "terramind_backend": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "huggingface_hub": huggingface_hub.__version__,
        "weights_without_commit": repos_without_commit(),
        "hf_cache": str(hub_cache_dir()),
        "hf_offline": offline_mode(),
        "hf_token": bool(os.environ.get("HF_TOKEN")),
        "device": pick_device("auto"),
        "cuda": None,
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if torch.cuda.is_available():
        info["cuda"] = [
            {"index": i, "name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())
        ]
    from .engine.model_cache import cache_budget

    info["model_cache"] = cache_budget()
    info["auto_precision"] = auto_precision(info["device"], measure_precision)
    info["cached_weights"] = [
        {"name": c.name, "repo_id": c.repo_id, "filename": c.filename, "revision": c.revision,
         "size_mb": round(c.size_bytes / 2**20, 1)}
        for c in cached_official_weights()
    ]
    return info
