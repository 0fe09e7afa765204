"""The one road to a JobSpec v1 dict (docs/jobspec.md): plain choices in, checked JobSpec out.

The dialog and every Processing algorithm fill a `JobChoices` (the dialog from its widgets, Processing from
its parameters, `processing/choices.py`) and call `check_job` (a list of `Problem`s, empty when the job can
run) or `build_jobspec` (raises `JobSpecError`); the dialog shows problems under their widgets, Processing
raises them as `QgsProcessingException`s. Identical choices give identical JobSpecs whichever door they came
through. These are the client-side checks of what the plugin can see (paths, band mappings, extents,
folders, tiling); the backend's `parse_jobspec` and validation check again before any heavy work.

Pure Python (no qgis import). Problem fields are dotted paths the dialog maps to widgets: "inputs",
"inputs.<row>", "inputs.<row>.bands", "outputs", "outputs.<name>", "extent", "crs", "resolution", "output_dir",
"tiling.window", "tiling.overlap", "tiling.batch_size", "timesteps", "options.layer", "options.tim_modalities",
"options.merge_method", "options.checkpoint", "options.precision", "model", "device", "task".
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .modalities import MODALITIES, OUTPUT_MODALITIES, VECTOR_OUTPUT_SUFFIX, is_identity, mapping_problem
from .vocabulary import (DEFAULT_MODEL_SIZE, DEVICES, MERGE_METHODS, MODEL_SIZES, PRECISIONS, TIM_MERGE_METHODS,
                         values)

JOBSPEC_VERSION = 1
PATCH_SIZE = 16          # TerraMind's patch: tiles and (for per-patch outputs) their overlap count in patches
MAX_WINDOW = 4096
EMBED_OUTPUT = "embeddings"
SEGMENT_OUTPUTS = ("classes", "probabilities")
TASKS = ("generate", "embed", "tim-embed", "segment", "reconstruct")
PER_PATCH_TASKS = ("embed", "tim-embed")        # one output pixel per 16 px patch
CHECKPOINT_TASKS = ("segment",)                 # the checkpoint names the model and the band counts
UNCERTAINTY_TASKS = ("generate", "segment")     # can also write confidence, entropy, spread
LOCATION_TASKS = ("generate", "embed", "tim-embed")   # can take each window's centre as Coordinates input
SAMPLING_TASKS = ("generate", "tim-embed", "reconstruct")   # use timesteps and the seed
GEOTIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class InputChoice:
    """One input row: a raster file used as one modality."""

    modality: str | None
    path: str | None
    band_count: int = 0
    bands: list[int | None] | None = None      # 1-based, model band order; None = file order
    row: str = ""                              # the UI row id used in problem fields ("" → modality name)
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None

    @property
    def key(self) -> str:
        return self.row or (self.modality or "?")


@dataclass
class JobChoices:
    """Everything a front door knows about one job, as plain values (defaults: the dialog's and Processing's)."""

    task: str = "generate"
    model_size: str | None = DEFAULT_MODEL_SIZE   # None: a checkpoint (segment) or a tokenizer (reconstruct) decides
    inputs: list[InputChoice] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)           # generate: modalities to produce
    # Output files: either explicit (output key → .tif path, as Processing destinations give them) or named
    # "<job_name>_<key>.tif" inside output_dir (or a temporary folder), as the dialog does.
    output_files: dict[str, str] | None = None
    job_name: str = "terramind"
    output_dir: str | None = None
    temporary: bool = False
    extent_bounds: tuple[float, float, float, float] | None = None
    extent_polygon: dict | None = None   # GeoJSON Polygon/MultiPolygon ({} = a polygon layer without polygons)
    extent_crs: str | None = None
    crs: str | None = None
    resolution: float = 10.0
    window: int = 224
    overlap: int = 32
    batch_size: int = 8
    device: str = "auto"
    timesteps: int = 10
    seed: int = 0
    layer: int = -1
    merge_method: str = "mean"
    tim_modalities: list[str] = field(default_factory=lambda: ["LULC"])
    standardize: bool = True
    precision: str = "auto"   # auto (bf16 where a probe measures it faster) | fp32 (exact) | bf16
    checkpoint: str | None = None     # segment: the fine-tuned TerraTorch checkpoint
    probabilities: bool = False       # segment: also write the class probabilities
    uncertainty: dict = field(default_factory=dict)  # generate, segment: options.uncertainty (docs/uncertainty.md)
    use_location: bool = False   # feed each window's centre (lon, lat) as TerraMind's Coordinates input


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


class JobSpecError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))
    except (OSError, ValueError):
        return False


def _raster_path(path: str) -> str:
    """A GDAL layer source may carry options after '|'; the backend reads the file part."""
    return path.split("|")[0]


def output_folder(choices: JobChoices) -> str | None:
    if choices.temporary:
        return os.path.join(tempfile.gettempdir(), "terramind", choices.job_name)
    return choices.output_dir or None


def output_keys(choices: JobChoices) -> list[str]:
    """The JobSpec output keys the choices ask for, in JobSpec order."""
    if choices.output_files is not None:
        return list(choices.output_files)
    if choices.task == "generate":
        return list(choices.outputs)
    if choices.task == "segment":
        return list(SEGMENT_OUTPUTS if choices.probabilities else SEGMENT_OUTPUTS[:1])
    if choices.task == "reconstruct":
        return [i.modality for i in choices.inputs if i.path and i.modality]
    return [EMBED_OUTPUT]


def output_paths(choices: JobChoices) -> dict[str, str]:
    """The JobSpec "outputs" object: output key → GeoTIFF path."""
    if choices.output_files is not None:
        return dict(choices.output_files)
    folder = output_folder(choices)
    if folder is None:
        return {}
    return {key: os.path.join(folder, f"{choices.job_name}_{key.lower()}{_suffixes(key)[0]}")
            for key in output_keys(choices)}


def _suffixes(key: str) -> tuple:
    """File suffixes an output may have: GeoTIFF, or the vector format of a point output (Coordinates)."""
    return (VECTOR_OUTPUT_SUFFIX[key],) if key in VECTOR_OUTPUT_SUFFIX else GEOTIFF_SUFFIXES


def _folder_problem(folder: str) -> str | None:
    path = Path(folder)
    if path.exists():
        if not path.is_dir():
            return f"{folder} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"Cannot write to {folder}"
        return None
    # A folder that does not exist yet is fine when its nearest existing parent is writable.
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"Cannot create {folder}: {parent} is not writable"
    return None


def _band_problem(choices: JobChoices, item: InputChoice) -> str | None:
    if choices.task in CHECKPOINT_TASKS:   # any band count: the checkpoint's backbone_bands decide
        bad = [b for b in (item.bands or []) if b is None or not 1 <= b <= item.band_count]
        return f"Band {bad[0]} does not exist (the raster has {item.band_count})" if bad else None
    if item.bands is not None:
        return mapping_problem(item.modality, item.bands, item.band_count)
    wanted = MODALITIES[item.modality].band_count
    if item.band_count != wanted:
        return f"{item.modality} needs {wanted} bands, the layer has {item.band_count}: map the bands"
    return None


def _check_inputs(choices: JobChoices) -> list[Problem]:
    problems = []
    usable = [i for i in choices.inputs if i.path]
    if not usable:
        return [Problem("inputs", "Add at least one input layer")]
    seen: dict[str, str] = {}
    for item in usable:
        where = f"inputs.{item.key}"
        if item.modality not in MODALITIES or not MODALITIES[item.modality].can_input:
            problems.append(Problem(where, "Choose the modality of this layer"))
            continue
        if item.modality in seen:
            problems.append(Problem(where, f"{item.modality} is already used by another input"))
            continue
        seen[item.modality] = item.key
        if not os.path.isfile(_raster_path(item.path)):
            problems.append(Problem(where, "TerraMind reads files: this layer is not a local raster file"))
            continue
        message = _band_problem(choices, item)
        if message:
            problems.append(Problem(f"{where}.bands", message))
    if choices.task == "tim-embed":
        raw = [i for i in usable if i.modality in MODALITIES and MODALITIES[i.modality].kind not in
               ("classes", "index")]
        if not raw:
            problems.append(Problem("inputs", "TiM needs a raw input (Sentinel-2, Sentinel-1, RGB or DEM)"))
    return problems


def _check_output_keys(choices: JobChoices) -> list[Problem]:
    """Which outputs the task may write, and the task's own options."""
    keys = output_keys(choices)
    given = {i.modality for i in choices.inputs if i.path}
    task = choices.task
    if task == "generate":
        if not keys:
            return [Problem("outputs", "Choose at least one output to generate")]
        unknown = [k for k in keys if k not in OUTPUT_MODALITIES]
        if unknown:
            return [Problem("outputs", f"Unknown output {unknown[0]}; TerraMind generates "
                            f"{', '.join(OUTPUT_MODALITIES)}")]
        again = [k for k in keys if k in given]
        if again:
            return [Problem("outputs", f"{again[0]} is both an input and an output: uncheck it (terramind:"
                            f"reconstruct round-trips an input)")]
    elif task in PER_PATCH_TASKS:
        if keys != [EMBED_OUTPUT]:
            return [Problem("outputs", f"{task} writes one output, {EMBED_OUTPUT!r}")]
        if task == "tim-embed":
            if not choices.tim_modalities:
                return [Problem("options.tim_modalities", "TiM needs at least one modality to think in")]
            bad = [m for m in choices.tim_modalities if m not in OUTPUT_MODALITIES]
            if bad:
                return [Problem("options.tim_modalities", f"{bad[0]} cannot be generated by TiM")]
    elif task == "segment":
        if "classes" not in keys or not set(keys) <= set(SEGMENT_OUTPUTS):
            return [Problem("outputs", "segment writes 'classes' and optionally 'probabilities'")]
        if not choices.checkpoint:
            return [Problem("options.checkpoint", "Choose the fine-tuned checkpoint file")]
        if not os.path.isfile(choices.checkpoint):
            return [Problem("options.checkpoint", f"The checkpoint {choices.checkpoint} does not exist")]
    elif task == "reconstruct":
        if not keys:
            return [Problem("outputs", "Choose the reconstruction's output file")]
        missing = [k for k in keys if k not in given]
        if missing:
            return [Problem("outputs", f"reconstruct rebuilds an input: add a {missing[0]} input")]
        untokenized = [k for k in keys if k not in OUTPUT_MODALITIES]
        if untokenized:
            return [Problem("outputs", f"{untokenized[0]} has no tokenizer; reconstruct works for "
                            f"{', '.join(OUTPUT_MODALITIES)}")]
    else:
        return [Problem("task", f"Unknown task {task!r}; the plugin runs {', '.join(TASKS)}")]
    return []


