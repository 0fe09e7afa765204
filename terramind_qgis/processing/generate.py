"""terramind:generate — any-to-any generation: input rasters per modality → LULC, NDVI, DEM, S1, S2 layers."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingParameterEnum,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterVectorDestination)

from . import uncertainty
from .base import TaskSpec, TerraMindAlgorithm

# Generation targets with the name a user reads.
GENERATED = (
    ("S2L2A", "Sentinel-2 L2A"),
    ("S1GRD", "Sentinel-1 GRD"),
    ("S1RTC", "Sentinel-1 RTC"),
    ("DEM", "DEM"),
    ("LULC", "Land use / land cover (LULC)"),
    ("NDVI", "NDVI"),
    ("Coordinates", "Location (points)"),
)
# Outputs that are GeoPackage point layers, not GeoTIFFs (docs/jobspec.md, "Coordinates output")
POINT_OUTPUTS = ("Coordinates",)
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
            "OUTPUTS", self.tr("Outputs to generate"), options=[label for _, label in GENERATED],
            allowMultiple=True, defaultValue=[i for i, (key, _) in enumerate(GENERATED) if key in DEFAULT_OUTPUTS],
            optional=True))
        self.add_model_parameter()
        self.add_sampling_parameters(timesteps=10)
        uncertainty.add_parameters(self, spread=True)
        self.add_region_parameters()
        self.add_tiling_parameters()
        for key, label in GENERATED:
            kind = (QgsProcessingParameterVectorDestination if key in POINT_OUTPUTS
                    else QgsProcessingParameterRasterDestination)
            extra = {"type": QgsProcessing.TypeVectorPoint} if key in POINT_OUTPUTS else {}
            self.addParameter(kind(output_parameter(key), self.tr(f"Generated {label}"), optional=True,
                                   createByDefault=False, **extra))

    def task_spec(self, parameters, context, feedback) -> TaskSpec:
        inputs = self.raster_inputs(parameters, context)
        chosen = {GENERATED[i][0] for i in self.parameterAsEnums(parameters, "OUTPUTS", context)}
        outputs, destinations = {}, {}
        for key, label in GENERATED:
            name = output_parameter(key)
            gpkg = key in POINT_OUTPUTS
            path = (self.destination(parameters, name, context, (".gpkg",), "GeoPackage") if gpkg
                    else self.destination(parameters, name, context))
            if not path and key not in chosen:
                continue
            if key in inputs:
                raise QgsProcessingException(self.tr(
                    f"{key} is both an input and an output; generate it from the other modalities "
                    "or use terramind:reconstruct to check an input."))
            outputs[key] = path or self.temporary_destination(name, f"TerraMind {label}", context,
                                                               ".gpkg" if gpkg else ".tif")
            destinations[key] = name
        if inputs and not outputs:
            raise QgsProcessingException(self.tr("Choose at least one output to generate."))
        return TaskSpec(
            task="generate", inputs=inputs, outputs=outputs, destinations=destinations,
            options=uncertainty.options(self, parameters, context),
            extra={"timesteps": self.parameterAsInt(parameters, "TIMESTEPS", context),
                   "seed": self.parameterAsInt(parameters, "SEED", context)})
