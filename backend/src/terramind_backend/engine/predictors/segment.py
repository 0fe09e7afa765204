"""`segment`: a TerraTorch fine-tuned segmentation checkpoint (``options.checkpoint``) over the scene.

Each window is standardized with the checkpoint's own statistics (its datamodule's means/stds,
else TerraMind's v1 pretraining statistics), run through the rebuilt model, and its **logits** are
blended across overlapping windows, as TerraTorch's ``tiled_inference`` does; the class map is
the argmax of the blended logits, the optional probabilities their softmax. Class names and
colours (checkpoint, config or ``<ckpt>.classes.json``) go into the GeoTIFF colour table and the
.qml. Pixels where an input is nodata stay nodata.
"""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from ..errors import JobValidationError
from ..writer import OutputSpec
from ..uncertainty import CONFIDENCE, confidence_entropy
from .base import FLOAT_NODATA, Context, Predictor, Product, batch_seed, softmax, torch_batch, uncertainty_outputs

PRODUCT = "classes"


def _load(path: str, device: str):
    from ...models.segmentation import (CheckpointError, ClassTableError, UnsupportedCheckpointError,
                                        load_segmentation_checkpoint)

    try:
        return load_segmentation_checkpoint(path, device=device)
    except (CheckpointError, UnsupportedCheckpointError, ClassTableError) as exc:
        raise JobValidationError(str(exc), "options.checkpoint") from None


def _cached_load(ctx: Context, path: str):
    """Load once per (file version, device); the engine's ModelCache keeps it when it offers
    ``get_or_load(key, loader)``."""
    stat = os.stat(path)
    key = ("segmentation-checkpoint", os.path.realpath(path), stat.st_mtime_ns, stat.st_size, ctx.device)
    side = path + ".classes.json"
    if os.path.exists(side):  # an edited sidecar changes the classes: reload
        key += (os.stat(side).st_mtime_ns,)
    get_or_load = getattr(ctx.models, "get_or_load", None)
    if get_or_load is None:
        return _load(path, ctx.device)
    return get_or_load(key, lambda: _load(path, ctx.device))


def class_outputs(spec, classes) -> List[OutputSpec]:
    """The class map (uint8, or uint16 beyond 255 classes) and optionally per-class probabilities."""
    names = [c.name for c in classes]
    colors = [c.color for c in classes]
    dtype, nodata = ("uint8", 255) if len(classes) <= 255 else ("uint16", 65535)
    tags = {"CHECKPOINT": os.path.basename(spec.options.checkpoint)}
    outs = [OutputSpec(name="classes", path=spec.outputs["classes"], kind="classes", dtype=dtype,
                       band_names=["class"], nodata=nodata, product="classes", class_names=names, colors=colors,
                       tags=tags)]
    if "probabilities" in spec.outputs or spec.options.probabilities:
        path = spec.outputs.get("probabilities")
        if path is None:
            stem, _ = os.path.splitext(spec.outputs["classes"])
            path = f"{stem}_probabilities.tif"
        outs.append(OutputSpec(name="probabilities", path=path, kind="probabilities", dtype="float32",
                               band_names=[f"P({n})" for n in names], nodata=FLOAT_NODATA, product="probabilities",
                               tags=tags))
    return outs + uncertainty_outputs(spec.task, "classes", spec.outputs["classes"], spec.options.uncertainty)


