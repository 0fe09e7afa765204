"""Build a JobSpec v1 dict (docs/jobspec.md) from plain values, with checks that name the field at fault.

Pure Python (no qgis import): the dialog and the Processing algorithms fill a `JobChoices` and call
`check_job` (a list of `Problem`s, empty when the job can run) or `build_jobspec` (raises `JobSpecError`).
These are client-side checks for what the UI can see (paths, band mappings, extents, folders); the
backend validates again before any heavy work.

Problem fields are dotted paths the dialog maps to widgets: "inputs", "inputs.<row>", "inputs.<row>.bands",
"outputs", "extent", "crs", "resolution", "output_dir", "tiling.window", "tiling.overlap", "tiling.batch_size",
"timesteps", "options.layer", "options.tim_modalities", "model", "device".
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .modalities import MODALITIES, OUTPUT_MODALITIES, VECTOR_OUTPUT_SUFFIX, is_identity, mapping_problem

JOBSPEC_VERSION = 1
MODEL_SIZES = ("tiny", "small", "base", "large")
TASKS = ("generate", "embed", "tim-embed")
DEVICES = ("auto", "cpu", "cuda", "mps")
MERGE_METHODS = ("mean", "max", "concat")
PATCH_SIZE = 16


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
    task: str = "generate"
    model_size: str = "tiny"
    inputs: list[InputChoice] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)           # generate: modalities to produce
    job_name: str = "terramind"                                # output file stem
    output_dir: str | None = None                              # None with temporary=True → temp folder
    temporary: bool = False
    extent_bounds: tuple[float, float, float, float] | None = None
    extent_wkt: str | None = None
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
    precision: str = "auto"   # auto (bf16 where fast: CUDA, AMX CPUs) | fp32 (exact) | bf16
    uncertainty: dict = field(default_factory=dict)  # generate: options.uncertainty (docs/uncertainty.md), {} = off
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


def output_paths(choices: JobChoices) -> dict[str, str]:
    """The JobSpec "outputs" object: modality (or "embeddings") → file path inside the output folder."""
    folder = output_folder(choices)
    if folder is None:
        return {}
    stem = choices.job_name
    if choices.task == "generate":
        return {name: os.path.join(folder, f"{stem}_{name.lower()}{VECTOR_OUTPUT_SUFFIX.get(name, '.tif')}")
                for name in choices.outputs}
    return {"embeddings": os.path.join(folder, f"{stem}_embeddings.tif")}


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
        if item.bands is not None:
            message = mapping_problem(item.modality, item.bands, item.band_count)
            if message:
                problems.append(Problem(f"{where}.bands", message))
        elif item.band_count != MODALITIES[item.modality].band_count:
            problems.append(Problem(f"{where}.bands", f"{item.modality} needs "
                                    f"{MODALITIES[item.modality].band_count} bands, the layer has "
                                    f"{item.band_count}: map the bands"))
    if choices.task == "tim-embed":
        raw = [i for i in usable if i.modality in MODALITIES and MODALITIES[i.modality].kind not in
               ("classes", "index")]
        if not raw:
            problems.append(Problem("inputs", "TiM needs a raw input (Sentinel-2, Sentinel-1, RGB or DEM)"))
    return problems


def _check_outputs(choices: JobChoices) -> list[Problem]:
    problems = []
    if choices.task == "generate":
        if not choices.outputs:
            problems.append(Problem("outputs", "Choose at least one layer to generate"))
        unknown = [o for o in choices.outputs if o not in OUTPUT_MODALITIES]
        if unknown:
            problems.append(Problem("outputs", f"Unknown output {unknown[0]}; TerraMind generates "
                                    f"{', '.join(OUTPUT_MODALITIES)}"))
        given = {i.modality for i in choices.inputs if i.path}
        again = [o for o in choices.outputs if o in given]
        if again:
            problems.append(Problem("outputs", f"{again[0]} is already an input: uncheck it"))
    elif choices.task == "tim-embed":
        if not choices.tim_modalities:
            problems.append(Problem("options.tim_modalities", "TiM needs at least one modality to think in"))
        bad = [m for m in choices.tim_modalities if m not in OUTPUT_MODALITIES]
        if bad:
            problems.append(Problem("options.tim_modalities", f"{bad[0]} cannot be generated by TiM"))
    elif choices.task != "embed":
        problems.append(Problem("task", f"Unknown task {choices.task!r}"))

    folder = output_folder(choices)
    if folder is None:
        problems.append(Problem("output_dir", "Choose an output folder or use temporary files"))
        return problems
    message = _folder_problem(folder)
    if message:
        problems.append(Problem("output_dir", message))
        return problems
    for name, path in output_paths(choices).items():
        for item in choices.inputs:
            if item.path and _same_file(path, _raster_path(item.path)):
                problems.append(Problem("output_dir", f"The {name} output would overwrite the input "
                                        f"{os.path.basename(path)}"))
    return problems


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
    if choices.extent_wkt is not None:
        if not choices.extent_wkt.strip() or "EMPTY" in choices.extent_wkt.upper():
            problems.append(Problem("extent", "The polygon layer has no polygons to use"))
        if not choices.extent_crs:
            problems.append(Problem("extent", "The polygon has no CRS"))
    if not choices.resolution > 0:
        problems.append(Problem("resolution", "The pixel size must be greater than 0"))
    window, overlap = choices.window, choices.overlap
    if window < 2 * PATCH_SIZE or window > 4096 or window % PATCH_SIZE:
        problems.append(Problem("tiling.window", f"The window must be a multiple of {PATCH_SIZE} px, "
                                f"{2 * PATCH_SIZE} … 4096"))
    elif overlap < 0 or overlap * 2 > window - PATCH_SIZE:
        problems.append(Problem("tiling.overlap", f"The overlap must be 0 … {max(0, (window - PATCH_SIZE) // 2)}"
                                f" px for a {window} px window"))
    elif choices.task in ("embed", "tim-embed") and overlap % PATCH_SIZE:
        problems.append(Problem("tiling.overlap", f"Embeddings are written per {PATCH_SIZE} px patch: use an "
                                f"overlap that is a multiple of {PATCH_SIZE}"))
    if choices.batch_size < 1:
        problems.append(Problem("tiling.batch_size", "The batch size must be at least 1"))
    if choices.task in ("generate", "tim-embed") and not 1 <= choices.timesteps <= 1000:
        problems.append(Problem("timesteps", "Diffusion steps must be between 1 and 1000"))
    if choices.model_size not in MODEL_SIZES:
        problems.append(Problem("model", f"Unknown model size {choices.model_size!r}"))
    if choices.device not in DEVICES and not choices.device.startswith("cuda:"):
        problems.append(Problem("device", f"Unknown device {choices.device!r}"))
    if choices.merge_method not in MERGE_METHODS:
        problems.append(Problem("options.merge_method", f"Unknown merge method {choices.merge_method!r}"))
    elif choices.task == "tim-embed" and choices.merge_method == "concat":
        problems.append(Problem("options.merge_method", "TiM merges modalities with mean or max"))
    return problems


def check_job(choices: JobChoices) -> list[Problem]:
    """Every problem the UI can see, in the order of the dialog's sections. Empty: the job can run."""
    return _check_inputs(choices) + _check_outputs(choices) + _check_grid(choices)


