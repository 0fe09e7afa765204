"""Shared pieces of the predictors: what a product is, standardization, seeding, output specs.

A predictor turns a batch of aligned windows (physical units, ``[B, C, S, S]`` per modality, plus
a validity mask ``[B, S, S]``) into one array per *product* (``[B, C, s, s]`` float32:
probabilities for classes, values for continuous data, features for embeddings). The runner
blends products window by window; `Product.finalize` turns blended rows into the file contents.
"""
from __future__ import annotations

import inspect
import os
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from ..modalities import LULC_CLASSES, MODALITIES
from ..uncertainty import CONFIDENCE, ENTROPY, SPREAD, UncertaintyOptions, confidence_entropy, derived_files
from ..writer import OutputSpec

FLOAT_NODATA = float("nan")
LULC_NODATA = 255
S2_NODATA = 0


@dataclass
class Product:
    """One blended quantity and the output files derived from it.

    ``finalize(blended[C, n, w]) -> [array per output]`` in each output's dtype; invalid pixels are
    filled with the output's nodata by the runner afterwards.
    """
    key: str
    channels: int
    outputs: List[OutputSpec]
    finalize: Callable[[np.ndarray], List[np.ndarray]]
    scale: int = 1


@dataclass
class Context:
    """What `build` gets: the job, its layout, the model cache, the device and the event sink."""
    spec: object
    layout: object
    models: object
    device: str
    emit: Callable[[dict], None]


class Predictor:
    """Base class: ``products`` (list of Product) and ``predict``; the task table says whether the
    work grid is padded to whole patches (`Task.patch_aligned`)."""

    products: List[Product]

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def steps_per_batch(self) -> Optional[int]:
        """How many model steps (``models/step_events``) one ``predict`` reports, when known beforehand: it
        lets the first batch's progress move; later batches use the count the previous one reported."""
        return None


# --- standardization ---------------------------------------------------------------------------

def stats(key: str):
    """Pretraining mean/std as ``[1, C, 1, 1]`` numpy arrays for an internal model key."""
    from ...models.modalities import PRETRAINING_MEAN, PRETRAINING_STD

    mean = np.asarray(PRETRAINING_MEAN[key], dtype=np.float32)[None, :, None, None]
    std = np.asarray(PRETRAINING_STD[key], dtype=np.float32)[None, :, None, None]
    return mean, std


def input_key(mod: str) -> str:
    from ...models.modalities import CANONICAL_NAMES

    return CANONICAL_NAMES[mod]