class SegmentPredictor(Predictor):
    # not patch-aligned: the model pads each window itself, as TerraTorch's PixelWiseModel does;
    # the task table makes options.checkpoint required and validation checks that it exists

    def __init__(self, ctx: Context):
        spec = ctx.spec
        self.device = ctx.device
        self.standardize = spec.options.standardize
        self.seed = spec.seed
        loaded = _cached_load(ctx, spec.options.checkpoint)
        self.model, self.info = loaded.model, loaded.info
        self.inputs = self.info.inputs
        self._check_inputs(spec, ctx.layout, ctx.emit)
        self._stats = {i.name: (np.asarray(i.mean, np.float32)[None, :, None, None],
                                np.asarray(i.std, np.float32)[None, :, None, None])
                       for i in self.inputs if self.standardize}
        outputs = class_outputs(spec, self.info.classes)
        with_probs = any(o.kind == "probabilities" for o in outputs)
        with_confidence = any(o.kind == CONFIDENCE for o in outputs)

        def finalize(logits: np.ndarray) -> List[np.ndarray]:
            filled = np.nan_to_num(logits, nan=-np.inf)
            classes = np.argmax(filled, axis=0)[None].astype(outputs[0].dtype)
            out = [classes]
            if with_probs or with_confidence:
                p = softmax(np.nan_to_num(logits, nan=0.0)[None], axis=1)[0].astype(np.float32)
                out += [p] if with_probs else []
                out += list(confidence_entropy(p)) if with_confidence else []
            return out

        self.products: List[Product] = [Product(PRODUCT, self.info.config.num_classes, outputs, finalize)]

    def _check_inputs(self, spec, layout, emit) -> None:
        name = os.path.basename(spec.options.checkpoint)
        for item in self.inputs:
            if item.modality is None:
                raise JobValidationError(f"{name} expects an input {item.name!r} that is not a TerraMind modality; "
                                         "jobs can only feed S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM, LULC, NDVI.",
                                         "options.checkpoint")
            if item.modality not in spec.inputs:
                raise JobValidationError(f"{name} expects {item.modality} input ({item.num_bands} bands"
                                         f"{': ' + ', '.join(item.bands) if item.bands else ''}); add it to inputs.",
                                         f"inputs.{item.modality}")
            source = getattr(layout, "sources", {}).get(item.modality)
            given = source.bands if source is not None else spec.inputs[item.modality].bands
            if given is not None and item.num_bands and len(given) != item.num_bands:
                raise JobValidationError(f"{name} expects {item.num_bands} {item.modality} bands"
                                         f"{' (' + ', '.join(item.bands) + ')' if item.bands else ''}, "
                                         f"the input gives {len(given)}: list them in inputs.{item.modality}.bands "
                                         "in that order.", f"inputs.{item.modality}.bands")
            if self.standardize and (item.mean is None or item.std is None):
                raise JobValidationError(
                    f"{name}: no standardization statistics for input {item.name} (bands {item.bands}); add "
                    f"\"means\"/\"stds\" to {os.path.basename(str(self.info.sidecar_path))} or set "
                    "options.standardize to false if the rasters are already standardized.", "options.checkpoint")
        extra = sorted(set(spec.inputs) - {i.modality for i in self.inputs})
        if extra:
            emit({"event": "log", "level": "warning",
                  "message": f"{name} does not use input(s) {', '.join(extra)}; they are ignored."})

    def _prepare(self, item, a: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if a.shape[1] != item.num_bands:
            raise JobValidationError(f"Input {item.modality} has {a.shape[1]} bands, the checkpoint expects "
                                     f"{item.num_bands}.", f"inputs.{item.modality}.bands")
        if self.standardize:
            mean, std = self._stats[item.name]
            a = (a - mean) / std
        # invalid pixels get 0 (the mean after standardization); they are written as nodata anyway
        return np.where(valid[:, None], a, 0).astype(np.float32)

    def predict(self, arrays: Dict[str, np.ndarray], valid: np.ndarray, batch_index: int) -> Dict[str, np.ndarray]:
        import torch

        x = {i.name: self._prepare(i, arrays[i.modality], valid) for i in self.inputs}
        batch = torch_batch(x, self.device)
        # one modality goes in as a tensor, as TerraTorch's single-modality datamodules feed it
        model_input = next(iter(batch.values())) if len(batch) == 1 else batch
        with torch.inference_mode():
            # TiM backbones sample their imagined modalities: one seed per batch keeps jobs reproducible
            logits = self.model(model_input, seed=batch_seed(self.seed, batch_index))
        return {PRODUCT: logits.float().cpu().numpy()}


def build(ctx: Context) -> SegmentPredictor:
    return SegmentPredictor(ctx)
