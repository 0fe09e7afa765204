"""JobSpec v1: one JSON object describes one job (docs/jobspec.md documents every field).

`parse_jobspec(dict)` checks the structure only (types, names, ranges) and needs no files and no
torch; `validate.validate_job` adds the checks that open rasters. Unknown keys are ignored so older
backends accept newer clients, but each is reported in `JobSpec.warnings`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import JobValidationError
from .modalities import COORDINATES, GENERATION_OUTPUTS, INPUT_MODALITIES, MODALITIES, resolve, resolve_output
from .similarity_query import SimilarityQuery
from .tasks import TASKS, Task
from .uncertainty import UncertaintyOptions, parse_uncertainty
from ..catalog import DEFAULT_MODEL, ModelName, backbone_name, backbone_names_hint, parse_model_name
from ..models.precision import PRECISIONS  # torch-free: the models' own list of names

VERSION = 1
PATCH = 16  # TerraMind patch size: windows and embedding strides are multiples of it
MERGE_METHODS = ("mean", "max", "concat")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class InputSpec:
    path: str
    bands: Optional[Tuple[int, ...]] = None   # 1-based band indexes in the model's band order
    scale: Optional[float] = None             # physical = raw * scale + offset
    offset: Optional[float] = None
    nodata: Optional[float] = None            # overrides the file's nodata


@dataclass(frozen=True)
class Extent:
    crs: str
    bounds: Optional[Tuple[float, float, float, float]] = None
    polygon_wkt: Optional[str] = None
    polygon: Optional[Dict[str, Any]] = None   # GeoJSON Polygon/MultiPolygon geometry (what the plugin sends)


@dataclass(frozen=True)
class Tiling:
    window: int = 224
    overlap: int = 32
    batch_size: int = 8

    @property
    def stride(self) -> int:
        return self.window - self.overlap


@dataclass(frozen=True)
class Options:
    layer: int = -1
    merge_method: str = "mean"
    tim_modalities: Tuple[str, ...] = ("LULC",)
    checkpoint: Optional[str] = None
    probabilities: bool = False
    standardize: bool = True
    # Arithmetic of the heavy parts: "auto" = bf16 where measured clearly faster here (models/bf16_probe.py),
    # fp32 elsewhere; "fp32" = TerraTorch's exact arithmetic; "bf16" forces it (docs/benchmarks.md).
    precision: str = "auto"
    uncertainty: UncertaintyOptions = UncertaintyOptions()   # confidence/entropy, spread (docs/uncertainty.md)
    similarity: Optional[SimilarityQuery] = None              # task similarity's examples (docs/similarity.md)
    # Feed each window's centre (lon, lat, WGS 84) as the Coordinates input (engine.locations).
    use_location: bool = False


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Executor:
    """Where the window plan runs (docs/scale.md): this process, or a Ray cluster."""
    kind: str = "local"
    address: Optional[str] = None          # ray: "HOST:PORT" of a running cluster; None starts one for the job
    workers: Optional[int] = None          # ray: model actors (None: as many as the resources allow)
    cpus_per_worker: float = 1.0           # ray: CPUs each actor reserves (and its torch threads)
    gpus_per_worker: Optional[float] = None  # ray: None = 1 when the cluster has GPUs and device allows
    block_batches: int = 2                 # ray: batches per block (the unit of scheduling and retry)
    scratch: Optional[str] = None          # ray: shared folder for block results (default: beside the outputs)
    runtime_env: Optional[Dict[str, Any]] = None  # ray: runtime_env for the workers (pip, env_vars, ...)


@dataclass(frozen=True)
class JobSpec:
    task: str
    model: str
    inputs: Dict[str, InputSpec]
    outputs: Dict[str, str]
    extent: Optional[Extent] = None
    crs: Optional[str] = None
    resolution: float = 10.0
    tiling: Tiling = Tiling()
    device: str = "auto"
    timesteps: int = 10
    seed: int = 0
    options: Options = Options()
    executor: Executor = Executor()
    version: int = VERSION
    warnings: Tuple[str, ...] = field(default=(), compare=False)

    @property
    def size(self) -> str:
        """Model size family: 'tiny', 'small', 'base' or 'large'."""
        return parse_model_name(self.model).size

    def to_dict(self) -> Dict[str, Any]:
        """The canonical JSON form (what `parse_jobspec` reads back unchanged)."""
        d = asdict(self)
        d.pop("warnings")
        d["inputs"] = {k: {**v, "bands": list(v["bands"]) if v["bands"] else None} for k, v in d["inputs"].items()}
        if self.extent is not None:
            d["extent"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d["extent"].items() if v is not None}
        d["options"]["tim_modalities"] = list(self.options.tim_modalities)
        for task in TASKS.values():  # a task's own options object only appears in that task's jobs
            if task.options_key and d["options"].get(task.options_key, 0) is None:
                del d["options"][task.options_key]
        return d


# ---------------------------------------------------------------------------------------------
# parsing helpers: each raises JobValidationError naming the field

def model_field(value) -> ModelName:
    """The ``model`` field: a backbone's registry name (``_tim``/``_generate`` accepted) from ``catalog.py``."""
    parsed = backbone_name(value) if isinstance(value, str) else None
    if parsed is None:
        _fail("model", f"Unknown model {value!r}; use {backbone_names_hint()}.")
    return parsed


