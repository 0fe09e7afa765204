"""terramind:embed — backbone or Thinking-in-Modalities embeddings of the inputs as a multi-band raster."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from .base import TOKENIZED_MODALITIES, TaskSpec, TerraMindAlgorithm

MODES = (("embed", "Backbone (encoder output)"), ("tim-embed", "Thinking-in-Modalities (TiM)"))
MERGE_METHODS = ("mean", "max", "concat")


class EmbedAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "embed"
    uses_location = True
    DISPLAY = "Embeddings (backbone or TiM)"
    HELP = (
        "Writes TerraMind 1.0 encoder embeddings of the inputs as a multi-band raster: one pixel per "
        "16×16-pixel patch, one band per feature.<br><br>"
        "<b>Mode</b>: the plain backbone, or Thinking-in-Modalities (TiM), which first generates the "
        "<i>TiM modalities</i> (e.g. LULC) and encodes them with the inputs.<br>"
        "<b>Layer</b>: which encoder layer to take (-1 = the last one, 0 = the first).<br>"
        "<b>Merge</b>: how the tokens of several input modalities are combined per patch: mean, max, "
        "or concat (bands = modalities × width).<br>"
        "Use the embeddings for clustering, similarity search or as features for a classifier."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_input_parameters()
        self.add_model_parameter()
        self.addParameter(QgsProcessingParameterEnum(
            "MODE", self.tr("Mode"), options=[label for _, label in MODES], defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            "TIM_MODALITIES", self.tr("TiM modalities (TiM mode only)"), options=list(TOKENIZED_MODALITIES),
            allowMultiple=True, defaultValue=[TOKENIZED_MODALITIES.index("LULC")], optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "LAYER", self.tr("Encoder layer (-1 = last)"), QgsProcessingParameterNumber.Integer,
            defaultValue=-1, minValue=-64, maxValue=63))
        self.addParameter(QgsProcessingParameterEnum(
            "MERGE_METHOD", self.tr("Merge of modalities"), options=list(MERGE_METHODS), defaultValue=0))
        seed = QgsProcessingParameterNumber(
            "SEED", self.tr("Random seed (TiM generation)"), QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0)
        seed.setFlags(seed.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(seed)
        self.add_region_parameters()
        self.add_tiling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Embeddings")))

    def task_spec(self, parameters, context, feedback) -> TaskSpec:
        task = MODES[self.parameterAsEnum(parameters, "MODE", context)][0]
        options = {
            "layer": self.parameterAsInt(parameters, "LAYER", context),
            "merge_method": MERGE_METHODS[self.parameterAsEnum(parameters, "MERGE_METHOD", context)],
        }
        if task == "tim-embed":
            tim = [TOKENIZED_MODALITIES[i] for i in self.parameterAsEnums(parameters, "TIM_MODALITIES", context)]
            if not tim:
                raise QgsProcessingException(self.tr("TiM mode needs at least one TiM modality (e.g. LULC)."))
            options["tim_modalities"] = tim
        return TaskSpec(
            task=task, inputs=self.raster_inputs(parameters, context),
            outputs={"embeddings": self.destination(parameters, "OUTPUT", context)},
            destinations={"embeddings": "OUTPUT"}, options=options,
            extra={"seed": self.parameterAsInt(parameters, "SEED", context)})
