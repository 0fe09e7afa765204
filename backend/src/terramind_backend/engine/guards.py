"""Checks before the heavy part of a job that would otherwise fail late or waste hours.

`check_free_space(products, grid)`: every output folder's disk must hold the job's outputs, estimated
from the grid (uncompressed size: an upper bound of what one output holds while it is converted to a
COG), before the first window is predicted.
"""
from __future__ import annotations

import os
import shutil
from typing import Dict

from .errors import JobValidationError

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