def fill_invalid_with_mean(mod: str, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid pixels take the pretraining mean (0 after standardization), class 0 for LULC."""
    if mod == "LULC":
        return np.where(valid[:, None], x, 0).astype(np.float32)
    mean, _ = stats(input_key(mod))
    return np.where(valid[:, None], x, mean).astype(np.float32)


def standardize(mod: str, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if mod == "LULC":
        return fill_invalid_with_mean(mod, x, valid)
    mean, std = stats(input_key(mod))
    return np.where(valid[:, None], (x - mean) / std, 0).astype(np.float32)


# --- seeding -----------------------------------------------------------------------------------

def batch_seed(seed: int, batch_index: int) -> int:
    """One seed per batch, so a job is reproducible for a seed and a batch size."""
    return (int(seed) * 1_000_003 + batch_index) % (2 ** 31 - 1)


def call_seeded(fn, seed: int, *args, **kwargs):
    """Call a sampling model with ``seed``: passed as ``generator``/``seed`` when the model takes one,
    else through the global RNGs (what TerraTorch-style models read)."""
    import torch

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "generator" in params:
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    elif "seed" in params:
        kwargs["seed"] = seed
    else:
        random.seed(seed)
        torch.manual_seed(seed)
    return fn(*args, **kwargs)


# --- output specs ------------------------------------------------------------------------------

def class_outputs(name: str, path: str, probabilities: bool,
                  uncertainty: UncertaintyOptions = UncertaintyOptions(), task: str = "generate") -> List[OutputSpec]:
    names = [n for n, _ in LULC_CLASSES]
    out = [OutputSpec(name=name, path=path, kind="classes", dtype="uint8", band_names=[f"{name} class"],
                      nodata=LULC_NODATA, product=name, class_names=names, colors=[c for _, c in LULC_CLASSES],
                      tags={"CLASS_SOURCE": "ESRI 10 m annual LULC, TerraMind v1 LULC tokenizer (names inferred)"})]
    if probabilities:
        stem, _ = os.path.splitext(path)
        out.append(OutputSpec(name=f"{name}_probabilities", path=f"{stem}_probabilities.tif", kind="probabilities",
                              dtype="float32", band_names=[f"P({n})" for n in names], nodata=FLOAT_NODATA,
                              product=name))
    return out + uncertainty_outputs(task, name, path, uncertainty)


def uncertainty_outputs(task: str, key: str, path: str, uncertainty: UncertaintyOptions,
                        band_names=(), unit: str = "") -> List[OutputSpec]:
    """The confidence + entropy (class outputs) or spread (continuous outputs) files of one output."""
    bands = {CONFIDENCE: ["confidence (largest class probability)"],
             ENTROPY: ["entropy (of the class probabilities, / ln classes)"],
             SPREAD: [f"{b} spread (std over samples)" for b in band_names]}
    out = []
    for name, derived in derived_files(task, key, path, uncertainty):
        kind = name.rsplit("_", 1)[1]
        out.append(OutputSpec(name=name, path=derived, kind=kind, dtype="float32", band_names=bands[kind],
                              nodata=FLOAT_NODATA, product=kind, unit=unit if kind == SPREAD else "",
                              tags={"SOURCE_OUTPUT": key}))
    return out


def finalize_classes(probabilities: bool, confidence: bool = False) -> Callable[[np.ndarray], List[np.ndarray]]:
    def finalize(p: np.ndarray) -> List[np.ndarray]:
        classes = np.argmax(np.nan_to_num(p, nan=-1.0), axis=0).astype(np.uint8)[None]
        out = [classes, p.astype(np.float32)] if probabilities else [classes]
        return out + list(confidence_entropy(p)) if confidence else out
    return finalize


def continuous_output(mod: str, path: str) -> OutputSpec:
    m = MODALITIES[mod]
    nodata = S2_NODATA if m.dtype == "uint16" else FLOAT_NODATA
    return OutputSpec(name=mod, path=path, kind="continuous", dtype=m.dtype, band_names=list(m.band_names),
                      nodata=nodata, product=mod, unit=m.unit)


def finalize_continuous(mod: str) -> Callable[[np.ndarray], List[np.ndarray]]:
    dtype = MODALITIES[mod].dtype

    def finalize(v: np.ndarray) -> List[np.ndarray]:
        if dtype == "uint16":  # reflectance ×10000; 0 is nodata, so valid values start at 1
            return [np.clip(np.rint(np.nan_to_num(v, nan=0.0)), 1, 65535).astype(np.uint16)]
        return [v.astype(np.float32)]
    return finalize


def product_for(mod: str, path: str, probabilities: bool, uncertainty: UncertaintyOptions = UncertaintyOptions(),
                task: str = "generate") -> Product:
    """The Product of one generated/reconstructed modality (classes for LULC, values otherwise)."""
    if MODALITIES[mod].output == "classes":
        outputs = class_outputs(mod, path, probabilities, uncertainty, task)
        confidence = any(o.kind == CONFIDENCE for o in outputs)
        return Product(mod, len(LULC_CLASSES), outputs, finalize_classes(probabilities, confidence))
    m = MODALITIES[mod]
    return Product(mod, m.channels, [continuous_output(mod, path)], finalize_continuous(mod))


def spread_products(task: str, mod: str, path: str, uncertainty: UncertaintyOptions) -> List[Product]:
    """The spread Product of a continuous output (key ``<mod>_spread``), none when not asked for."""
    m = MODALITIES[mod]
    outputs = uncertainty_outputs(task, mod, path, uncertainty, m.band_names, m.unit)
    return [Product(o.name, m.channels, [o], lambda v: [v.astype(np.float32)]) for o in outputs
            if o.kind == SPREAD]


def announce_precision(ctx: Context) -> None:
    """Log what the job's precision means here (``auto``: the measured choice, `models/bf16_probe.py`)."""
    precision = ctx.spec.options.precision
    if precision == "auto":
        from ...environment import auto_precision

        message = "Precision " + auto_precision(ctx.device, measure=True)["summary"]
    else:
        message = f"Precision {precision} (as requested)"
    ctx.emit({"event": "log", "level": "info", "message": message})


def build_kwargs(spec) -> dict:
    """Weights: the official checkpoint unless options.checkpoint names a local file."""
    kw = {"pretrained": True}
    if spec.options.checkpoint:
        kw = {"pretrained": False, "ckpt_path": spec.options.checkpoint}
    return kw


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def torch_batch(arrays: Dict[str, np.ndarray], device: str) -> Dict[str, "object"]:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
