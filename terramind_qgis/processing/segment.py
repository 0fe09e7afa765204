"""terramind:segment — a fine-tuned TerraMind segmentation checkpoint on its inputs → class raster (+ probabilities)."""
from __future__ import annotations

from qgis.core import QgsProcessingException, QgsProcessingParameterFile, QgsProcessingParameterRasterDestination

from . import uncertainty
from .base import TaskSpec, TerraMindAlgorithm


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

    def model_name(self, parameters, context):
        return None  # the checkpoint names its backbone

    def task_spec(self, parameters, context, feedback) -> TaskSpec:
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context)
        if not checkpoint:
            raise QgsProcessingException(self.tr("Choose the fine-tuned checkpoint file."))
        outputs = {"classes": self.destination(parameters, "OUTPUT", context)}
        destinations = {"classes": "OUTPUT"}
        probabilities = self.destination(parameters, "OUTPUT_PROBABILITIES", context)
        if probabilities:
            outputs["probabilities"] = probabilities
            destinations["probabilities"] = "OUTPUT_PROBABILITIES"
        return TaskSpec(
            task="segment", inputs=self.raster_inputs(parameters, context), outputs=outputs,
            destinations=destinations, options={"checkpoint": checkpoint, "probabilities": bool(probabilities),
                                                **uncertainty.options(self, parameters, context)})
