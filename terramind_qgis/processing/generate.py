"""terramind:generate — any-to-any generation: input rasters per modality → LULC, NDVI, DEM, S1, S2 layers."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingParameterEnum, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterVectorDestination)

from ..jobspec_builder import JobChoices
from ..modalities import VECTOR_OUTPUT_SUFFIX
from ..vocabulary import OUTPUT_MODALITY_LABELS, labels
from . import uncertainty
from .base import TerraMindAlgorithm

DEFAULT_OUTPUTS = ("LULC",)


def output_parameter(modality: str) -> str:
    return f"OUTPUT_{modality}"


class GenerateAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "generate"
    uses_location = True
    DISPLAY = "Generate layers (any-to-any)"
    HELP = (
        "Generates new layers from the input rasters with TerraMind 1.0's any-to-any generation: "
        "land use/land cover, NDVI, a DEM, Sentinel-1 or Sentinel-2 images, and the location TerraMind places each "
        "tile at (a point layer with the tile's true centre and the distance).<br><br>"
        "<b>Inputs</b>: give one raster per modality you have (at least one). Band order must be the "
        "model's pretrained order, found from band descriptions when the file has them; otherwise set a "
        "band mapping (advanced), e.g. <code>S1RTC=2,1</code> for a VH, VV file.<br>"
        "<b>Outputs</b>: every modality ticked in <i>Outputs to generate</i> and every output that has a "
        "destination file is generated; ticked outputs without a destination go to temporary files.<br>"
        "<b>Use location</b> (advanced): each tile's centre (lon/lat) is one more input of the image outputs.<br>"
        "<b>Timesteps</b>: decoding steps of the generation (more = slower, a bit sharper). "
        "<b>Seed</b>: same seed and inputs give the same result.<br>"
        "<b>Confidence and entropy</b> (LULC): the largest class probability and how spread the classes are. "
        "<b>Spread</b> (S1, S2, DEM, NDVI): the per-pixel standard deviation over N generations with seeds seed, "
        "seed+1, …, in the output's units; costs N times the generation.<br>"
        "Scenes of any size run tile by tile in the TerraMind backend process; the grid is the first "
        "optical input's CRS at the chosen resolution unless an extent or CRS is given."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_input_parameters()
        self.addParameter(QgsProcessingParameterEnum(
            "OUTPUTS", self.tr("Outputs to generate"), options=labels(OUTPUT_MODALITY_LABELS), allowMultiple=True,
            defaultValue=[i for i, choice in enumerate(OUTPUT_MODALITY_LABELS) if choice.value in DEFAULT_OUTPUTS],
            optional=True))
        self.add_model_parameter()
        self.add_sampling_parameters(timesteps=10)
        uncertainty.add_parameters(self, spread=True)
        self.add_region_parameters()
        self.add_tiling_parameters()
        for key, label, _ in OUTPUT_MODALITY_LABELS:
            if key in VECTOR_OUTPUT_SUFFIX:   # Coordinates: a point layer (GeoPackage)
                self.addParameter(QgsProcessingParameterVectorDestination(
                    output_parameter(key), self.tr(f"Generated {label}"), QgsProcessing.TypeVectorPoint,
                    optional=True, createByDefault=False))
            else:
                self.addParameter(QgsProcessingParameterRasterDestination(
                    output_parameter(key), self.tr(f"Generated {label}"), optional=True, createByDefault=False))

    def fill_choices(self, parameters, context, choices: JobChoices) -> dict:
        choices.task = "generate"
        choices.inputs = self.raster_inputs(parameters, context)
        chosen = {OUTPUT_MODALITY_LABELS[i].value for i in self.parameterAsEnums(parameters, "OUTPUTS", context)}
        choices.output_files, destinations = {}, {}
        for key, label, _ in OUTPUT_MODALITY_LABELS:
            name = output_parameter(key)
            path = self.destination(parameters, name, context)
            if not path and key not in chosen:
                continue
            choices.output_files[key] = path or self.temporary_destination(
                name, f"TerraMind {label}", context, VECTOR_OUTPUT_SUFFIX.get(key, ".tif"))
            destinations[key] = name
        choices.timesteps = self.parameterAsInt(parameters, "TIMESTEPS", context)
        choices.seed = self.parameterAsInt(parameters, "SEED", context)
        choices.uncertainty = uncertainty.choice(self, parameters, context)
        return destinations
