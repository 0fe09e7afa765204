"""terramind:reconstruct — tokenizer round trip of one modality (encode to tokens, decode back)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..jobspec_builder import JobChoices
from ..modalities import MODALITIES
from ..vocabulary import OUTPUT_MODALITY_LABELS, values
from .base import TerraMindAlgorithm
from .choices import input_choice, parse_band_mapping, parse_scaling

# Every raster modality with a tokenizer (enum positions are kept by saved models and scripts).
TOKENIZED_MODALITIES = tuple(m for m in values(OUTPUT_MODALITY_LABELS) if MODALITIES[m].can_input)


class ReconstructAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "reconstruct"
    DISPLAY = "Reconstruct through the tokenizer"
    HELP = (
        "Encodes one raster with the TerraMind tokenizer of its modality and decodes it back. A faithful "
        "reconstruction shows the input is in the form the model expects (modality, band order, value "
        "range); a poor one points at wrong bands or scaling.<br><br>"
        "<b>Steps</b>: decoding steps of the diffusion decoder (S2L2A, S1GRD, S1RTC, DEM tokenizers)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterEnum(
            "MODALITY", self.tr("Modality of the input"), options=list(TOKENIZED_MODALITIES), defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            "BANDS", self.tr("Bands in the pretrained order (e.g. 1,2,3; empty = all, in file order)"),
            optional=True))
        self._advanced(QgsProcessingParameterString(
            "SCALE", self.tr("Value scaling SCALE[,OFFSET]: value = raw × SCALE + OFFSET (e.g. 10000)"), optional=True))
        self.add_sampling_parameters(timesteps=10)
        self.add_region_parameters()
        self.add_tiling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Reconstruction")))

    def model_size(self, parameters, context):
        return None  # tokenizers do not depend on the model size; the engine picks the modality's one

    def modality(self, parameters, context) -> str:
        return TOKENIZED_MODALITIES[self.parameterAsEnum(parameters, "MODALITY", context)]

    def fill_choices(self, parameters, context, choices: JobChoices) -> dict:
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise QgsProcessingException(self.tr("Choose the input raster."))
        modality = self.modality(parameters, context)
        text = (self.parameterAsString(parameters, "BANDS", context) or "").strip()
        bands = parse_band_mapping(f"{modality}={text}")[modality] if text else None
        scale = (self.parameterAsString(parameters, "SCALE", context) or "").strip()
        scaling = parse_scaling(f"{modality}={scale}")[modality] if scale else None
        choices.task = "reconstruct"
        choices.inputs = [input_choice(modality, layer, bands, scaling)]
        choices.output_files = {modality: self.destination(parameters, "OUTPUT", context)}
        choices.timesteps = self.parameterAsInt(parameters, "TIMESTEPS", context)
        choices.seed = self.parameterAsInt(parameters, "SEED", context)
        return {modality: "OUTPUT"}