def _check_output_files(choices: JobChoices) -> list[Problem]:
    paths = output_paths(choices)
    if choices.output_files is None:
        folder = output_folder(choices)
        if folder is None:
            return [Problem("output_dir", "Choose an output folder or use temporary files")]
        message = _folder_problem(folder)
        if message:
            return [Problem("output_dir", message)]
        where = "output_dir"
    problems = []
    for name, path in paths.items():
        if choices.output_files is not None:
            where = f"outputs.{name}"
            if not path.lower().endswith(_suffixes(name)):
                kind = "GeoTIFF files" if _suffixes(name) == GEOTIFF_SUFFIXES else f"{name} as {_suffixes(name)[0]}"
                problems.append(Problem(where, f"TerraMind writes {kind}: the {name} output needs a "
                                        f"{_suffixes(name)[0]} file name, not {path}"))
                continue
            message = _folder_problem(os.path.dirname(os.path.abspath(path)))
            if message:
                problems.append(Problem(where, message))
                continue
        for item in choices.inputs:
            if item.path and _same_file(path, _raster_path(item.path)):
                problems.append(Problem(where, f"The {name} output would overwrite the input "
                                        f"{os.path.basename(path)}"))
    return problems


def tiling_problems(window: int, overlap: int, per_patch: bool) -> list[Problem]:
    """The engine's tiling rules (engine/jobspec.py `_tiling`), checked before a job is sent."""
    if window < PATCH_SIZE or window > MAX_WINDOW or window % PATCH_SIZE:
        return [Problem("tiling.window", f"The tile size must be a multiple of the {PATCH_SIZE} px patch size, "
                        f"{PATCH_SIZE} … {MAX_WINDOW} px, got {window}")]
    if overlap < 0 or overlap * 2 > window - PATCH_SIZE:
        return [Problem("tiling.overlap", f"The overlap must be at most {max(0, (window - PATCH_SIZE) // 2)} px "
                        f"for {window} px tiles, got {overlap}")]
    if per_patch and overlap % PATCH_SIZE:
        return [Problem("tiling.overlap", f"Embeddings are written per {PATCH_SIZE} px patch: use an overlap "
                        f"that is a multiple of {PATCH_SIZE}, got {overlap}")]
    return []


