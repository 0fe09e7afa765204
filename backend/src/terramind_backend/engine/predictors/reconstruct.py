"""`reconstruct`: round-trip inputs through their tokenizers (encode → tokens → decode).

Shows what the model "sees" of a layer. Tokenizers work in standardized units (facts §7.6); the
output is de-standardized with the tokenizer statistics. LULC goes in as class indices and comes
out as class probabilities.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ...catalog import find_tokenizer
from .base import (Context, Predictor, Product, announce_precision, batch_seed, build_kwargs, call_seeded,
                   product_for, softmax, standardize, stats, torch_batch)

_TOKENIZER_KEY = {"S2L2A": "tok_sen2l2a@224", "S1GRD": "tok_sen1grd@224", "S1RTC": "tok_sen1rtc@224",
                  "DEM": "tok_dem@224", "NDVI": "tok_ndvi@224", "LULC": "tok_lulc@224"}


class ReconstructPredictor(Predictor):
    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device, self.seed, self.timesteps = ctx.device, spec.seed, spec.timesteps
        self.targets = list(spec.outputs)
        kw = build_kwargs(spec)
        kw.pop("ckpt_path", None)  # options.checkpoint names a TerraMind checkpoint, not a tokenizer
        kw["pretrained"] = True
        kw["precision"] = spec.options.precision
        announce_precision(ctx)
        self.tokenizers = {m: ctx.models.get(find_tokenizer(m).registry_name, ctx.device, ctx.emit, **kw)
                           for m in self.targets}
        self.products: List[Product] = [product_for(m, spec.outputs[m], spec.options.probabilities)
                                        for m in self.targets]

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        result = {}
        for i, m in enumerate(self.targets):
            x = arrays[m]
            if m != "LULC":
                mean, std = stats(_TOKENIZER_KEY[m])
                x = np.where(valid[:, None], (x - mean) / std, 0).astype(np.float32)
            else:
                x = standardize(m, x, valid)
            tok = self.tokenizers[m]
            with torch.inference_mode():
                t = torch_batch({m: x}, self.device)[m]
                if m == "LULC":
                    logits = tok(t.long())[0]
                    result[m] = softmax(logits.float().cpu().numpy())
                else:
                    y = call_seeded(tok, batch_seed(self.seed, batch_index * 16 + i), t, timesteps=self.timesteps)
                    mean, std = stats(_TOKENIZER_KEY[m])
                    result[m] = y.float().cpu().numpy() * std + mean
        return result


def build(ctx: Context) -> ReconstructPredictor:
    return ReconstructPredictor(ctx)
