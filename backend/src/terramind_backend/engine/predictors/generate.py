"""`generate`: any-to-any generation with ``terramind_v1_<size>_generate`` (standardize=True).

The model takes physical units and returns physical units (LULC as class logits, turned into
probabilities here so overlapping windows average probabilities, not logits). Sampling is seeded
per batch.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from .base import (Context, Predictor, Product, batch_seed, build_kwargs, call_seeded, fill_invalid_with_mean,
                   product_for, softmax, torch_batch)


class GeneratePredictor(Predictor):
    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device, self.seed, self.timesteps = ctx.device, spec.seed, spec.timesteps
        self.standardize = spec.options.standardize
        self.targets = list(spec.outputs)
        name = f"terramind_v1_{spec.size}_generate"
        # timesteps and standardize are passed per call (predict), so they are no part of the cache key
        self.model = ctx.models.get(name, ctx.device, ctx.emit, modalities=list(spec.inputs),
                                    output_modalities=self.targets, precision=spec.options.precision,
                                    **build_kwargs(spec))
        self.products: List[Product] = [product_for(m, spec.outputs[m], spec.options.probabilities)
                                        for m in self.targets]

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        x = {m: fill_invalid_with_mean(m, a, valid) for m, a in arrays.items()}
        with torch.inference_mode():
            out = call_seeded(self.model, batch_seed(self.seed, batch_index), torch_batch(x, self.device),
                              timesteps=self.timesteps, standardize=self.standardize)
        result = {}
        for m in self.targets:
            v = out[m].float().cpu().numpy()
            result[m] = softmax(v) if m == "LULC" else v
        return result


def build(ctx: Context) -> GeneratePredictor:
    return GeneratePredictor(ctx)