def tile_count(width_px: float, height_px: float, window: int, overlap: int) -> int:
    """How many windows the engine runs over a width × height px area (what the dialog's summary shows)."""
    stride = max(1, window - overlap)
    return (max(1, math.ceil((width_px - overlap) / stride)) * max(1, math.ceil((height_px - overlap) / stride)))


def _check_grid(choices: JobChoices) -> list[Problem]:
    problems = []
    if choices.extent_bounds is not None:
        minx, miny, maxx, maxy = choices.extent_bounds
        if not (maxx > minx and maxy > miny):
            problems.append(Problem("extent", "The extent is empty: draw or choose a larger area"))
        elif choices.resolution > 0 and min(maxx - minx, maxy - miny) < choices.resolution:
            problems.append(Problem("extent", "The extent is smaller than one pixel"))
        if not choices.extent_crs:
            problems.append(Problem("extent", "The extent has no CRS"))
    if choices.extent_polygon is not None:
        if not choices.extent_polygon.get("coordinates"):
            problems.append(Problem("extent", "The polygon layer has no polygons to use"))
        if not choices.extent_crs:
            problems.append(Problem("extent", "The polygon has no CRS"))
    if not choices.resolution > 0:
        problems.append(Problem("resolution", "The pixel size must be greater than 0"))
    problems += tiling_problems(choices.window, choices.overlap, choices.task in PER_PATCH_TASKS)
    if choices.batch_size < 1:
        problems.append(Problem("tiling.batch_size", "The batch size must be at least 1"))
    if choices.task in SAMPLING_TASKS and not 1 <= choices.timesteps <= 1000:
        problems.append(Problem("timesteps", "Diffusion steps must be between 1 and 1000"))
    if choices.model_size is not None and choices.model_size not in values(MODEL_SIZES):
        problems.append(Problem("model", f"Unknown model size {choices.model_size!r}"))
    if choices.device not in values(DEVICES) and not choices.device.startswith("cuda:"):
        problems.append(Problem("device", f"Unknown device {choices.device!r}"))
    if choices.precision not in values(PRECISIONS):
        problems.append(Problem("options.precision", f"Unknown precision {choices.precision!r}"))
    if choices.merge_method not in values(MERGE_METHODS):
        problems.append(Problem("options.merge_method", f"Unknown merge method {choices.merge_method!r}"))
    elif choices.task == "tim-embed" and choices.merge_method not in TIM_MERGE_METHODS:
        problems.append(Problem("options.merge_method", "TiM merges modalities with mean or max"))
    return problems


