"""Window plan: which model-sized windows cover the grid, in which order, in which batches.

Pure functions on sizes; no pixels, no files.
"""
from __future__ import annotations

from typing import Iterator, List, Sequence

from rasterio.windows import Window


def axis_offsets(length: int, size: int, stride: int) -> List[int]:
    """Window starts along one axis: 0, stride, 2·stride, … and a last one moved inward to end at
    ``length``. Count = ceil((length − size) / stride) + 1; a length ≤ size gives one window at 0
    (padded at read time, never skipped)."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return starts


def plan_windows(height: int, width: int, size: int, overlap: int) -> List[Window]:
    """Row-major list of ``size``×``size`` windows with at least ``overlap`` px shared by neighbours.

    Row-major order matters: the blender flushes finished rows as soon as a window row starts lower.
    """
    stride = size - overlap
    return [Window(c, r, size, size) for r in axis_offsets(height, size, stride)
            for c in axis_offsets(width, size, stride)]


def batches(items: Sequence, batch_size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), batch_size):
        yield items[i:i + batch_size]