def _input_spec(item: InputChoice) -> dict:
    bands = item.bands
    if bands is not None and is_identity(bands, item.band_count):
        bands = None            # "all bands in file order": keeps the JobSpec short and readable
    return {"path": _raster_path(item.path), "bands": list(bands) if bands is not None else None,
            "scale": item.scale, "offset": item.offset, "nodata": item.nodata}


def _extent_spec(choices: JobChoices) -> dict | None:
    if choices.extent_wkt is not None:
        return {"polygon_wkt": choices.extent_wkt, "crs": choices.extent_crs}
    if choices.extent_bounds is not None:
        return {"bounds": [float(v) for v in choices.extent_bounds], "crs": choices.extent_crs}
    return None


def build_jobspec(choices: JobChoices) -> dict:
    """The JobSpec v1 dict for these choices; raises JobSpecError listing every problem."""
    problems = check_job(choices)
    if problems:
        raise JobSpecError(problems)
    spec = {
        "version": JOBSPEC_VERSION,
        "task": choices.task,
        "model": f"terramind_v1_{choices.model_size}",
        "inputs": {item.modality: _input_spec(item) for item in choices.inputs if item.path},
        "outputs": output_paths(choices),
        "extent": _extent_spec(choices),
        "crs": choices.crs or None,
        "resolution": float(choices.resolution),
        "tiling": {"window": int(choices.window), "overlap": int(choices.overlap),
                   "batch_size": int(choices.batch_size)},
        "device": choices.device,
        "timesteps": int(choices.timesteps),
        "seed": int(choices.seed),
        "options": {"layer": int(choices.layer), "merge_method": choices.merge_method,
                    "tim_modalities": list(choices.tim_modalities),
                    "checkpoint": None, "probabilities": False, "standardize": bool(choices.standardize),
                    "precision": choices.precision, "use_location": bool(choices.use_location)},
    }
    if choices.task == "generate" and choices.uncertainty:
        spec["options"]["uncertainty"] = dict(choices.uncertainty)
    return spec
