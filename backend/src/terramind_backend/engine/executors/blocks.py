"""Blocks: the window plan cut into runs of whole batches, the unit a Ray worker computes and retries.

A block keeps the global batch numbers of its batches, so seeded sampling gives the same samples as
the local executor. Its result is one ``.npy`` per product in the scratch folder (the window stacks
``[n, C + 1, s, s]`` of `windows.window_stacks`), written under a temp name and renamed, so a block
computed twice (a retried task) leaves the same complete file and never a torn one.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

import numpy as np
from rasterio.windows import Window

from ..tiling import axis_offsets


@dataclass(frozen=True)
class Block:
    index: int
    first_batch: int                      # global batch number of its first batch (seeding)
    batches: Tuple[Tuple[Window, ...], ...]  # the windows of each batch, in plan order

    @property
    def windows(self) -> List[Window]:
        return [w for batch in self.batches for w in batch]


@dataclass(frozen=True)
class BlockPlan:
    """The row-major window plan of `tiling.plan_windows`, cut into blocks of ``block_batches``
    batches and computed block by block from the axis offsets: its size does not grow with the area."""
    rows: Tuple[int, ...]                 # window row offsets
    cols: Tuple[int, ...]                 # window column offsets
    size: int
    batch_size: int
    block_batches: int

    @classmethod
    def for_grid(cls, grid, tiling, block_batches: int) -> "BlockPlan":
        stride = tiling.window - tiling.overlap
        return cls(tuple(axis_offsets(grid.height, tiling.window, stride)),
                   tuple(axis_offsets(grid.width, tiling.window, stride)), tiling.window, tiling.batch_size,
                   block_batches)

    @property
    def windows(self) -> int:
        return len(self.rows) * len(self.cols)

    def __len__(self) -> int:
        return -(-self.windows // (self.batch_size * self.block_batches))

    def __getitem__(self, index: int) -> Block:
        if not 0 <= index < len(self):
            raise IndexError(index)
        first_batch = index * self.block_batches
        start = first_batch * self.batch_size
        stop = min(start + self.block_batches * self.batch_size, self.windows)
        n = len(self.cols)
        windows = [Window(self.cols[k % n], self.rows[k // n], self.size, self.size) for k in range(start, stop)]
        return Block(index, first_batch, tuple(tuple(windows[i:i + self.batch_size])
                                               for i in range(0, len(windows), self.batch_size)))


def block_path(scratch: str, index: int, key: str) -> str:
    return os.path.join(scratch, f"block-{index:07d}.{key}.npy")


def block_done(scratch: str, index: int, keys: Iterable[str]) -> bool:
    return all(os.path.exists(block_path(scratch, index, k)) for k in keys)


def save_block(scratch: str, index: int, stacks: Dict[str, np.ndarray]) -> None:
    """Each product's stacks, atomically (temp file + rename)."""
    for key, array in stacks.items():
        final = block_path(scratch, index, key)
        tmp = os.path.join(scratch, f".{os.path.basename(final)}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, array)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def load_block(scratch: str, index: int, keys: Iterable[str]) -> Dict[str, np.ndarray]:
    return {k: np.load(block_path(scratch, index, k)) for k in keys}


def remove_block(scratch: str, index: int, keys: Iterable[str]) -> None:
    for k in keys:
        path = block_path(scratch, index, k)
        if os.path.exists(path):
            os.remove(path)
