"""Checks before the heavy part of a job that would otherwise fail late or waste hours.

`check_input_values(spec, layout)`: a decimated look (at most `SAMPLE_PX` on the long side) at every input
over the extent, through the job's own alignment: an input with no valid pixel there is refused, values far
outside the modality's physical range give a warning naming the likely fix (0-1 reflectance without
``scale``, linear SAR backscatter instead of dB, scaled NDVI, …).
`check_free_space(products, grid)`: every output folder's disk must hold the job's outputs, estimated
from the grid (uncompressed size: an upper bound of what one output holds while it is converted to a
COG), before the first window is predicted.
"""
from __future__ import annotations

import os
import shutil
import math
from typing import Dict, List

import numpy as np

from .errors import JobCancelled, JobValidationError
from .failures import input_read_error

SAMPLE_PX = 512
_REFLECTANCE = ("S2L2A", "S2L1C")
_BACKSCATTER = ("S1GRD", "S1RTC")

_ITEMSIZE = {"uint8": 1, "uint16": 2, "int16": 2, "float32": 4, "float64": 8}


def output_bytes(spec, grid) -> int:
    """Uncompressed size of one output (an `OutputSpec`) on ``grid``."""
    width, height = -(-grid.width // spec.scale), -(-grid.height // spec.scale)
    return width * height * spec.count * _ITEMSIZE.get(spec.dtype, 4)


def check_free_space(products, grid) -> None:
    """Raise JobValidationError naming the folder when its disk cannot hold what the job writes there."""
    need: Dict[int, list] = {}                      # device -> [bytes, folder, first output name]
    for product in products:
        for out in product.outputs:
            folder = os.path.dirname(out.path) or "."
            try:
                device = os.stat(folder).st_dev
            except OSError:
                continue  # validation already checked the folder; a race is reported when writing
            entry = need.setdefault(device, [0, folder, out.name])
            entry[0] += output_bytes(out, grid)
    for needed, folder, name in need.values():
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise JobValidationError(
                f"Not enough free space for the outputs in {folder}: they need up to about {needed / 2**20:,.0f} MB "
                f"(uncompressed) and the disk has {free / 2**20:,.0f} MB free. Free some space, choose a folder on "
                f"another disk, or a smaller extent or coarser resolution.", f"outputs.{name}")


def _sample(source, item, grid):
    """(values [C, n], valid pixel count) of a decimated read of one input over ``grid``."""
    from rasterio.windows import Window

    from .align import AlignedReader

    factor = max(1, math.ceil(max(grid.width, grid.height) / SAMPLE_PX))
    coarse = grid.coarsen(factor)
    reader = AlignedReader(source, item, coarse)
    try:
        data, valid = reader.read(Window(0, 0, coarse.width, coarse.height))
    except JobCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file: name it, as the window reads do
        raise input_read_error(source.modality, source.path, exc) from exc
    finally:
        reader.close()
    return data[:, valid], int(valid.sum())


def _value_warnings(mod: str, values: np.ndarray) -> List[str]:
    where = f"inputs.{mod}"
    low, high = float(np.percentile(values, 1)), float(np.percentile(values, 99))
    if mod in _REFLECTANCE:
        if low >= -0.5 and high <= 1.5:
            return [f"{mod} values lie between {low:.3g} and {high:.3g}: this looks like 0-1 reflectance, but TerraMind "
                    f"expects reflectance x 10000. Set {where}.scale to 10000."]
        if low < -100:
            return [f"{mod} has negative reflectance (1st percentile {low:.0f}): check {where}.offset (L2A "
                    f"products since 2022 carry an offset of -1000) and the band mapping."]
    elif mod in _BACKSCATTER:
        if low >= 0 and high <= 5:
            return [f"{mod} values lie between {low:.3g} and {high:.3g}: this looks like linear backscatter, but "
                    f"TerraMind expects decibels. Convert to 10*log10(value) first."]
        if high > 100 or low < -100:
            return [f"{mod} values lie between {low:.3g} and {high:.3g}, far outside the -50..+20 dB of "
                    f"backscatter: check the bands and {where}.scale/offset."]
    elif mod == "DEM":
        if high > 9000 or low < -1000:
            return [f"DEM values lie between {low:.3g} and {high:.3g}: TerraMind expects metres. Check the units "
                    f"and {where}.scale."]
    elif mod == "NDVI":
        if high > 1.5 or low < -1.5:
            return [f"NDVI values lie between {low:.3g} and {high:.3g}, outside -1..1: if it is stored scaled "
                    f"(e.g. x10000), set {where}.scale (e.g. 0.0001)."]
    return []


def check_input_values(spec, layout) -> List[str]:
    """Refuse an input without a valid pixel over the extent; return warnings for implausible values."""
    warnings: List[str] = []
    for mod, source in layout.sources.items():
        values, count = _sample(source, spec.inputs[mod], layout.grid)
        if count == 0:
            raise JobValidationError(
                f"Input {mod} ({os.path.basename(source.path)}) has no valid pixel over the extent: it is all "
                f"nodata or NaN there. Check the extent, the nodata value (inputs.{mod}.nodata) and the band "
                f"mapping.", f"inputs.{mod}.path")
        warnings += _value_warnings(mod, values)
    return warnings


# Above these a job is most likely a mistake (a resolution typo, a whole country at 10 m): the CLI runs it
# only with --yes.
CONFIRM_WINDOWS = 20_000
CONFIRM_UPSAMPLING = 4.0      # target pixels this many times finer than the finest input's, per axis
CONFIRM_HOURS = 2.0           # estimated run time (engine/time_estimate.py; CPU only: GPUs are not measured)


def preflight(spec, base_dir=None) -> dict:
    """What to tell the user before a valid job starts: {"estimate": {"windows", "seconds"} or None for a task
    that runs its own job, "confirm": [why it looks like a mistake worth confirming]}. Reads metadata only."""
    from .executors.windows import window_plan, work_grid
    from .jobspec import parse_jobspec
    from .tasks import own_job
    from .time_estimate import describe, estimate_seconds
    from .validate import inspect_job

    if own_job(spec) is not None:
        return {"estimate": None, "confirm": []}
    job = parse_jobspec(spec, base_dir=base_dir)
    layout = inspect_job(job)
    reasons = []
    windows = window_plan(work_grid(job, layout), job).windows   # windows, not blocks (len() counts blocks)
    seconds = estimate_seconds(job, windows)
    if windows > CONFIRM_WINDOWS:
        reasons.append(f"{windows:,} windows of {job.tiling.window} px on a {layout.grid.width:,}x"
                       f"{layout.grid.height:,} px grid (more than {CONFIRM_WINDOWS:,})")
    same_crs = [abs(s.res[0]) for s in layout.sources.values() if s.crs == layout.grid.crs]
    if same_crs and min(same_crs) / layout.grid.res > CONFIRM_UPSAMPLING:
        reasons.append(f"resolution {layout.grid.res:g} is {min(same_crs) / layout.grid.res:.0f}x finer than the "
                       f"finest input's {min(same_crs):g}, which only interpolates the inputs")
    if seconds is not None and seconds > CONFIRM_HOURS * 3600:
        reasons.append(f"an estimated run time of {describe(seconds)} on the CPU (more than {CONFIRM_HOURS:g} h): "
                       f"fewer windows (extent, resolution), fewer timesteps or outputs, or a GPU shorten it")
    return {"estimate": {"windows": windows, "seconds": None if seconds is None else round(seconds, 2)},
            "confirm": reasons}


def confirmation_reasons(spec, base_dir=None) -> List[str]:
    """Why a valid job looks like a mistake worth confirming (empty: run it). Reads metadata only."""
    return preflight(spec, base_dir)["confirm"]
