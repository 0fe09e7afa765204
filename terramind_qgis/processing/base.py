"""Shared base of the TerraMind algorithms: common parameters, parameters → JobSpec, running the job.

A subclass declares its own parameters in ``initAlgorithm`` (with the ``add_*`` helpers below for
the shared ones) and implements ``task_spec`` (task, inputs, outputs, options). The base class
fills in the parts every JobSpec has (model, extent, CRS, resolution, tiling, device), runs the
spec through the process-wide backend client from the worker thread, maps backend events onto
``QgsProcessingFeedback`` and attaches the engine's sidecar .qml styles to the layers that the
toolbox loads when the run ends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

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
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..paths import icon_path
from .styling import attach_style
from .uncertainty import KINDS as UNCERTAINTY_KINDS

HELP_URL = "https://github.com/terramind-qgis/terramind-qgis/blob/main/docs/processing.md"

MODEL_SIZES = ("tiny", "small", "base", "large")
PATCH = 16  # TerraMind's patch size: tiles and their overlap are counted in patches
DEFAULT_MODEL_SIZE = "base"

# Input modalities in the order the toolbox shows them, with what a user recognises. LULC and NDVI
# go through their tokenizers (e.g. generate Sentinel-2 from a land-cover map).
INPUT_MODALITIES = (
    ("S2L2A", "Sentinel-2 L2A (12 bands: B1–B12 without B10)"),
    ("S2L1C", "Sentinel-2 L1C (13 bands: B1–B12)"),
    ("RGB", "RGB (3 bands: red, green, blue)"),
    ("S1GRD", "Sentinel-1 GRD (2 bands: VV, VH)"),
    ("S1RTC", "Sentinel-1 RTC (2 bands: VV, VH)"),
    ("DEM", "DEM (1 band, metres)"),
    ("LULC", "Land cover (1 band, ESRI LULC classes)"),
    ("NDVI", "NDVI (1 band, -1…1)"),
)
# Modalities a tokenizer exists for: generation targets, TiM modalities and reconstruct.
TOKENIZED_MODALITIES = ("S2L2A", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI")

# "" = take the device from the plugin's settings.
DEVICES = (("", "Plugin setting"), ("auto", "Auto (GPU if present)"), ("cpu", "CPU"),
           ("cuda", "CUDA GPU"), ("mps", "Apple GPU (MPS)"))
# Model arithmetic (JobSpec options.precision): bf16 is 2-3x faster where the hardware has it.
PRECISIONS = (("auto", "Automatic (bf16 on GPUs and AMX CPUs)"), ("fp32", "Exact fp32 (matches TerraTorch)"),
              ("bf16", "bf16"))


@dataclass
class TaskSpec:
    """What an algorithm contributes to the JobSpec, and which output goes to which parameter."""

    task: str
    inputs: dict
    outputs: dict                                   # JobSpec outputs: name -> path
    destinations: dict = field(default_factory=dict)  # JobSpec output name -> algorithm output name
    options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)       # other top-level JobSpec keys (timesteps, seed, model)


class TerraMindAlgorithm(QgsProcessingAlgorithm):
    """Base class; subclasses set ``ALG_NAME``/``DISPLAY`` and implement initAlgorithm + task_spec."""

    ALG_NAME = ""
    DISPLAY = ""
    HELP = ""
    uses_precision = True  # offers the PRECISION parameter (JobSpec options.precision)
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
        return self.tr(self.HELP)

    def helpUrl(self):  # noqa: N802
        return f"{HELP_URL}#terramind{self.ALG_NAME}"

    def icon(self):
        return QIcon(icon_path())

    def createInstance(self):  # noqa: N802
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate("TerraMindProcessing", text)

    # -- shared parameter groups -------------------------------------------------------------------
    def add_input_parameters(self, modalities=INPUT_MODALITIES):
        for key, label in modalities:
            self.addParameter(QgsProcessingParameterRasterLayer(key, self.tr(f"{label} input"), optional=True))
        self._advanced(QgsProcessingParameterString(
            "BANDS", self.tr("Band mapping (e.g. S2L2A=1,2,3,4,5,6,7,8,9,10,11,12; S1GRD=1,2)"),
            optional=True))
        self._advanced(QgsProcessingParameterString(
            "SCALE", self.tr("Value scaling, value = raw × SCALE + OFFSET (e.g. S2L2A=10000 for 0–1 reflectance)"),
            optional=True))

    def add_model_parameter(self):
        self.addParameter(QgsProcessingParameterEnum(
            "MODEL", self.tr("Model size"), options=list(MODEL_SIZES),
            defaultValue=MODEL_SIZES.index(DEFAULT_MODEL_SIZE)))

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

    def add_tiling_parameters(self):
        self._advanced(QgsProcessingParameterNumber(
            "TILE_SIZE", self.tr("Tile size (pixels)"), QgsProcessingParameterNumber.Integer,
            defaultValue=224, minValue=2 * PATCH, maxValue=4096))
        self._advanced(QgsProcessingParameterNumber(
            "OVERLAP", self.tr("Tile overlap (pixels)"), QgsProcessingParameterNumber.Integer,
            defaultValue=32, minValue=0, maxValue=2048))
        self._advanced(QgsProcessingParameterNumber(
            "BATCH_SIZE", self.tr("Tiles per batch"), QgsProcessingParameterNumber.Integer,
            defaultValue=8, minValue=1, maxValue=1024))
        self._advanced(QgsProcessingParameterEnum(
            "DEVICE", self.tr("Device"), options=[label for _, label in DEVICES], defaultValue=0))
        if self.uses_precision:
            self._advanced(QgsProcessingParameterEnum(
                "PRECISION", self.tr("Precision"), options=[label for _, label in PRECISIONS], defaultValue=0))
        if self.uses_location:
            self._advanced(QgsProcessingParameterBoolean(
                "USE_LOCATION", self.tr("Use location (each tile's centre, lon/lat, as TerraMind's Coordinates input)"),
                defaultValue=False))

    def _advanced(self, parameter):
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    # -- parameters -> JobSpec ---------------------------------------------------------------------
    def task_spec(self, parameters, context, feedback) -> TaskSpec:
        raise NotImplementedError

    def model_name(self, parameters, context) -> str:
        return f"terramind_v1_{MODEL_SIZES[self.parameterAsEnum(parameters, 'MODEL', context)]}"

    def build_spec(self, parameters, context, feedback=None) -> tuple:
        """The JobSpec for these parameters and the map JobSpec output name -> algorithm output name."""
        part = self.task_spec(parameters, context, feedback)
        if not part.inputs:
            raise QgsProcessingException(self.tr("Choose at least one input raster."))
        if not part.outputs:
            raise QgsProcessingException(self.tr("Choose at least one output."))
        tile = self.parameterAsInt(parameters, "TILE_SIZE", context)
        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        problem = tiling_problem(tile, overlap, part.task in ("embed", "tim-embed"))
        if problem:
            raise QgsProcessingException(problem)
        spec = {
            "version": 1,
            "task": part.task,
            "inputs": part.inputs,
            "outputs": part.outputs,
            "extent": self.extent_spec(parameters, context),
            "crs": self.crs_spec(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "tiling": {"window": tile, "overlap": overlap,
                       "batch_size": self.parameterAsInt(parameters, "BATCH_SIZE", context)},
            "device": self.device(parameters, context),
            "options": dict(part.options),
        }
        if self.parameterDefinition("PRECISION") is not None:
            spec["options"]["precision"] = PRECISIONS[self.parameterAsEnum(parameters, "PRECISION", context)][0]
        if self.parameterDefinition("USE_LOCATION") is not None:
            spec["options"]["use_location"] = self.parameterAsBool(parameters, "USE_LOCATION", context)
        model = self.model_name(parameters, context)
        if model:
            spec["model"] = model
        spec.update(part.extra)
        return spec, part.destinations

    def raster_inputs(self, parameters, context, modalities=INPUT_MODALITIES) -> dict:
        """JobSpec inputs for every modality parameter that has a layer, in the toolbox's order."""
        band_maps = parse_band_mapping(self.parameterAsString(parameters, "BANDS", context))
        scalings = parse_scaling(self.parameterAsString(parameters, "SCALE", context))
        inputs = {}
        for key, _ in modalities:
            layer = self.parameterAsRasterLayer(parameters, key, context)
            if layer is None:
                continue
            inputs[key] = input_spec(key, layer, band_maps.pop(key, None), scalings.pop(key, None))
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

    def extent_spec(self, parameters, context):
        if not parameters.get("EXTENT"):
            return None
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if not crs.isValid():
            # An extent typed without "[EPSG:…]" is in the project's CRS; headless there may be none.
            crs = context.project().crs() if context.project() else QgsCoordinateReferenceSystem()
        if not crs.isValid():
            crs = self.first_input_crs(parameters, context)
        rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(self.tr("The extent is empty."))
        return {"bounds": [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()],
                "crs": crs_string(crs)}

    def crs_spec(self, parameters, context):
        crs = self.parameterAsCrs(parameters, "CRS", context)
        return crs_string(crs) if crs.isValid() else None

    def device(self, parameters, context) -> str:
        chosen = DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)][0]
        return chosen or settings_device()

    def destination(self, parameters, name, context, suffixes=(".tif", ".tiff"), kind="GeoTIFF") -> str:
        """The file an output parameter asks for, or "" when the output is skipped."""
        path = self.parameterAsOutputLayer(parameters, name, context) or ""
        if path and not path.lower().endswith(suffixes):
            raise QgsProcessingException(self.tr(
                f"TerraMind writes {kind} files: give {name} a {suffixes[0]} file name, not {path}."))
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
        if not ok:
            return ok, message
        problem = tiling_problem(self.parameterAsInt(parameters, "TILE_SIZE", context),
                                 self.parameterAsInt(parameters, "OVERLAP", context), self.ALG_NAME == "embed")
        return (False, problem) if problem else (True, "")

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
        result = run_job(spec, feedback, getattr(self, "_client", None))
        return self.collect_results(result, destinations, context, feedback)

    def collect_results(self, result, destinations, context, feedback) -> dict:
        results = {}
        for output in result.get("outputs", []):
            name = destinations.get(output.get("name"))
            if name is None and output.get("kind") in UNCERTAINTY_KINDS and context.project() is not None:
                # derived layers (confidence, entropy, spread) load with the declared outputs
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


