"""`embed` and `tim-embed`: TerraMind encoder features per 16 px patch, one band per feature.

The backbone gets standardized inputs (backbones never standardize themselves, facts §3.3); its
layer ``options.layer`` output ``[B, N, D]`` is reshaped to ``[B, D, S/16, S/16]`` (tokens are
row-major). TiM first generates its ``tim_modalities`` tokens and averages them in (merge mean/max).
With ``options.use_location`` each window's centre (lon, lat) is one more input: its tokens take part in
attention, and merge mean/max leave them out of the per-patch features as TerraTorch does.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ...catalog import BACKBONES
from ..jobspec import PATCH
from ..modalities import COORDINATES
from ..tasks import EMBED_OUTPUT
from ..writer import OutputSpec
from .base import (FLOAT_NODATA, Context, Predictor, Product, announce_precision, batch_seed, build_kwargs,
                   call_seeded, standardize, torch_batch)


class EmbedPredictor(Predictor):
    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device = ctx.device
        self.layer = spec.options.layer
        self.tim = spec.task == "tim-embed"
        self.seed = spec.seed
        mods = list(spec.inputs)
        self.use_location = spec.options.use_location
        if self.use_location:  # each window's centre joins the inputs (the runner adds it to every batch)
            mods.append(COORDINATES)
        kwargs = dict(modalities=mods, merge_method=spec.options.merge_method, **build_kwargs(spec))
        name = BACKBONES[spec.size].registry_name
        if self.tim:
            name += "_tim"
            kwargs["tim_modalities"] = list(spec.options.tim_modalities)
        else:  # TiM keeps fp32: its token generation must match the plain backbone's arithmetic
            kwargs["precision"] = spec.options.precision
            announce_precision(ctx)
        self.model = ctx.models.get(name, ctx.device, ctx.emit, **kwargs)
        dim = self._feature_dim(spec)
        out = OutputSpec(name=EMBED_OUTPUT, path=spec.outputs[EMBED_OUTPUT], kind="embeddings", dtype="float32",
                         band_names=[f"feature {i}" for i in range(dim)], nodata=FLOAT_NODATA, product="embeddings",
                         scale=PATCH, tags={"MODEL": name, "LAYER": str(self.layer),
                                            "MERGE_METHOD": spec.options.merge_method})
        self.products: List[Product] = [Product(EMBED_OUTPUT, dim, [out], lambda v: [v.astype(np.float32)],
                                                scale=PATCH)]

    def _feature_dim(self, spec) -> int:
        dim = getattr(self.model, "out_channels", None)
        if isinstance(dim, (list, tuple)):
            dim = dim[self.layer]
        if not dim:
            raise RuntimeError(f"Cannot tell the embedding size of {type(self.model).__name__}")
        return int(dim)

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        arrays = dict(arrays)
        centres = arrays.pop(COORDINATES, None)
        x = {m: standardize(m, a, valid) for m, a in arrays.items()}
        batch = torch_batch(x, self.device)
        if self.use_location:
            batch[COORDINATES] = torch.from_numpy(centres).to(self.device)
        with torch.inference_mode():
            if self.tim:
                layers = call_seeded(self.model, batch_seed(self.seed, batch_index), batch)
            else:
                layers = self.model(batch)
        tokens = layers[self.layer] if isinstance(layers, (list, tuple)) else layers
        b, n, d = tokens.shape
        s = arrays[next(iter(arrays))].shape[-1] // PATCH
        if n != s * s:
            raise RuntimeError(f"Backbone returned {n} tokens for a {s}x{s} patch window")
        feats = tokens.float().transpose(1, 2).reshape(b, d, s, s)
        return {EMBED_OUTPUT: feats.cpu().numpy()}


def build(ctx: Context) -> EmbedPredictor:
    return EmbedPredictor(ctx)
