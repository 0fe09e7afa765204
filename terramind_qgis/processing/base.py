"""Shared base of the TerraMind algorithms: common parameters, parameters → `JobChoices` → JobSpec, running it.

A subclass declares its own parameters in ``initAlgorithm`` (with the ``add_*`` helpers below for the shared
ones) and implements ``fill_choices``: it sets its task, inputs, output files and task options on the
`JobChoices` the base class filled from the shared parameters (model, extent, CRS, resolution, tiling,
device, precision) and returns which JobSpec output goes to which algorithm output. The JobSpec itself is
built and checked by ``jobspec_builder``, the same road as the dialog's; its problems become
`QgsProcessingException`s. The job runs through the process-wide backend client from the worker thread;
backend events drive the feedback (``feedback.py``) and the engine's sidecar .qml styles go to the layers
that the toolbox loads when the run ends.
"""
from __future__ import annotations

import json

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingParameterBoolean,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..jobspec_builder import MAX_WINDOW, PATCH_SIZE, JobChoices, build_jobspec, check_job, tiling_problems
from ..layer_sources import crs_string
from ..layers import PCA_KIND
from ..paths import icon_path
from ..vocabulary import DEFAULT_MODEL_SIZE, DEVICES, INPUT_MODALITY_LABELS, MODEL_SIZES, PRECISIONS, Choice, \
    index_of, labels, values
from .choices import input_choice, parse_band_mapping, parse_scaling, problems_message
from .feedback import FeedbackReporter
from .styling import attach_style
from .uncertainty import KINDS as UNCERTAINTY_KINDS

HELP_URL = "https://github.com/terramind-qgis/terramind-qgis/blob/main/docs/processing.md"
VECTOR_KINDS = ("points", "areas")   # result output kinds written as GeoPackages (docs/protocol.md)
CONFIRM_PARAMETER = "CONFIRMED"   # accepts what the backend asks to confirm (protocol validate: confirm)
# Processing's device list starts with "take the plugin's setting".
PROCESSING_DEVICES = (Choice("", "Plugin setting"),) + DEVICES


