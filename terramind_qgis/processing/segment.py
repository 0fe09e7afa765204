"""terramind:segment — a fine-tuned TerraMind segmentation checkpoint on its inputs → class raster (+ probabilities)."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterRasterDestination

from ..jobspec_builder import JobChoices
from . import uncertainty
from .base import TerraMindAlgorithm


class SegmentAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "segment"
    uses_precision = False  # a fine-tuned checkpoint always runs in fp32
    DISPLAY = "Segment with a fine-tuned model"
    HELP = (
        "Runs a TerraMind segmentation model fine-tuned with TerraTorch (a Lightning <code>.ckpt</code>, "
        "or a <code>.pt</code>/<code>.safetensors</code> state dict with its config) on the input rasters "
        "and writes the class of every pixel; optionally also the class probabilities (one band per class).<br><br>"
        "Give the same modalities, in the same band order, as the model was fine-tuned on. The backbone size "
        "and the classes come from the checkpoint.<br>"
        "<b>Confidence and entropy</b>: also write the largest class probability and the normalized entropy "
        "of the class probabilities (0 = sure, 1 = all classes equally likely)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "CHECKPOINT", self.tr("Fine-tuned checkpoint"), behavior=QgsProcessingParameterFile.File,
            fileFilter="Checkpoints (*.ckpt *.pt *.pth *.safetensors);;All files (*.*)"))
        self.add_input_parameters()
        uncertainty.add_parameters(self, spread=False)
        self.add_region_parameters()
        self.add_tiling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Classes")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_PROBABILITIES", self.tr("Class probabilities"), optional=True, createByDefault=False))

    def model_size(self, parameters, context):
        return None  # the checkpoint names its backbone

    def fill_choices(self, parameters, context, choices: JobChoices) -> dict:
        choices.task = "segment"
        choices.checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context) or None
        choices.inputs = self.raster_inputs(parameters, context)
        choices.output_files = {"classes": self.destination(parameters, "OUTPUT", context)}
        destinations = {"classes": "OUTPUT"}
        probabilities = self.destination(parameters, "OUTPUT_PROBABILITIES", context)
        if probabilities:
            choices.output_files["probabilities"] = probabilities
            destinations["probabilities"] = "OUTPUT_PROBABILITIES"
        choices.probabilities = bool(probabilities)
        choices.uncertainty = uncertainty.choice(self, parameters, context)
        return destinations
