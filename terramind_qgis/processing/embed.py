"""terramind:embed — backbone or Thinking-in-Modalities embeddings of the inputs as a multi-band raster."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..jobspec_builder import EMBED_OUTPUT, JobChoices
from ..vocabulary import EMBED_MODES, MERGE_METHODS, OUTPUT_MODALITY_LABELS, index_of, labels, values
from .base import TerraMindAlgorithm


class EmbedAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "embed"
    uses_location = True
    DISPLAY = "Embeddings (backbone or TiM)"
    per_patch = True
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
            "MODE", self.tr("Mode"), options=labels(EMBED_MODES), defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            "TIM_MODALITIES", self.tr("TiM modalities (TiM mode only)"), options=list(values(OUTPUT_MODALITY_LABELS)),
            allowMultiple=True, defaultValue=[index_of(OUTPUT_MODALITY_LABELS, "LULC")], optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "LAYER", self.tr("Encoder layer (-1 = last)"), QgsProcessingParameterNumber.Integer,
            defaultValue=-1, minValue=-64, maxValue=63))
        self.addParameter(QgsProcessingParameterEnum(
            "MERGE_METHOD", self.tr("Merge of modalities"), options=labels(MERGE_METHODS), defaultValue=0))
        self._advanced(QgsProcessingParameterNumber(
            "TIMESTEPS", self.tr("Diffusion/decoding steps (TiM generation)"), QgsProcessingParameterNumber.Integer,
            defaultValue=10, minValue=1, maxValue=1000))
        self._advanced(QgsProcessingParameterNumber(
            "SEED", self.tr("Random seed (TiM generation)"), QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0))
        self.add_region_parameters()
        self.add_tiling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Embeddings")))

    def fill_choices(self, parameters, context, choices: JobChoices) -> dict:
        choices.task = values(EMBED_MODES)[self.parameterAsEnum(parameters, "MODE", context)]
        choices.inputs = self.raster_inputs(parameters, context)
        choices.output_files = {EMBED_OUTPUT: self.destination(parameters, "OUTPUT", context)}
        choices.layer = self.parameterAsInt(parameters, "LAYER", context)
        choices.merge_method = values(MERGE_METHODS)[self.parameterAsEnum(parameters, "MERGE_METHOD", context)]
        if choices.task == "tim-embed":
            choices.tim_modalities = [OUTPUT_MODALITY_LABELS[i].value
                                      for i in self.parameterAsEnums(parameters, "TIM_MODALITIES", context)]
        choices.timesteps = self.parameterAsInt(parameters, "TIMESTEPS", context)
        choices.seed = self.parameterAsInt(parameters, "SEED", context)
        return {EMBED_OUTPUT: "OUTPUT"}