def check_job(choices: JobChoices) -> list[Problem]:
    """Every problem the plugin can see, in the order of the dialog's sections. Empty: the job can run."""
    problems = _check_inputs(choices) + _check_output_keys(choices)
    if not any(p.field == "task" for p in problems):
        problems += _check_output_files(choices)
    return problems + _check_grid(choices)


def input_entry(item: InputChoice) -> dict:
    """The JobSpec ``inputs`` entry of one chosen input (path, bands, scale, offset, nodata); the finetune
    spec uses it for its training inputs, so both write inputs the same way."""
    bands = item.bands
    if bands is not None and is_identity(bands, item.band_count):
        bands = None            # "all bands in file order": keeps the JobSpec short and readable
    return {"path": _raster_path(item.path), "bands": list(bands) if bands is not None else None,
            "scale": item.scale, "offset": item.offset, "nodata": item.nodata}


def _extent_spec(choices: JobChoices) -> dict | None:
    if choices.extent_polygon is not None:
        return {"polygon": choices.extent_polygon, "crs": choices.extent_crs}
    if choices.extent_bounds is not None:
        return {"bounds": [float(v) for v in choices.extent_bounds], "crs": choices.extent_crs}
    return None


def build_jobspec(choices: JobChoices) -> dict:
    """The JobSpec v1 dict for these choices; raises JobSpecError listing every problem.

    Only what the task uses is written (the engine's defaults cover the rest), so two front doors that
    agree on everything the task depends on write the same JobSpec, whatever their other widgets say."""
    problems = check_job(choices)
    if problems:
        raise JobSpecError(problems)
    task, outputs = choices.task, output_paths(choices)
    spec = {"version": JOBSPEC_VERSION, "task": task}
    if choices.model_size is not None:
        spec["model"] = f"terramind_v1_{choices.model_size}"
    spec.update({
        "inputs": {item.modality: input_entry(item) for item in choices.inputs if item.path},
        "outputs": outputs,
        "extent": _extent_spec(choices),
        "crs": choices.crs or None,
        "resolution": float(choices.resolution),
        "tiling": {"window": int(choices.window), "overlap": int(choices.overlap),
                   "batch_size": int(choices.batch_size)},
        "device": choices.device,
    })
    if task in SAMPLING_TASKS:
        spec.update(timesteps=int(choices.timesteps), seed=int(choices.seed))
    options = {"standardize": bool(choices.standardize), "precision": choices.precision}
    if task in PER_PATCH_TASKS:
        options.update(layer=int(choices.layer), merge_method=choices.merge_method)
    if task == "tim-embed":
        options["tim_modalities"] = list(choices.tim_modalities)
    if task in CHECKPOINT_TASKS:
        options.update(checkpoint=choices.checkpoint, probabilities="probabilities" in outputs)
    if task in LOCATION_TASKS:
        options["use_location"] = bool(choices.use_location)
    if task in UNCERTAINTY_TASKS and choices.uncertainty:
        options["uncertainty"] = dict(choices.uncertainty)
    spec["options"] = options
    return spec
