"""The task table: every rule that depends on a job's task, in one torch-free place.

`jobspec.parse_jobspec` (outputs, tiling, options), `validate.inspect_job` (band counts, derived
files, checkpoint), `runner.run_job`/`plan_job` (patch-aligned grid) and the predictor registry
read a `Task` from `TASKS` instead of testing task names. A new task is one `register(Task(...))`
plus its predictor module (docs/architecture.md, "Adding a task").
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from . import similarity_query
from .modalities import COORDINATES, GENERATION_OUTPUTS, TOKENIZED

EMBED_OUTPUT = "embeddings"
_PREDICTORS = "terramind_backend.engine.predictors"


@dataclass(frozen=True)
class Task:
    name: str
    predictor: str                               # module with `build(ctx)`; imported only when a job runs
    outputs: Tuple[str, ...]                     # output keys the task may write
    required_outputs: Tuple[str, ...] = ()       # keys every job of the task must give
    modality_outputs: bool = False               # keys are modalities (aliases resolve); LULC may add probabilities
    outputs_are_inputs: Optional[bool] = None    # True: each output must be an input; False: none may be
    patch_aligned: bool = False                  # writes per 16 px patch: grid padded, overlap in whole patches
    needs_checkpoint: bool = False               # options.checkpoint names the model to run
    checkpoint_sets_bands: bool = False          # inputs may have any band count: the checkpoint says which
    merge_methods: Optional[Tuple[str, ...]] = None  # allowed options.merge_method (None: all of them)
    # A task with its own JobSpec form and loop instead of windows over one grid (e.g. finetune): a module with
    # run(raw, *, emit, cancel, models, base_dir), validate(raw, base_dir) and plan(raw, base_dir).
    job: Optional[str] = None
    input_keys: Optional[Tuple[str, ...]] = None  # named input files instead of modalities (similarity: embeddings)
    vector_outputs: Tuple[str, ...] = ()         # outputs written as GeoPackage (.gpkg); the others are GeoTIFFs
    options_key: Optional[str] = None            # the task's own options object, options.<options_key>, …
    parse_options: Optional[Callable] = None     # … parsed by parse_options(dict, outputs, warnings)
    takes_location: bool = False                 # options.use_location can feed window centres as Coordinates

    def describe_outputs(self) -> str:
        """The output keys in words, for error messages."""
        if self.modality_outputs:
            return ", ".join(self.outputs)
        required = [repr(k) for k in self.required_outputs]
        optional = [repr(k) for k in self.outputs if k not in self.required_outputs]
        if not required:
            return " or ".join(optional)
        return " and ".join(required) + (" and optionally " + ", ".join(optional) if optional else "")


TASKS: Dict[str, Task] = {}


def register(task: Task) -> None:
    """Add (or replace) a task; its JobSpec rules apply from the next parse on."""
    TASKS[task.name] = task


def get(name: str) -> Optional[Task]:
    return TASKS.get(name)


def own_job(spec):
    """The job module of a task that runs its own job (``Task.job``) for a raw or parsed spec, else None."""
    name = spec.get("task") if isinstance(spec, dict) else getattr(spec, "task", None)
    task = TASKS.get(name) if isinstance(name, str) else None
    return importlib.import_module(task.job) if task is not None and task.job else None


for _task in (
    Task("generate", f"{_PREDICTORS}.generate", GENERATION_OUTPUTS, modality_outputs=True, outputs_are_inputs=False,
         takes_location=True, vector_outputs=(COORDINATES,)),
    Task("embed", f"{_PREDICTORS}.embed", (EMBED_OUTPUT,), required_outputs=(EMBED_OUTPUT,), patch_aligned=True,
         takes_location=True),
    Task("tim-embed", f"{_PREDICTORS}.embed", (EMBED_OUTPUT,), required_outputs=(EMBED_OUTPUT,), patch_aligned=True,
         merge_methods=("mean", "max"), takes_location=True),
    Task("segment", f"{_PREDICTORS}.segment", ("classes", "probabilities"), required_outputs=("classes",),
         needs_checkpoint=True, checkpoint_sets_bands=True),
    Task("reconstruct", f"{_PREDICTORS}.reconstruct", TOKENIZED, modality_outputs=True, outputs_are_inputs=True),
    Task("finetune", "terramind_backend.finetune.job", ("checkpoint",), required_outputs=("checkpoint",),
         job="terramind_backend.finetune.job"),
    Task(similarity_query.TASK, "terramind_backend.engine.similarity", similarity_query.OUTPUTS,
         required_outputs=(similarity_query.RASTER_OUTPUT,), input_keys=(similarity_query.INPUT,),
         vector_outputs=(similarity_query.AREAS_OUTPUT,), job="terramind_backend.engine.similarity", options_key=similarity_query.TASK,
         parse_options=similarity_query.parse_query),
):
    register(_task)