class TerraMindAlgorithm(QgsProcessingAlgorithm):
    """Base class; subclasses set ``ALG_NAME``/``DISPLAY`` and implement initAlgorithm + fill_choices."""

    ALG_NAME = ""
    DISPLAY = ""
    HELP = ""
    uses_precision = True  # offers the PRECISION parameter (JobSpec options.precision)
    per_patch = False      # writes one value per 16 px patch: the tile overlap counts in whole patches
    uses_location = False  # offers USE_LOCATION (JobSpec options.use_location: tile centres as Coordinates)

    def __init__(self):
        super().__init__()
        self._styles = {}   # output path -> (sidecar .qml, is a DEM), filled in the worker, used on the main thread
        self._client = None

    # -- identity ------------------------------------------------------------------------------
    def name(self):
        return self.ALG_NAME

    def displayName(self):  # noqa: N802
        return self.tr(self.DISPLAY)

    def shortHelpString(self):  # noqa: N802
        sizes = model_sizes_help() if self.parameterDefinition("MODEL") is not None else ""
        return self.tr(self.HELP) + sizes

    def helpUrl(self):  # noqa: N802
        return f"{HELP_URL}#terramind{self.ALG_NAME}"

    def icon(self):
        return QIcon(icon_path())

    def createInstance(self):  # noqa: N802
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate("TerraMindProcessing", text)

    # -- shared parameter groups -------------------------------------------------------------------
    def add_input_parameters(self, modalities=INPUT_MODALITY_LABELS):
        for key, label, _ in modalities:
            self.addParameter(QgsProcessingParameterRasterLayer(key, self.tr(f"{label} input"), optional=True))
        self._advanced(QgsProcessingParameterString(
            "BANDS", self.tr("Band mapping (e.g. S2L2A=1,2,3,4,5,6,7,8,9,10,11,12; S1GRD=1,2)"),
            optional=True))
        self._advanced(QgsProcessingParameterString(
            "SCALE", self.tr("Value scaling, value = raw × SCALE + OFFSET (e.g. S2L2A=10000 for 0–1 reflectance)"),
            optional=True))

    def add_model_parameter(self):
        self.addParameter(QgsProcessingParameterEnum(
            "MODEL", self.tr("Model size"), options=labels(MODEL_SIZES),
            defaultValue=index_of(MODEL_SIZES, DEFAULT_MODEL_SIZE)))

    def add_sampling_parameters(self, timesteps=10):
        self.addParameter(QgsProcessingParameterNumber(
            "TIMESTEPS", self.tr("Diffusion/decoding steps"), QgsProcessingParameterNumber.Integer,
            defaultValue=timesteps, minValue=1, maxValue=1000))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", self.tr("Random seed"), QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0))

    def add_region_parameters(self):
        self.addParameter(QgsProcessingParameterExtent(
            "EXTENT", self.tr("Extent (default: the first input's full extent)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", self.tr("Resolution (pixel size in target CRS units)"),
            QgsProcessingParameterNumber.Double, defaultValue=10.0, minValue=0.000001))
        self.addParameter(QgsProcessingParameterCrs(
            "CRS", self.tr("Target CRS (default: the first optical input's CRS)"), optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            CONFIRM_PARAMETER, self.tr("Run even if the job looks like a mistake (very many windows, or pixels far "
                                       "finer than the inputs')"), defaultValue=False))

    def add_tiling_parameters(self):
        self._advanced(QgsProcessingParameterNumber(
            "TILE_SIZE", self.tr("Tile size (pixels)"), QgsProcessingParameterNumber.Integer,
            defaultValue=224, minValue=PATCH_SIZE, maxValue=MAX_WINDOW))
        self._advanced(QgsProcessingParameterNumber(
            "OVERLAP", self.tr("Tile overlap (pixels)"), QgsProcessingParameterNumber.Integer,
            defaultValue=32, minValue=0, maxValue=2048))
        self._advanced(QgsProcessingParameterNumber(
            "BATCH_SIZE", self.tr("Tiles per batch"), QgsProcessingParameterNumber.Integer,
            defaultValue=8, minValue=1, maxValue=1024))
        self._advanced(QgsProcessingParameterEnum(
            "DEVICE", self.tr("Device"), options=labels(PROCESSING_DEVICES), defaultValue=0))
        if self.uses_precision:
            self._advanced(QgsProcessingParameterEnum(
                "PRECISION", self.tr("Precision"), options=labels(PRECISIONS), defaultValue=0))
        if self.uses_location:
            self._advanced(QgsProcessingParameterBoolean(
                "USE_LOCATION", self.tr("Use location (each tile's centre, lon/lat, as TerraMind's Coordinates input)"),
                defaultValue=False))

    def _advanced(self, parameter):
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    # -- parameters -> JobChoices -> JobSpec -------------------------------------------------------
    def fill_choices(self, parameters, context, choices: JobChoices) -> dict:
        """Set task, inputs, output files and task options on ``choices``; return JobSpec output name ->
        algorithm output name."""
        raise NotImplementedError

    def model_size(self, parameters, context):
        """The model size, or None where the job names its own model (a checkpoint, a tokenizer)."""
        return values(MODEL_SIZES)[self.parameterAsEnum(parameters, "MODEL", context)]

    def shared_choices(self, parameters, context) -> JobChoices:
        """`JobChoices` holding the shared parameters; the rest keep the builder's defaults."""
        choices = JobChoices(model_size=self.model_size(parameters, context), device=self.device(parameters, context))
        if self.parameterDefinition("RESOLUTION") is not None:
            choices.resolution = self.parameterAsDouble(parameters, "RESOLUTION", context)
        if self.parameterDefinition("TILE_SIZE") is not None:
            choices.window = self.parameterAsInt(parameters, "TILE_SIZE", context)
            choices.overlap = self.parameterAsInt(parameters, "OVERLAP", context)
            choices.batch_size = self.parameterAsInt(parameters, "BATCH_SIZE", context)
        if self.parameterDefinition("PRECISION") is not None:
            choices.precision = values(PRECISIONS)[self.parameterAsEnum(parameters, "PRECISION", context)]
        if self.parameterDefinition("USE_LOCATION") is not None:
            choices.use_location = self.parameterAsBool(parameters, "USE_LOCATION", context)
        if self.parameterDefinition("CRS") is not None:
            crs = self.parameterAsCrs(parameters, "CRS", context)
            choices.crs = crs_string(crs) if crs.isValid() else None
        if self.parameterDefinition("EXTENT") is not None and parameters.get("EXTENT"):
            choices.extent_bounds, choices.extent_crs = self.extent(parameters, context)
        return choices

    def job_choices(self, parameters, context) -> tuple:
        """(JobChoices, destinations) for these parameters."""
        choices = self.shared_choices(parameters, context)
        destinations = self.fill_choices(parameters, context, choices)
        return choices, destinations

    def build_spec(self, parameters, context, feedback=None) -> tuple:
        """The JobSpec for these parameters and the map JobSpec output name -> algorithm output name."""
        choices, destinations = self.job_choices(parameters, context)
        problems = check_job(choices)
        if problems:
            raise QgsProcessingException(self.tr(problems_message(problems)))
        return build_jobspec(choices), destinations

    def raster_inputs(self, parameters, context, modalities=INPUT_MODALITY_LABELS) -> list:
        """An `InputChoice` for every modality parameter that has a layer, in the toolbox's order."""
        band_maps = parse_band_mapping(self.parameterAsString(parameters, "BANDS", context))
        scalings = parse_scaling(self.parameterAsString(parameters, "SCALE", context))
        inputs = []
        for key in values(modalities):
            layer = self.parameterAsRasterLayer(parameters, key, context)
            if layer is None:
                continue
            inputs.append(input_choice(key, layer, band_maps.pop(key, None), scalings.pop(key, None)))
        for what, left in (("Band mapping", band_maps), ("Value scaling", scalings)):
            if left:
                raise QgsProcessingException(self.tr(
                    f"{what} given for {', '.join(sorted(left))} but no input layer was chosen for it."))
        return inputs

    def first_input_crs(self, parameters, context):
        """CRS of the first raster layer parameter that has a value (input order = JobSpec order)."""
        for definition in self.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterRasterLayer):
                layer = self.parameterAsRasterLayer(parameters, definition.name(), context)
                if layer is not None:
                    return layer.crs()
        return QgsCoordinateReferenceSystem()

    def extent(self, parameters, context) -> tuple:
        """((minx, miny, maxx, maxy), CRS string) of the EXTENT parameter."""
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if not crs.isValid():
            # An extent typed without "[EPSG:…]" is in the project's CRS; headless there may be none.
            crs = context.project().crs() if context.project() else QgsCoordinateReferenceSystem()
        if not crs.isValid():
            crs = self.first_input_crs(parameters, context)
        rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(self.tr("The extent is empty."))
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_string(crs)

    def device(self, parameters, context) -> str:
        if self.parameterDefinition("DEVICE") is None:
            return settings_device()
        chosen = values(PROCESSING_DEVICES)[self.parameterAsEnum(parameters, "DEVICE", context)]
        return chosen or settings_device()

    def destination(self, parameters, name, context) -> str:
        """The file an output parameter asks for, or "" when the output is skipped (the builder checks its
        suffix: GeoTIFF, or GeoPackage for point outputs)."""
        path = self.parameterAsOutputLayer(parameters, name, context) or ""
        if not path:
            # runAndLoadResults registers a skipped (None) destination as "" to load: drop it.
            layers = context.layersToLoadOnCompletion()
            if "" in layers:
                del layers[""]
                context.setLayersToLoadOnCompletion(layers)
        return path

    def temporary_destination(self, name, label, context, suffix=".tif") -> str:
        """A temporary file (GeoTIFF unless ``suffix`` says otherwise) for an output without a destination;
        loaded like a temporary output."""
        path = QgsProcessingUtils.generateTempFilename(f"{name.lower()}{suffix}")
        # Inside a graphical model only the model's own outputs are loaded; the model algorithm adds
        # its "Model" scope to the context, which is how a child can tell.
        in_model = any(scope.name() == "Model" for scope in context.expressionContext().scopes())
        if context.project() is not None and not in_model:
            details = QgsProcessingContext.LayerDetails(label, context.project(), name)
            context.addLayerToLoadOnCompletion(path, details)
        return path

    # -- running -----------------------------------------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, message = super().checkParameterValues(parameters, context)
        if not ok or self.parameterDefinition("TILE_SIZE") is None:
            return ok, message
        problems = tiling_problems(self.parameterAsInt(parameters, "TILE_SIZE", context),
                                   self.parameterAsInt(parameters, "OVERLAP", context), self.per_patch)
        return (False, problems_message(problems)) if problems else (True, "")

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # The toolbox calls this on the main thread (processAlgorithm runs in a worker): read the
        # settings and the auth manager's HF token here, as get_client requires.
        from ..client import get_client

        self._client = get_client()
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self._styles = {}
        spec, destinations = self.build_spec(parameters, context, feedback)
        feedback.pushDebugInfo(f"TerraMind JobSpec: {json.dumps(spec)}")
        # Algorithms without the parameter (no region of their own) have nothing to confirm.
        confirmed = (self.parameterDefinition(CONFIRM_PARAMETER) is None
                     or self.parameterAsBool(parameters, CONFIRM_PARAMETER, context))
        result = run_job(spec, feedback, getattr(self, "_client", None), confirmed=confirmed)
        return self.collect_results(result, destinations, context, feedback)

    def collect_results(self, result, destinations, context, feedback) -> dict:
        results = {}
        for output in result.get("outputs", []):
            name = destinations.get(output.get("name"))
            derived = output.get("kind") in UNCERTAINTY_KINDS or output.get("kind") == PCA_KIND
            if name is None and derived and context.project() is not None:
                # derived layers (confidence, entropy, spread, embeddings PCA) load with the declared outputs
                details = QgsProcessingContext.LayerDetails(output["name"], context.project(), output["name"])
                context.addLayerToLoadOnCompletion(output["path"], details)
                if output.get("style"):
                    self._styles[output["path"]] = (output["style"], False)
                continue
            if name is None:
                feedback.pushInfo(self.tr(f"Backend wrote an extra output {output.get('name')}: {output.get('path')}"))
                continue
            results[name] = output["path"]
            if output.get("style"):
                self._styles[output["path"]] = (output["style"], str(output.get("name") or "").upper() == "DEM")
        missing = sorted(set(destinations.values()) - set(results))
        if missing:
            raise QgsProcessingException(self.tr(f"The backend did not write {', '.join(missing)}."))
        _hint_rasters(context, result)
        feedback.pushInfo(self.tr(
            f"TerraMind: {result.get('tiles', '?')} tile(s) on {result.get('device', '?')} "
            f"in {result.get('elapsed_s', 0):.1f} s"))
        return results

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        # Main thread, before the toolbox loads the layers: give each layer its engine style.
        from ..settings import Settings

        layers = context.layersToLoadOnCompletion()
        hillshade = Settings().dem_hillshade
        for path, (qml, is_dem) in self._styles.items():
            key = _matching_key(layers, path)
            if key is not None:
                attach_style(context, key, qml, hillshade=hillshade and is_dem)
        return {}