def _fail(field_name: str, message: str):
    raise JobValidationError(message, field=field_name)


def _int(value, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        _fail(name, f"{name} must be an integer, got {value!r}.")
    value = int(value)
    if lo is not None and value < lo:
        _fail(name, f"{name} must be at least {lo}, got {value}.")
    if hi is not None and value > hi:
        _fail(name, f"{name} must be at most {hi}, got {value}.")
    return value


def _float(value, name: str, allow_none: bool = True) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(name, f"{name} must be a finite number, got {value!r}.")
    return float(value)


def _str(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(name, f"{name} must be a non-empty string, got {value!r}.")
    return value.strip()


def _path(value, name: str, base_dir: Optional[str]) -> str:
    value = os.path.expanduser(_str(value, name))
    if base_dir and not os.path.isabs(value):
        value = os.path.join(base_dir, value)
    return os.path.abspath(value)


def _known_keys(d: dict, allowed, where: str, warnings: List[str]) -> None:
    for key in d:
        if key not in allowed:
            warnings.append(f"Ignored unknown key {where}{key!r}.")


def _input(mod: str, value, base_dir: Optional[str], any_band_count: bool = False) -> InputSpec:
    where = f"inputs.{mod}"
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        _fail(where, f"{where} must be an object with a 'path' (or a path string), got {value!r}.")
    if "path" not in value:
        _fail(f"{where}.path", f"{where}.path is missing: give the raster file to read.")
    bands = value.get("bands")
    if bands is not None:
        if not isinstance(bands, (list, tuple)) or not bands:
            _fail(f"{where}.bands", f"{where}.bands must be a list of 1-based band numbers or null, got {bands!r}.")
        bands = tuple(_int(b, f"{where}.bands", lo=1) for b in bands)
        channels = MODALITIES[mod].channels
        if len(bands) != channels and not any_band_count:  # segment: the checkpoint's backbone_bands decide
            _fail(f"{where}.bands", f"{where}.bands lists {len(bands)} band(s) but {mod} needs {channels} "
                                    f"({', '.join(MODALITIES[mod].band_names)}).")
    return InputSpec(path=_path(value["path"], f"{where}.path", base_dir), bands=bands,
                     scale=_float(value.get("scale"), f"{where}.scale"),
                     offset=_float(value.get("offset"), f"{where}.offset"),
                     nodata=_float(value.get("nodata"), f"{where}.nodata"))


def _output_key(task: Task, key: str, inputs: Dict[str, InputSpec]) -> str:
    """The canonical output key, or a JobValidationError saying what the task can write."""
    name = f"outputs.{key}"
    if not task.modality_outputs:
        if key not in task.outputs:
            if len(task.outputs) == 1:
                _fail(name, f"{task.name} writes one output named {task.outputs[0]!r}, got {key!r}.")
            _fail(name, f"{task.name} outputs are {task.describe_outputs()}, got {key!r}.")
        return key
    mod = resolve_output(key)
    if mod not in task.outputs:
        _fail(name, f"{task.name} cannot produce {key!r}; outputs are: {task.describe_outputs()}.")
    if task.outputs_are_inputs and mod not in inputs:
        _fail(name, f"{task.name} rebuilds an input through its tokenizer: add a {mod} input or remove this output.")
    if task.outputs_are_inputs is False and mod in inputs:
        _fail(name, f"{mod} is already an input; {task.name} outputs must be other modalities "
                    f"(use task 'reconstruct' to round-trip an input).")
    return mod


def _outputs(task: Task, raw, inputs: Dict[str, InputSpec], base_dir: Optional[str]) -> Dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        _fail("outputs", "outputs must name at least one output file, e.g. {\"LULC\": \"lulc.tif\"}.")
    outputs: Dict[str, str] = {}
    for key, path in raw.items():
        name = f"outputs.{key}"
        key = _output_key(task, key, inputs)
        outputs[key] = _path(path, name, base_dir)
        kind, suffixes = ("GeoPackage", (".gpkg",)) if key in task.vector_outputs else ("GeoTIFF", (".tif", ".tiff"))
        if not outputs[key].lower().endswith(suffixes):
            _fail(name, f"{name} must be a {kind} path ending in {' or '.join(suffixes)}, got {path!r}.")
    for key in task.required_outputs:
        if key not in outputs:
            _fail(f"outputs.{key}", f"{task.name} needs outputs.{key} (the {key} file path).")
    return outputs


def _extent(raw) -> Optional[Extent]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        _fail("extent", f"extent must be null or an object with bounds, polygon or polygon_wkt and crs, got {raw!r}.")
    crs = _str(raw.get("crs"), "extent.crs") if raw.get("crs") is not None else None
    if crs is None:
        _fail("extent.crs", "extent.crs is missing: say which CRS the extent is in, e.g. \"EPSG:32633\".")
    if raw.get("bounds") is not None:
        b = raw["bounds"]
        if not isinstance(b, (list, tuple)) or len(b) != 4:
            _fail("extent.bounds", f"extent.bounds must be [minx, miny, maxx, maxy], got {b!r}.")
        b = tuple(_float(v, "extent.bounds", allow_none=False) for v in b)
        if not (b[0] < b[2] and b[1] < b[3]):
            _fail("extent.bounds", f"The extent is empty: bounds {list(b)} need minx < maxx and miny < maxy.")
        return Extent(crs=crs, bounds=b)
    if raw.get("polygon") is not None:
        return Extent(crs=crs, polygon=_geojson_polygon(raw["polygon"]))
    if raw.get("polygon_wkt") is not None:
        return Extent(crs=crs, polygon_wkt=_str(raw["polygon_wkt"], "extent.polygon_wkt"))
    _fail("extent", "extent needs bounds [minx, miny, maxx, maxy], a GeoJSON polygon or polygon_wkt.")


def _geojson_polygon(geom) -> Dict[str, Any]:
    """A GeoJSON Polygon or MultiPolygon geometry with numeric rings of at least 4 points (2-D kept)."""
    where = "extent.polygon"
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        _fail(where, f"{where} must be a GeoJSON Polygon or MultiPolygon geometry, got {str(geom)[:80]!r}.")
    polygons = geom.get("coordinates")
    polygons = [polygons] if kind == "Polygon" else polygons
    if not isinstance(polygons, list) or not polygons:
        _fail(where, f"{where} has no coordinates.")
    clean = []
    for rings in polygons:
        if not isinstance(rings, list) or not rings:
            _fail(where, f"{where} has a polygon without rings.")
        clean_rings = []
        for ring in rings:
            if not isinstance(ring, list) or len(ring) < 4:
                _fail(where, f"{where}: a polygon ring needs at least 4 points.")
            if not all(isinstance(p, (list, tuple)) and len(p) >= 2 for p in ring):
                _fail(where, f"{where}: every point must be [x, y].")
            clean_rings.append([[_float(p[0], where, allow_none=False), _float(p[1], where, allow_none=False)]
                                for p in ring])
        clean.append(clean_rings)
    return {"type": kind, "coordinates": clean[0] if kind == "Polygon" else clean}


def _section(raw, where: str, allowed, warnings: List[str], example: str = "") -> dict:
    """An optional object (tiling, options, executor): {} when absent; unknown keys become warnings."""
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(where, f"{where} must be an object{example}, got {raw!r}.")
    _known_keys(raw, allowed, f"{where}.", warnings)
    return raw


def _choice(value, where: str, choices) -> Any:
    if value not in choices:
        _fail(where, f"{where} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def _tiling(raw, task: Task, warnings: List[str]) -> Tiling:
    raw = _section(raw, "tiling", Tiling.__dataclass_fields__, warnings)
    window = _int(raw.get("window", 224), "tiling.window", lo=PATCH, hi=4096)
    if window % PATCH:
        _fail("tiling.window", f"tiling.window must be a multiple of the {PATCH} px patch size, got {window}.")
    overlap = _int(raw.get("overlap", 32), "tiling.overlap", lo=0)
    if overlap * 2 > window - PATCH:
        _fail("tiling.overlap", f"tiling.overlap ({overlap}) is too large for window {window}: "
                                f"use at most {(window - PATCH) // 2}.")
    if task.patch_aligned and overlap % PATCH:
        _fail("tiling.overlap", f"{task.name} writes one value per {PATCH} px patch, so tiling.overlap must be a "
                                f"multiple of {PATCH}, got {overlap}.")
    batch = _int(raw.get("batch_size", 8), "tiling.batch_size", lo=1, hi=1024)
    return Tiling(window=window, overlap=overlap, batch_size=batch)


def _task_options(raw: dict, task: Task, outputs: Dict[str, str], warnings: List[str]) -> dict:
    """``options.<task.options_key>``, parsed by the task's own parser (e.g. similarity's examples)."""
    if task.options_key is None:
        return {}
    where = f"options.{task.options_key}"
    value = raw.get(task.options_key)
    if not isinstance(value, dict):
        _fail(where, f"{task.name} needs {where}, an object (docs/jobspec.md), got {value!r}.")
    return {task.options_key: task.parse_options(value, outputs or {}, warnings)}


def _options(raw, task: Task, warnings: List[str], base_dir: Optional[str],
             outputs: Optional[Dict[str, str]] = None) -> Options:
    raw = _section(raw, "options", Options.__dataclass_fields__, warnings)
    merge = _choice(raw.get("merge_method", "mean"), "options.merge_method", MERGE_METHODS)
    if raw.get("use_location") is True and not task.takes_location:
        able = ", ".join(t.name for t in TASKS.values() if t.takes_location)
        _fail("options.use_location", f"{task.name} cannot take Coordinates; use_location works with {able}.")
    if task.merge_methods is not None and merge not in task.merge_methods:
        _fail("options.merge_method", f"{task.name} supports merge_method {' or '.join(map(repr, task.merge_methods))}.")
    tim = raw.get("tim_modalities", ["LULC"])
    if not isinstance(tim, (list, tuple)) or not tim:
        _fail("options.tim_modalities", f"options.tim_modalities must be a non-empty list, got {tim!r}.")
    tim_res = []
    for m in tim:
        r = resolve_output(m)
        if r not in GENERATION_OUTPUTS:
            _fail("options.tim_modalities", f"Unknown TiM modality {m!r}; choose from {', '.join(GENERATION_OUTPUTS)}.")
        tim_res.append(r)
    ckpt = raw.get("checkpoint")
    if task.needs_checkpoint and not ckpt:
        _fail("options.checkpoint", f"{task.name} needs options.checkpoint: the fine-tuned TerraTorch checkpoint "
                                    "(.ckpt) to run.")
    for flag in ("probabilities", "standardize", "use_location"):
        if flag in raw and not isinstance(raw[flag], bool):
            _fail(f"options.{flag}", f"options.{flag} must be true or false, got {raw[flag]!r}.")
    precision = _choice(raw.get("precision", "auto"), "options.precision", PRECISIONS)
    return Options(layer=_int(raw.get("layer", -1), "options.layer"), merge_method=merge,
                   tim_modalities=tuple(tim_res),
                   checkpoint=None if ckpt is None else _path(ckpt, "options.checkpoint", base_dir),
                   probabilities=raw.get("probabilities", False), standardize=raw.get("standardize", True),
                   use_location=raw.get("use_location", False),
                   precision=precision, uncertainty=parse_uncertainty(raw.get("uncertainty"), warnings),
                   **_task_options(raw, task, outputs, warnings))


def _executor(raw, base_dir: Optional[str], warnings: List[str]) -> Executor:
    raw = _section({"kind": raw} if isinstance(raw, str) else raw, "executor", Executor.__dataclass_fields__,
                   warnings, example=' like {"kind": "ray"}')
    kind = _choice(raw.get("kind", "local"), "executor.kind", EXECUTORS)
    address = raw.get("address")
    workers = raw.get("workers")
    gpus = raw.get("gpus_per_worker")
    env = raw.get("runtime_env")
    if env is not None and not isinstance(env, dict):
        _fail("executor.runtime_env", f"executor.runtime_env must be an object (Ray's runtime_env), got {env!r}.")
    cpus = _float(raw.get("cpus_per_worker", 1.0), "executor.cpus_per_worker", allow_none=False)
    if cpus <= 0:
        _fail("executor.cpus_per_worker", f"executor.cpus_per_worker must be positive, got {cpus}.")
    gpus = _float(gpus, "executor.gpus_per_worker")
    if gpus is not None and gpus < 0:
        _fail("executor.gpus_per_worker", f"executor.gpus_per_worker must be 0 or more, got {gpus}.")
    return Executor(kind=kind, address=None if address is None else _str(address, "executor.address"),
                    workers=None if workers is None else _int(workers, "executor.workers", lo=1),
                    cpus_per_worker=cpus, gpus_per_worker=gpus,
                    block_batches=_int(raw.get("block_batches", 2), "executor.block_batches", lo=1),
                    scratch=None if raw.get("scratch") is None else _path(raw["scratch"], "executor.scratch",
                                                                         base_dir),
                    runtime_env=env)


_TOP_KEYS = ("version", "task", "model", "inputs", "outputs", "extent", "crs", "resolution", "tiling",
             "device", "timesteps", "seed", "options", "executor")


def parse_jobspec(raw: Any, base_dir: Optional[str] = None) -> JobSpec:
    """Structural checks of a JobSpec dict; relative paths resolve against ``base_dir`` (default: cwd)."""
    if isinstance(raw, JobSpec):
        return raw
    if not isinstance(raw, dict):
        _fail(None, f"A JobSpec must be a JSON object, got {type(raw).__name__}.")
    if base_dir is not None and not isinstance(base_dir, str):
        _fail("base_dir", f"base_dir must be a folder path (a string), got {type(base_dir).__name__} {base_dir!r}.")
    warnings: List[str] = []
    _known_keys(raw, _TOP_KEYS, "", warnings)
    version = raw.get("version", VERSION)
    if version != VERSION:
        _fail("version", f"Unsupported JobSpec version {version!r}; this backend reads version {VERSION}.")
    task = TASKS.get(raw.get("task")) if isinstance(raw.get("task"), str) else None
    if task is None:
        _fail("task", f"Unknown task {raw.get('task')!r}; choose one of {', '.join(TASKS)}.")
    model = model_field(raw.get("model", DEFAULT_MODEL)).weights.registry_name  # the task picks the variant

    raw_inputs = raw.get("inputs")
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        _fail("inputs", "inputs must map at least one modality to a raster, e.g. {\"S2L2A\": {\"path\": \"a.tif\"}}.")
    inputs: Dict[str, InputSpec] = {}
    for key, value in raw_inputs.items():
        if task.input_keys is not None:  # named files, not modalities (e.g. similarity's embeddings)
            if key not in task.input_keys:
                _fail(f"inputs.{key}", f"{task.name} reads {' and '.join(map(repr, task.input_keys))}, got {key!r}.")
            inputs[key] = InputSpec(path=_path(value.get("path") if isinstance(value, dict) else value,
                                               f"inputs.{key}.path", base_dir))
            continue
        mod = resolve(key)
        if mod is None:
            _fail(f"inputs.{key}", f"Unknown modality {key!r}; known modalities: {', '.join(INPUT_MODALITIES)}.")
        if mod in inputs:
            _fail(f"inputs.{key}", f"Modality {mod} is given twice.")
        inputs[mod] = _input(mod, value, base_dir, any_band_count=task.checkpoint_sets_bands)

    outputs = _outputs(task, raw.get("outputs"), inputs, base_dir)
    crs = raw.get("crs")
    if crs is not None:
        crs = _str(crs, "crs")
    resolution = raw.get("resolution", 10.0)
    resolution = 10.0 if resolution is None else _float(resolution, "resolution", allow_none=False)
    if resolution <= 0:
        _fail("resolution", f"resolution must be a positive pixel size, got {resolution}.")
    device = str(raw.get("device", "auto") or "auto").strip().lower()
    if not _DEVICE.match(device):
        _fail("device", f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.")
    spec = JobSpec(task=task.name, model=model, inputs=inputs, outputs=outputs, extent=_extent(raw.get("extent")),
                   crs=crs, resolution=resolution, tiling=_tiling(raw.get("tiling"), task, warnings),
                   device=device, timesteps=_int(raw.get("timesteps", 10), "timesteps", lo=1, hi=1000),
                   seed=_int(raw.get("seed", 0), "seed", lo=0, hi=2**63 - 1),
                   options=_options(raw.get("options"), task, warnings, base_dir, outputs),
                   executor=_executor(raw.get("executor"), base_dir, warnings), warnings=tuple(warnings))
    if spec.executor.kind != "local" and COORDINATES in spec.outputs:
        _fail("outputs.Coordinates", "The Coordinates point layer is written by the local executor only; run this "
                                     "job locally or leave the Coordinates output out.")
    return spec
