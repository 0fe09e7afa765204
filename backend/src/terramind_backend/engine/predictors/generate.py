"""`generate`: any-to-any generation with ``terramind_v1_<size>_generate`` (standardize=True).

The model takes physical units and returns physical units (LULC as class logits, turned into
probabilities here so overlapping windows average probabilities, not logits). Sampling is seeded
per batch. With ``options.uncertainty.spread`` each batch is generated ``samples`` times (seeds
seed, seed + 1, …) and the per-pixel std of the continuous outputs is blended as its own product.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..uncertainty import spread
from .base import (Context, Predictor, Product, announce_precision, batch_seed, build_kwargs, call_seeded,
                   fill_invalid_with_mean, product_for, softmax, spread_products, torch_batch)


class GeneratePredictor(Predictor):
    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device, self.seed, self.timesteps = ctx.device, spec.seed, spec.timesteps
        self.standardize = spec.options.standardize
        self.targets = list(spec.outputs)
        name = f"terramind_v1_{spec.size}_generate"
        announce_precision(ctx)
        # timesteps and standardize are passed per call (predict), so they are no part of the cache key
        self.model = ctx.models.get(name, ctx.device, ctx.emit, modalities=list(spec.inputs),
                                    output_modalities=self.targets, precision=spec.options.precision,
                                    **build_kwargs(spec))
        uncertainty = spec.options.uncertainty
        self.products: List[Product] = [product_for(m, spec.outputs[m], spec.options.probabilities, uncertainty)
                                        for m in self.targets]
        spreads = [p for m in self.targets for p in spread_products(spec.task, m, spec.outputs[m], uncertainty)]
        self.products += spreads
        # spread: sample k is what a job with seed + k draws; sample 0 is the main output
        self.samples = uncertainty.samples if spreads else 1
        self.spread_of = {p.key: p.key[:-len("_spread")] for p in spreads}

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        x = {m: fill_invalid_with_mean(m, a, valid) for m, a in arrays.items()}
        samples = []
        for k in range(self.samples):
            with torch.inference_mode():
                out = call_seeded(self.model, batch_seed(self.seed + k, batch_index), torch_batch(x, self.device),
                                  timesteps=self.timesteps, standardize=self.standardize)
            samples.append({m: out[m].float().cpu().numpy() for m in self.targets})
        result = {m: softmax(v) if m == "LULC" else v for m, v in samples[0].items()}
        for key, m in self.spread_of.items():
            result[key] = spread(np.stack([s[m] for s in samples]))
        return result


def build(ctx: Context) -> GeneratePredictor:
    return GeneratePredictor(ctx)
