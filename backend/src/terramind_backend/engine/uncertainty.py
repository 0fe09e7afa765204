"""How sure the model is: confidence and entropy of class outputs, spread of generated values.

``options.uncertainty`` (docs/uncertainty.md):
- ``confidence``: every class output (generated LULC, segment ``classes``) also gets
  ``<stem>_confidence.tif`` (the largest blended class probability, 0–1) and ``<stem>_entropy.tif``
  (the entropy of the blended class probabilities divided by ln(classes), 0 = one class certain,
  1 = all classes equally likely). Both come from the same probabilities the class map and the
  ``_probabilities`` output come from, so they cost one pass over the blended rows.
- ``spread``: every continuous output of ``generate`` (S2L2A, S1GRD, S1RTC, DEM, NDVI) also gets
  ``<stem>_spread.tif``, the per-pixel standard deviation (population, ddof 0) over ``samples``
  generations; sample k is drawn exactly as a job with seed ``seed + k`` would, and sample 0 is the
  main output, so the main output does not change. It costs ``samples`` times the generation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .errors import JobValidationError
from .modalities import MODALITIES

CONFIDENCE, ENTROPY, SPREAD = "confidence", "entropy", "spread"
DEFAULT_SAMPLES = 4
MAX_SAMPLES = 64


@dataclass(frozen=True)
class UncertaintyOptions:
    confidence: bool = False
    spread: bool = False
    samples: int = DEFAULT_SAMPLES


def parse_uncertainty(raw, warnings: List[str]) -> UncertaintyOptions:
    if raw is None:
        return UncertaintyOptions()
    if not isinstance(raw, dict):
        raise JobValidationError(f"options.uncertainty must be an object like {{\"confidence\": true}}, got {raw!r}.",
                                 "options.uncertainty")
    for key in raw:
        if key not in UncertaintyOptions.__dataclass_fields__:
            warnings.append(f"Ignored unknown key options.uncertainty.{key!r}.")
    for flag in (CONFIDENCE, SPREAD):
        if flag in raw and not isinstance(raw[flag], bool):
            raise JobValidationError(f"options.uncertainty.{flag} must be true or false, got {raw[flag]!r}.",
                                     f"options.uncertainty.{flag}")
    samples = raw.get("samples", DEFAULT_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 2 <= samples <= MAX_SAMPLES:
        raise JobValidationError(f"options.uncertainty.samples must be an integer from 2 to {MAX_SAMPLES} "
                                 f"(the generations the spread is taken over), got {samples!r}.",
                                 "options.uncertainty.samples")
    return UncertaintyOptions(confidence=raw.get(CONFIDENCE, False), spread=raw.get(SPREAD, False), samples=samples)


def derived_path(path: str, what: str) -> str:
    """``out/lulc.tif`` → ``out/lulc_<what>.tif``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}_{what}{ext or '.tif'}"


def derived_files(task: str, key: str, path: str, opts: UncertaintyOptions) -> List[Tuple[str, str]]:
    """(output name, path) of the uncertainty files output ``key`` of ``task`` gets (none for most)."""
    storage = "classes" if task == "segment" and key == "classes" else (
        MODALITIES[key].output if task == "generate" and key in MODALITIES else None)
    if storage == "continuous" and opts.spread:
        return [(f"{key}_{SPREAD}", derived_path(path, SPREAD))]
    if storage == "classes" and opts.confidence:
        return [(f"{key}_{what}", derived_path(path, what)) for what in (CONFIDENCE, ENTROPY)]
    return []


def confidence_entropy(probabilities: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``[K, n, w]`` probabilities → (max probability, entropy / ln K), each ``[1, n, w]`` float32.
    NaN (no data) stays NaN."""
    p = probabilities.astype(np.float64)
    k = p.shape[0]
    confidence = p.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=0) / np.log(k) if k > 1 else np.zeros_like(confidence)
    entropy = np.where(np.isnan(confidence), np.nan, np.clip(entropy, 0.0, 1.0))
    return confidence[None].astype(np.float32), entropy[None].astype(np.float32)


def spread(samples: np.ndarray) -> np.ndarray:
    """``[N, B, C, h, w]`` samples → per-pixel population standard deviation ``[B, C, h, w]`` float32."""
    return samples.astype(np.float64).std(axis=0).astype(np.float32)