def _matching_key(layers: dict, path: str):
    if path in layers:
        return path
    from os.path import realpath

    for key in layers:
        if key and realpath(key) == realpath(path):
            return key
    return None


def run_job(spec: dict, feedback, client=None) -> dict:
    """Run a JobSpec on the warm backend, reporting on ``feedback``; backend errors -> QgsProcessingException."""
    from ..client import BackendCancelled, BackendError, get_client

    reporter = FeedbackReporter(feedback)
    try:
        client = client or get_client()
        return client.run_job(spec, on_event=reporter, is_cancelled=feedback.isCanceled)
    except BackendCancelled:
        raise QgsProcessingException("TerraMind job cancelled; no output was written.") from None
    except BackendError as exc:
        field_name = getattr(exc, "field", None)
        message = getattr(exc, "message", None) or str(exc)
        raise QgsProcessingException(f"{message} (JobSpec field: {field_name})" if field_name else message) from None


class FeedbackReporter:
    """Backend events -> QgsProcessingFeedback (progress bar, progress text and log).

    The bar follows the stages that take long and report steps: a weights download (first use
    only), then the tiles. Model loading reports only its end, so it shows as text alone and the
    bar does not jump to 100 % and back before the tiles start.
    """

    STAGE_TEXT = {"download": "Downloading weights", "load": "Loading model", "tiles": "Running tiles"}
    BAR_STAGES = ("download", "tiles")

    def __init__(self, feedback):
        self.feedback = feedback
        self.stage = None

    def __call__(self, event: dict):
        kind = event.get("event")
        if kind == "progress":
            self.progress(event)
        elif kind == "log":
            level, message = event.get("level", "info"), event.get("message", "")
            if level == "warning":
                self.feedback.pushWarning(message) if hasattr(self.feedback, "pushWarning") else \
                    self.feedback.reportError(message, False)
            elif level == "debug":
                self.feedback.pushDebugInfo(message)
            else:
                self.feedback.pushInfo(message)

    def progress(self, event: dict):
        stage = event.get("stage")
        if stage != self.stage:
            self.stage = stage
            self.feedback.setProgressText(self.STAGE_TEXT.get(stage, str(stage)))
        if stage not in self.BAR_STAGES:
            return
        fraction = event.get("fraction")
        if fraction is None and event.get("total"):
            fraction = event.get("done", 0) / event["total"]
        if fraction is not None:
            self.feedback.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))


