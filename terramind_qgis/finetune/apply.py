"""Apply a freshly trained model: segment its first scene's inputs (the existing ``segment`` task, built on the
plugin's one JobSpec road) and add the class layer with the user's class names and colours, its metadata linking
the training report."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Dict, Optional

from qgis.core import QgsLayerMetadata, QgsPalettedRasterRenderer
from qgis.PyQt.QtGui import QColor

from ..jobspec_builder import JobChoices, build_jobspec
from ..task import Done
from .spec import FinetuneChoices
from .task import output_of


def classes_path(checkpoint: str) -> str:
    """A new file beside the checkpoint: model_classes.tif, model_classes_2.tif, … (earlier results stay)."""
    stem = os.path.splitext(checkpoint)[0]
    path, number = f"{stem}_classes.tif", 1
    while os.path.exists(path):
        number += 1
        path = f"{stem}_classes_{number}.tif"
    return path


def segment_choices(training: FinetuneChoices, checkpoint: str, output: str,
                    base: Optional[JobChoices] = None) -> JobChoices:
    """The segment job for the first training scene's inputs (same files, bands and scaling as in training) on
    the training's device and pixel size; area, CRS and tiling come from ``base`` (the dialog's current choices;
    None: the whole first input with the default tiling)."""
    return replace(base or JobChoices(), task="segment", model_size=None, inputs=list(training.scenes[0].inputs),
                   outputs=[], output_files={"classes": output}, checkpoint=checkpoint, probabilities=False,
                   device=training.device, resolution=training.resolution, uncertainty={}, use_location=False)


def style_classes(layer, classes: list) -> None:
    """Paletted renderer: class index → the user's name and colour (result ``classes``: value = index)."""
    palette = [QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(c.get("color") or "#808080"),
                                               str(c.get("name") or c["value"])) for c in classes]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, palette))
    layer.triggerRepaint()


def link_report(layer, report: str, checkpoint: str) -> None:
    """The layer's metadata says which model made it and links the training report."""
    metadata = layer.metadata() if isinstance(layer.metadata(), QgsLayerMetadata) else QgsLayerMetadata()
    metadata.setAbstract(f"Classes predicted by the TerraMind model {checkpoint}. Training report: {report}")
    link = QgsLayerMetadata.Link("Training report", "WWW:LINK", f"file://{report}")
    link.mimeType = "text/html"
    metadata.addLink(link)
    layer.setMetadata(metadata)


class ModelApplication:
    """One click's worth of applying: builds the segment job, queues it, styles its layer when done."""

    def __init__(self, training: FinetuneChoices, result: Dict[str, Any], *, iface=None, project=None,
                 task_factory: Optional[Callable] = None, on_finished: Optional[Callable[[Any], None]] = None):
        self.training = training
        self.result = result
        self.iface = iface
        self.project = project
        self.task_factory = task_factory
        self.on_finished = on_finished
        self.checkpoint = output_of(result, "checkpoint")
        self.report = output_of(result, "report")
        self.task = None
        self.outcome = None     # the segment task's Done/Failed/Cancelled, once it has finished

    def start(self, base: Optional[JobChoices] = None):
        """Queue the segment task (returned; keep it referenced until it finishes). Raises ``JobSpecError`` when
        the job cannot run (e.g. an input file has gone)."""
        from qgis.core import QgsApplication

        spec = build_jobspec(segment_choices(self.training, self.checkpoint, classes_path(self.checkpoint), base))
        name = f"TerraMind: classes from {os.path.basename(self.checkpoint)}"
        if self.task_factory is not None:
            self.task = self.task_factory(name, spec, on_finished=self._done)
        else:
            from ..task import TerraMindTask

            self.task = TerraMindTask(name, spec, on_finished=self._done, iface=self.iface, project=self.project)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _done(self, outcome) -> None:
        self.outcome = outcome
        if isinstance(outcome, Done):
            classes = self.result.get("classes") or []
            for layer in outcome.layers:
                if classes:
                    style_classes(layer, classes)
                if self.report:
                    link_report(layer, self.report, self.checkpoint)
        if self.on_finished is not None:
            self.on_finished(outcome)