def model_sizes_help() -> str:
    """What hardware and time each model size needs, for the algorithms' help."""
    rows = "".join(f"<li><b>{c.label}</b>: {c.hint}</li>" for c in MODEL_SIZES)
    return ("<br><br><b>Model size</b>: what to expect<ul>" + rows + "</ul>"
            "Measured with tiny on a 2-core CPU (docs/benchmarks.md): embeddings of a 1024 × 1024 px scene in "
            "about 2.5 s, land cover about 0.2 s per 224 px tile. Larger sizes were not measured; their time grows "
            "roughly with the parameter count, so use a GPU for base and large on anything but small areas.")


def _hint_rasters(context, result: dict) -> None:
    """Tell Processing which outputs to load as rasters: without the hint it tries OGR first, which logs
    "Cannot open … ().()" for every GeoTIFF."""
    layers = context.layersToLoadOnCompletion()
    for output in result.get("outputs", []):
        if output.get("kind") in VECTOR_KINDS:
            continue
        key = _matching_key(layers, output.get("path", ""))
        if key is not None:
            context.layerToLoadOnCompletionDetails(key).layerTypeHint = QgsProcessingUtils.LayerHint.Raster


def _matching_key(layers: dict, path: str):
    if path in layers:
        return path
    from os.path import realpath

    for key in layers:
        if key and realpath(key) == realpath(path):
            return key
    return None