def tiling_problem(window: int, overlap: int, per_patch: bool) -> str:
    """The engine's tiling rules, checked before the job is sent ("" = fine)."""
    if window % PATCH:
        return f"The tile size must be a multiple of the {PATCH} px patch size, got {window}."
    if overlap * 2 > window - PATCH:
        return f"The tile overlap ({overlap} px) is too large for {window} px tiles: use at most {(window - PATCH) // 2}."
    if per_patch and overlap % PATCH:
        return f"Embeddings are written per {PATCH} px patch: the overlap must be a multiple of {PATCH}, got {overlap}."
    return ""


def _per_modality(text: str, what: str, example: str) -> dict:
    """``"A=1,2; B=3"`` -> ``{"A": ["1", "2"], "B": ["3"]}``; ``what``/``example`` word the errors."""
    values = {}
    for part in (text or "").replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().upper()
        if not sep or not key:
            raise QgsProcessingException(f"{what} '{part}' should look like {example}.")
        if key in values:
            raise QgsProcessingException(f"{what} for {key} is given twice.")
        values[key] = [v for v in raw.replace(" ", "").split(",") if v]
    return values


def parse_band_mapping(text: str) -> dict:
    """``"S2L2A=1,2,3; S1GRD=2,1"`` -> ``{"S2L2A": [1, 2, 3], "S1GRD": [2, 1]}`` (1-based band indexes)."""
    mapping = {}
    for key, raw in _per_modality(text, "Band mapping", "MODALITY=1,2,3 (e.g. S1RTC=2,1)").items():
        try:
            numbers = [int(b) for b in raw]
        except ValueError:
            raise QgsProcessingException(f"Band mapping for {key}: '{','.join(raw)}' is not a list of band numbers.") from None
        if not numbers or min(numbers) < 1:
            raise QgsProcessingException(f"Band mapping for {key}: band numbers start at 1.")
        mapping[key] = numbers
    return mapping


