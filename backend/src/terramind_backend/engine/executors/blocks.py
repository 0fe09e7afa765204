"""Block results of the Ray executor: files in the scratch folder (blocks themselves: `windows.BlockPlan`).

A block's result is one ``.npy`` per product (the window stacks ``[n, C + 1, s, s]`` of
`windows.window_stacks`), written under a temp name and renamed, so a block computed twice (a
retried task) leaves the same complete file and never a torn one.
"""
from __future__ import annotations

import os
import uuid
from typing import Dict, Iterable

import numpy as np


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