def run_job(spec: dict, feedback, client=None, confirmed: bool = True) -> dict:
    """Run a JobSpec on the warm backend, reporting on ``feedback``; backend errors -> QgsProcessingException.
    Unless ``confirmed``, a job the backend would ask about (protocol ``confirm``) is refused with its reasons."""
    from ..client import BackendCancelled, BackendError, get_client

    reporter = FeedbackReporter(feedback)
    try:
        client = client or get_client()
        if not confirmed:
            reasons = client.review(spec)["confirm"]
            if reasons:
                raise QgsProcessingException(
                    "This job looks like a mistake: " + "; ".join(reasons) + f". Check \"Run even if the job looks "
                    f"like a mistake\" ({CONFIRM_PARAMETER}=true) to run it anyway; nothing was written.")
        return client.run_job(spec, on_event=reporter, is_cancelled=feedback.isCanceled)
    except BackendCancelled:
        raise QgsProcessingException("TerraMind job cancelled; no output was written.") from None
    except BackendError as exc:
        field_name = getattr(exc, "field", None)
        message = getattr(exc, "message", None) or str(exc)
        raise QgsProcessingException(f"{message} (JobSpec field: {field_name})" if field_name else message) from None


def settings_device() -> str:
    try:
        from ..settings import Settings

        return Settings().device or "auto"
    except (ImportError, AttributeError):
        return "auto"


__all__ = ["CONFIRM_PARAMETER", "TerraMindAlgorithm", "run_job", "FeedbackReporter", "PROCESSING_DEVICES"]
