"""`generate`: any-to-any generation with ``terramind_v1_<size>_generate`` (standardize=True).

The model takes physical units and returns physical units (LULC as class logits, turned into
probabilities here so overlapping windows average probabilities, not logits). Sampling is seeded
per batch. With ``options.uncertainty.spread`` each batch is generated ``samples`` times (seeds
seed, seed + 1, …) and the per-pixel std of the continuous outputs is blended as its own product.

Coordinates: with ``options.use_location`` each window's centre is one more input of the raster outputs.
A ``Coordinates`` output is generated from the raster inputs only (never from the true centre, which would
make it a copy) by a second model sharing the weights file, and written as one point per window
(``points.PointLayer``: generated location, true centre, distance).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import numpy as np

from ...catalog import BACKBONES
from ..modalities import COORDINATES
from ..points import PointLayer
from ..uncertainty import spread
from .base import (Context, Predictor, Product, announce_precision, batch_seed, build_kwargs, call_seeded,
                   fill_invalid_with_mean, product_for, softmax, spread_products, torch_batch)


class GeneratePredictor(Predictor):
    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device, self.seed, self.timesteps = ctx.device, spec.seed, spec.timesteps
        self.standardize = spec.options.standardize
        self.use_location = spec.options.use_location
        self.emit = ctx.emit
        self.targets = [m for m in spec.outputs if m != COORDINATES]
        name = BACKBONES[spec.size].registry_name + "_generate"
        announce_precision(ctx)
        # timesteps and standardize are passed per call (predict), so they are no part of the cache key
        common = dict(precision=spec.options.precision, **build_kwargs(spec))
        inputs = list(spec.inputs)
        self.model = self.coords_model = None
        if self.targets:
            self.model = ctx.models.get(name, ctx.device, ctx.emit, output_modalities=self.targets,
                                        modalities=inputs + ([COORDINATES] if self.use_location else []), **common)
        self.point_layers: List[PointLayer] = []
        if COORDINATES in spec.outputs:
            self.coords_model = ctx.models.get(name, ctx.device, ctx.emit, modalities=inputs,
                                               output_modalities=[COORDINATES], **common)
            self.point_layers.append(PointLayer(COORDINATES, spec.outputs[COORDINATES]))
        uncertainty = spec.options.uncertainty
        self.products: List[Product] = [product_for(m, spec.outputs[m], spec.options.probabilities, uncertainty)
                                        for m in self.targets]
        spreads = [p for m in self.targets for p in spread_products(spec.task, m, spec.outputs[m], uncertainty)]
        self.products += spreads
        # spread: sample k is what a job with seed + k draws; sample 0 is the main output
        self.samples = uncertainty.samples if spreads else 1
        self.spread_of = {p.key: p.key[:-len("_spread")] for p in spreads}

    def steps_per_batch(self) -> Optional[int]:
        if self.model is None:
            return None
        return self.samples * self.model.step_count(self.timesteps)

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        arrays = dict(arrays)
        centres = arrays.pop(COORDINATES, None)
        x = torch_batch({m: fill_invalid_with_mean(m, a, valid) for m, a in arrays.items()}, self.device)
        result = {}
        if self.model is not None:
            located = {**x, COORDINATES: torch.from_numpy(centres).to(self.device)} if self.use_location else x
            samples = []
            for k in range(self.samples):
                with torch.inference_mode():
                    out = call_seeded(self.model, batch_seed(self.seed + k, batch_index), located,
                                      timesteps=self.timesteps, standardize=self.standardize)
                samples.append({m: out[m].float().cpu().numpy() for m in self.targets})
            result = {m: softmax(v) if m == "LULC" else v for m, v in samples[0].items()}
            for key, m in self.spread_of.items():
                result[key] = spread(np.stack([s[m] for s in samples]))
        if self.coords_model is not None:
            with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                generated = call_seeded(self.coords_model, batch_seed(self.seed, batch_index), x,
                                        standardize=self.standardize)[COORDINATES]
            self.point_layers[0].add(generated, centres)
            if caught:
                self.emit({"event": "log", "level": "warning",
                           "message": f"{len(caught)} window(s) of batch {batch_index + 1}: the generated text is "
                                      f"not a coordinate; their points have no geometry"})
        return result


def build(ctx: Context) -> GeneratePredictor:
    return GeneratePredictor(ctx)