def parse_scaling(text: str) -> dict:
    """``"S2L2A=10000; DEM=1,-100"`` -> ``{"S2L2A": (10000.0, None), "DEM": (1.0, -100.0)}`` (scale, offset)."""
    scaling = {}
    for key, raw in _per_modality(text, "Value scaling", "MODALITY=SCALE[,OFFSET] (e.g. S2L2A=10000)").items():
        try:
            numbers = [float(v) for v in raw]
        except ValueError:
            raise QgsProcessingException(f"Value scaling for {key}: '{','.join(raw)}' is not SCALE[,OFFSET].") from None
        if len(numbers) not in (1, 2) or numbers[0] == 0:
            raise QgsProcessingException(
                f"Value scaling for {key}: give a non-zero scale and optionally an offset, e.g. {key}=10000.")
        scaling[key] = (numbers[0], numbers[1] if len(numbers) == 2 else None)
    return scaling


# Files whose band count differs from the modality's but whose layout modalities.py knows
# (13-band L1C file used as S2L2A; RGB from a Sentinel-2 stack; RGB + alpha).
_KNOWN_LAYOUTS = {("S2L2A", 13), ("RGB", 12), ("RGB", 13), ("RGB", 4)}


def input_spec(modality: str, layer, bands=None, scaling=None) -> dict:
    """One JobSpec input: the layer's file and its bands in the model's order (null = file order).

    Without an explicit mapping the bands are found as the dialog finds them (band descriptions, then
    the file's order when the count fits, then known layouts); anything else must be mapped by hand,
    since taking the first bands of an unknown stack would silently feed the model wrong data.
    """
    from ..modalities import MODALITIES, RasterFacts, default_band_mapping, is_identity, mapping_from_names, \
        mapping_problem

    path = layer_file(layer)
    count = layer.bandCount()
    wanted = MODALITIES[modality].band_count
    if bands is None:
        descriptions = band_descriptions(path)
        if count != wanted and (modality, count) not in _KNOWN_LAYOUTS and \
                mapping_from_names(modality, descriptions) is None:
            raise QgsProcessingException(
                f"{modality} input '{layer.name()}' has {count} band(s) but {modality} needs {wanted} "
                f"({', '.join(MODALITIES[modality].bands)}). Choose the bands with a band mapping, e.g. "
                f"BANDS=\"{modality}={','.join(str(i) for i in range(1, wanted + 1))}\".")
        bands = default_band_mapping(modality, RasterFacts(band_count=count, descriptions=descriptions))
    problem = mapping_problem(modality, bands, count)
    if problem:
        raise QgsProcessingException(f"Band mapping for {modality} ('{layer.name()}'): {problem}.")
    if is_identity(bands, count):
        bands = None
    scale, offset = scaling or (None, None)
    return {"path": path, "bands": list(bands) if bands else None, "scale": scale, "offset": offset, "nodata": None}


def band_descriptions(path: str) -> tuple:
    try:
        from osgeo import gdal

        dataset = gdal.Open(path)
    except Exception:  # noqa: BLE001 (descriptions only refine the band order)
        return ()
    if dataset is None:
        return ()
    return tuple(dataset.GetRasterBand(i).GetDescription() or "" for i in range(1, dataset.RasterCount + 1))


def layer_file(layer) -> str:
    """The file behind a raster layer: the backend reads files, not QGIS providers."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"Layer '{layer.name()}' comes from the '{layer.providerType()}' provider; TerraMind reads raster "
            "files. Save it as a GeoTIFF first (Export > Save As…).")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()


def crs_string(crs) -> str:
    return crs.authid() or crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def settings_device() -> str:
    try:
        from ..settings import Settings

        return Settings().device or "auto"
    except (ImportError, AttributeError):
        return "auto"


__all__ = ["TerraMindAlgorithm", "TaskSpec", "run_job", "parse_band_mapping", "parse_scaling"]
