"""Validate the training scenes and index their chips, before any model is loaded or file written.

Each scene is inspected like a job's inputs (``engine.validate.inspect_job``: files, CRS, bands,
grid in the first optical input's CRS at ``resolution``), its labels are opened on that grid, and
the grid is cut into non-overlapping ``chip_size`` chips (the last row/column padded with invalid
pixels, never shifted inward, so no two chips share a pixel and the block split cannot leak).
One streaming pass over the labels counts the labelled pixels of every class in every chip.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..engine.errors import JobCancelled, JobValidationError
from ..engine.jobspec import JobSpec, Tiling
from ..engine.modalities import MODALITIES
from ..engine.validate import Layout, inspect_job
from ..models.segmentation.classes import SegmentationClass, default_color
from .labels import open_labels
from .spec import FinetuneSpec, LabelValue, check_output_folder, output_paths


@dataclass
class Chip:
    scene: int
    row: int            # pixel offsets on the scene grid
    col: int
    counts: Counter     # raw label value -> labelled pixels

    def window(self, size: int) -> Window:
        return Window(self.col, self.row, size, size)


@dataclass
class PreparedScene:
    index: int
    layout: Layout
    labels: object
    chips: List[Chip] = field(default_factory=list)


@dataclass
class Prepared:
    """Everything validation learnt: scenes with their chips, the class table and label counts."""
    spec: FinetuneSpec
    scenes: List[PreparedScene]
    classes: List[SegmentationClass]           # model order; value = class index
    label_values: List[LabelValue]             # label code of each class
    chips: List[Chip]                          # chips with at least one labelled pixel
    class_pixels: List[int]

    @property
    def table(self) -> Dict[LabelValue, int]:
        return {v: i for i, v in enumerate(self.label_values)}

    def close(self) -> None:
        for s in self.scenes:
            s.labels.close()


def _expected_bands(spec: FinetuneSpec, mod: str) -> int:
    bands = (spec.training_options.bands or {}).get(mod)
    return len(bands) if bands else MODALITIES[mod].channels


def _check_paths(spec: FinetuneSpec) -> None:
    check_output_folder(spec)
    inputs = {}
    for i, scene in enumerate(spec.training):
        for mod, item in scene.inputs.items():
            inputs[os.path.realpath(item.path)] = f"training[{i}].inputs.{mod}"
        inputs[os.path.realpath(scene.labels.path)] = f"training[{i}].labels"
    for path in output_paths(spec):
        real = os.path.realpath(path)
        if real in inputs:
            raise JobValidationError(f"Output {path} would overwrite {inputs[real]}; choose another checkpoint name.",
                                     "outputs.checkpoint")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise JobValidationError(f"Output {path} exists and is read-only.", "outputs.checkpoint")


def _inspect_scene(spec: FinetuneSpec, i: int) -> Layout:
    scene = spec.training[i]
    job = JobSpec(task="segment", model=spec.model, inputs=dict(scene.inputs), outputs={"classes": spec.checkpoint},
                  resolution=spec.resolution, tiling=Tiling(), device=spec.device)
    try:
        layout = inspect_job(job)
    except JobValidationError as exc:
        where = f"training[{i}].{exc.field}" if exc.field and exc.field.startswith("inputs") else exc.field
        raise JobValidationError(exc.message, where) from None
    for mod, source in layout.sources.items():
        need = _expected_bands(spec, mod)
        if len(source.bands) != need:
            names = (spec.training_options.bands or {}).get(mod) or MODALITIES[mod].band_names
            raise JobValidationError(
                f"training[{i}] {mod} ({os.path.basename(source.path)}) gives {len(source.bands)} band(s) but the model "
                f"takes {need} ({', '.join(names)}); list them in training[{i}].inputs.{mod}.bands.",
                f"training[{i}].inputs.{mod}.bands")
    return layout


def _resolve_classes(spec: FinetuneSpec, totals: Counter, zero_unlabelled: bool):
    if spec.classes is not None:
        values = [c.value for c in spec.classes]
        named = [(c.name if c.name is not None else str(c.value), c.color) for c in spec.classes]
    else:
        values = sorted((v for v in totals if not (zero_unlabelled and v == 0)),
                        key=lambda v: (isinstance(v, str), v))
        named = [(str(v), None) for v in values]
    classes = [SegmentationClass(i, name, color.upper() if color else default_color(i))
               for i, (name, color) in enumerate(named)]
    return classes, values


def prepare(spec: FinetuneSpec, emit: Callable[[dict], None] = lambda e: None,
            cancel=None) -> Prepared:
    """Validate every scene and its labels and index the chips (see the module docstring)."""
    _check_paths(spec)
    opts = spec.training_options
    size = opts.chip_size
    scenes: List[PreparedScene] = []
    totals: Counter = Counter()
    zero_unlabelled = False
    try:
        for i in range(len(spec.training)):
            layout = _inspect_scene(spec, i)
            where = f"training[{i}].labels"
            labels = open_labels(spec.training[i].labels, layout.grid, where)
            scenes.append(PreparedScene(i, layout, labels))
            grid = layout.grid
            if labels.kind == "raster":
                lb = transform_bounds(labels.crs, grid.crs, *labels.bounds, densify_pts=21)
                overlap = lb[0] < grid.bounds[2] and lb[2] > grid.bounds[0] and lb[1] < grid.bounds[3] and \
                    lb[3] > grid.bounds[1]
                zero_unlabelled = True
            else:
                overlap = labels.overlaps(grid.bounds)
            if not overlap:
                raise JobValidationError(f"The labels {os.path.basename(labels.path)} do not overlap scene {i} "
                                         f"({', '.join(os.path.basename(s.path) for s in layout.sources.values())}).",
                                         f"{where}.path")
            for row in range(0, grid.height, size):
                for col in range(0, grid.width, size):
                    if cancel is not None and cancel.is_set():
                        raise JobCancelled()
                    counts = labels.count_values(Window(col, row, size, size))
                    if counts:
                        scenes[-1].chips.append(Chip(i, row, col, counts))
                        totals.update(counts)
            emit({"event": "progress", "stage": "prepare", "done": i + 1, "total": len(spec.training),
                  "fraction": (i + 1) / len(spec.training), "eta_s": None,
                  "message": f"Indexed scene {i + 1}/{len(spec.training)}: {len(scenes[-1].chips)} labelled chips"})
        classes, values = _resolve_classes(spec, totals, zero_unlabelled)
        table = {v: k for k, v in enumerate(values)}
        chips, pixels = [], [0] * len(values)
        for scene in scenes:
            labelled = 0
            for chip in scene.chips:
                chip.counts = Counter({v: n for v, n in chip.counts.items() if v in table})
                if chip.counts:
                    chips.append(chip)
                    for v, n in chip.counts.items():
                        pixels[table[v]] += n
                        labelled += n
            if not labelled:
                raise JobValidationError(f"Scene {scene.index}: the labels {os.path.basename(scene.labels.path)} have no "
                                         f"labelled pixel inside the inputs (no overlap, or no value among the classes).",
                                         f"training[{scene.index}].labels.path")
        present = [c.name for c, n in zip(classes, pixels) if n]
        if len(present) < 2:
            found = present[0] if present else "none"
            raise JobValidationError(f"The labels hold only one class ({found}); training needs at least two classes "
                                     "with labelled pixels.", "training[0].labels")
        missing = [c.name for c, n in zip(classes, pixels) if not n]
        if missing:
            emit({"event": "log", "level": "warning",
                  "message": f"No labelled pixel for class(es) {', '.join(missing)}; the model can still predict them."})
        total = sum(pixels)
        need = max(opts.min_labelled_pixels, 1)
        if total < need:
            raise JobValidationError(f"Only {total} labelled pixels in all scenes; training needs at least {need} "
                                     f"(training_options.min_labelled_pixels). Draw or add more labels.",
                                     "training[0].labels")
        if len(chips) < 2:
            raise JobValidationError(f"All labels fall into one {size} px chip; a train/validation split needs at "
                                     f"least two: label a larger area or lower training_options.chip_size.",
                                     "training_options.chip_size")
        for s in scenes:
            if getattr(s.labels, "skipped_types", None):
                emit({"event": "log", "level": "warning", "message": f"Skipped non-polygon features "
                      f"({', '.join(s.labels.skipped_types)}) in {os.path.basename(s.labels.path)}."})
        return Prepared(spec, scenes, classes, values, chips, pixels)
    except BaseException:
        for s in scenes:
            s.labels.close()
        raise
