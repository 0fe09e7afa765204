"""terramind:finetune — train a TerraMind segmentation model on a labels layer (polygons or a class raster).

The labels are checked and snapshotted in ``prepareAlgorithm`` (main thread: bad labels are refused before any
work, and unsaved memory layers are read thread-safely), written to a temporary file in the worker, and the
finetune JobSpec (``finetune.spec``, the dialog's builder) runs on the warm backend. Outputs: the checkpoint, its
metrics JSON and the HTML training report (shown in the Results Viewer).
"""
from __future__ import annotations

import json
import os

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputFile, QgsProcessingOutputHtml,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterField,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterNumber, QgsProcessingParameterVectorLayer,
                       QgsProcessingUtils)

from ..finetune.labels import LabelsError, read_labels
from ..finetune.spec import DECODERS, DEFAULTS, FinetuneChoices, SceneChoice, build_finetune_spec
from ..finetune.task import eta_text, output_of
from ..jobspec_builder import JobSpecError
from ..stages import TRAIN_STAGES
from ..vocabulary import INPUT_MODALITY_LABELS, MODEL_SIZES, values
from .base import PROCESSING_DEVICES, TerraMindAlgorithm
from .feedback import FeedbackReporter


class TrainingFeedback(FeedbackReporter):
    """Backend events → feedback: the bar follows the training steps, the text says epoch, step, loss and the
    time left, and each epoch's validation scores go to the log."""

    SPANS = TRAIN_STAGES
    DEFAULT_STAGE = "train"

    def progress(self, event: dict):
        super().progress(event)
        if event.get("stage") == "train" and event.get("message"):
            left = eta_text(event.get("eta_s"))
            self.feedback.setProgressText(f"{event['message']}{f' · {left}' if left else ''}")
        metrics = event.get("metrics")
        if isinstance(metrics, dict):
            self.feedback.pushInfo(json.dumps(metrics))


class FinetuneAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "finetune"
    DISPLAY = "Train a segmentation model on your labels"
    uses_precision = False
    HELP = (
        "Fine-tunes TerraMind (backbone, neck, decoder and segmentation head, as TerraTorch builds them) on your "
        "labels and writes a Lightning checkpoint that <code>terramind:segment</code> and TerraTorch open.<br><br>"
        "<b>Labels</b>: a polygon layer with a class field (integer or text; pixels outside the polygons are "
        "unlabelled) or a class raster (integer codes; 0 and nodata are unlabelled unless its palette lists 0). "
        "Class names and colours come from the layer's categorized or paletted style. Any CRS; unsaved memory "
        "layers work.<br><br>Beside the checkpoint: <code>.metrics.json</code> (per-epoch loss and validation "
        "mIoU, per-class scores, confusion matrix) and <code>.report.html</code>."
    )

    def __init__(self):
        super().__init__()
        self._labels = None

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_input_parameters()
        # Polygons and a class raster are two parameters: QGIS 3.22's field widget crashes when the layer
        # parameter it follows holds a raster.
        self.addParameter(QgsProcessingParameterVectorLayer(
            "LABELS", self.tr("Labels: polygons with a class field"), types=[QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            "FIELD", self.tr("Class field (integer or text)"), parentLayerParameterName="LABELS", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "LABELS_RASTER", self.tr("… or labels: a class raster (integer codes; 0 = unlabelled)"), optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", self.tr("Trained model"), fileFilter="Lightning checkpoints (*.ckpt)"))
        self.addParameter(QgsProcessingParameterNumber(
            "EPOCHS", self.tr("Epochs"), QgsProcessingParameterNumber.Integer, defaultValue=DEFAULTS.epochs,
            minValue=1, maxValue=1000))
        self.addParameter(QgsProcessingParameterEnum(
            "DECODER", self.tr("Decoder"), options=list(DECODERS), defaultValue=DECODERS.index(DEFAULTS.decoder)))
        self.add_model_parameter()
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", self.tr("Resolution (pixel size in the scene's CRS units)"),
            QgsProcessingParameterNumber.Double, defaultValue=10.0, minValue=0.000001))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", self.tr("Random seed"), QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0))
        self._advanced(QgsProcessingParameterEnum(
            "DEVICE", self.tr("Device"), options=[choice.label for choice in PROCESSING_DEVICES], defaultValue=0))
        self._advanced(QgsProcessingParameterNumber(
            "BATCH_SIZE", self.tr("Chips per step"), QgsProcessingParameterNumber.Integer,
            defaultValue=DEFAULTS.batch_size, minValue=1, maxValue=1024))
        self._advanced(QgsProcessingParameterNumber(
            "CHIP_SIZE", self.tr("Chip size (pixels, a multiple of 32)"), QgsProcessingParameterNumber.Integer,
            defaultValue=DEFAULTS.chip_size, minValue=32, maxValue=2048))
        self._advanced(QgsProcessingParameterNumber(
            "LEARNING_RATE", self.tr("Learning rate"), QgsProcessingParameterNumber.Double, defaultValue=DEFAULTS.lr,
            minValue=1e-8, maxValue=1.0))
        self._advanced(QgsProcessingParameterBoolean(
            "TRAIN_BACKBONE", self.tr("Train the backbone too (slower; at a lower learning rate)"),
            defaultValue=not DEFAULTS.freeze_backbone))
        self._advanced(QgsProcessingParameterBoolean(
            "BALANCED", self.tr("Weight classes by inverse frequency (rare classes count more)"), defaultValue=False))
        self._advanced(QgsProcessingParameterBoolean("DICE", self.tr("Add a Dice loss"), defaultValue=False))
        self._advanced(QgsProcessingParameterNumber(
            "VAL_FRACTION", self.tr("Validation share (spatial blocks held out)"), QgsProcessingParameterNumber.Double,
            defaultValue=DEFAULTS.val_fraction, minValue=0.01, maxValue=0.9))
        self._advanced(QgsProcessingParameterNumber(
            "EARLY_STOPPING", self.tr("Stop after this many epochs without a better validation mIoU (0 = never)"),
            QgsProcessingParameterNumber.Integer, defaultValue=DEFAULTS.early_stopping, minValue=0))
        self._advanced(QgsProcessingParameterBoolean(
            "RESUME", self.tr("Resume an interrupted training of this checkpoint"), defaultValue=False))
        self.addOutput(QgsProcessingOutputFile("METRICS", self.tr("Training metrics (JSON)")))
        self.addOutput(QgsProcessingOutputHtml("REPORT", self.tr("Training report")))

    def checkParameterValues(self, parameters, context):  # noqa: N802 (no tiling parameters here)
        return super(TerraMindAlgorithm, self).checkParameterValues(parameters, context)

    # -- main thread: the labels ----------------------------------------------------------------
    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        super().prepareAlgorithm(parameters, context, feedback)
        inputs = [self.parameterAsRasterLayer(parameters, key, context) for key in values(INPUT_MODALITY_LABELS)]
        inputs = [layer for layer in inputs if layer is not None]
        if not inputs:
            raise QgsProcessingException(self.tr("Choose at least one input raster."))
        polygons = self.parameterAsVectorLayer(parameters, "LABELS", context)
        raster = self.parameterAsRasterLayer(parameters, "LABELS_RASTER", context)
        if polygons is not None and raster is not None:
            raise QgsProcessingException(self.tr("Give the labels either as polygons or as a class raster, not both."))
        layer = polygons or raster
        field = self.parameterAsString(parameters, "FIELD", context) or None
        try:
            self._labels = read_labels(layer, field, inputs)
        except LabelsError as exc:
            raise QgsProcessingException(str(exc)) from None
        return True

    # -- worker thread --------------------------------------------------------------------------
    def choices(self, parameters, context) -> FinetuneChoices:
        inputs = self.raster_inputs(parameters, context)
        checkpoint = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if checkpoint and not checkpoint.lower().endswith(".ckpt"):
            checkpoint += ".ckpt"
        return FinetuneChoices(
            scenes=[SceneChoice(inputs=inputs)], checkpoint=checkpoint,
            classes=[c.to_json() for c in self._labels.classes] or None,
            model_size=values(MODEL_SIZES)[self.parameterAsEnum(parameters, "MODEL", context)],
            device=self.device(parameters, context), seed=self.parameterAsInt(parameters, "SEED", context),
            resolution=self.parameterAsDouble(parameters, "RESOLUTION", context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            decoder=DECODERS[self.parameterAsEnum(parameters, "DECODER", context)],
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            chip_size=self.parameterAsInt(parameters, "CHIP_SIZE", context),
            lr=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            freeze_backbone=not self.parameterAsBool(parameters, "TRAIN_BACKBONE", context),
            class_weights="balanced" if self.parameterAsBool(parameters, "BALANCED", context) else None,
            dice=self.parameterAsBool(parameters, "DICE", context),
            val_fraction=self.parameterAsDouble(parameters, "VAL_FRACTION", context),
            early_stopping=self.parameterAsInt(parameters, "EARLY_STOPPING", context),
            resume=self.parameterAsBool(parameters, "RESUME", context))

    def build_spec(self, parameters, context, feedback=None) -> tuple:
        if self._labels is None:   # processAlgorithm without prepareAlgorithm (never by QGIS itself)
            self.prepareAlgorithm(parameters, context, feedback)
        choices = self.choices(parameters, context)
        folder = os.path.join(QgsProcessingUtils.tempFolder(), f"terramind-labels-{id(self)}")
        try:
            labels = self._labels.jobspec(self._labels.write(folder, feedback))
            choices.scenes[0].labels = labels
            return build_finetune_spec(choices), {}
        except LabelsError as exc:
            raise QgsProcessingException(str(exc)) from None
        except JobSpecError as exc:
            raise QgsProcessingException("; ".join(p.message for p in exc.problems)) from None

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..client import BackendCancelled, BackendError, get_client

        spec, _ = self.build_spec(parameters, context, feedback)
        feedback.pushDebugInfo(f"TerraMind JobSpec: {json.dumps(spec)}")
        try:
            client = getattr(self, "_client", None) or get_client()
            result = client.run_job(spec, on_event=TrainingFeedback(feedback), is_cancelled=feedback.isCanceled)
        except BackendCancelled as exc:
            # The backend says whether the best checkpoint so far was kept.
            raise QgsProcessingException(exc.message) from None
        except BackendError as exc:
            where = f" (JobSpec field: {exc.field})" if exc.field else ""
            raise QgsProcessingException(f"{exc.message}{where}") from None
        finally:
            self._labels = None
        feedback.pushInfo(f"Model saved to {output_of(result, 'checkpoint')}")
        return {"OUTPUT": output_of(result, "checkpoint"), "METRICS": output_of(result, "metrics"),
                "REPORT": output_of(result, "report")}
