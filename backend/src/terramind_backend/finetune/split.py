"""Train/validation split by spatial blocks: neighbouring chips share a block and a side.

Blocks are ``block_size`` x ``block_size`` chips of one scene. They are shuffled with the seed and
taken for validation until it holds ``val_fraction`` of the labelled pixels; at least one block
goes to each side. When a scene has too few blocks for that, the block size shrinks (down to one
chip) rather than leaving validation empty.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np

from ..engine.errors import JobValidationError


def _blocks(chips, chip_size: int, block_size: int) -> Dict[Tuple[int, int, int], List[int]]:
    blocks = defaultdict(list)
    span = chip_size * block_size
    for k, chip in enumerate(chips):
        blocks[(chip.scene, chip.row // span, chip.col // span)].append(k)
    return blocks


def split_chips(chips, chip_size: int, block_size: int, val_fraction: float, seed: int):
    """(train chip indexes, validation chip indexes), disjoint by block, deterministic for a seed."""
    size = block_size
    blocks = _blocks(chips, chip_size, size)
    while len(blocks) < 2 and size > 1:
        size = max(1, size // 2)
        blocks = _blocks(chips, chip_size, size)
    if len(blocks) < 2:
        raise JobValidationError("The labelled chips fall into a single block, so no validation set can be held out; "
                                 "label a larger area or lower training_options.chip_size.", "training_options.chip_size")
    keys = sorted(blocks)
    order = np.random.default_rng(seed).permutation(len(keys))
    pixels = {k: sum(sum(chips[c].counts.values()) for c in blocks[k]) for k in keys}
    total = sum(pixels.values())
    val, taken = [], 0
    for j in order[:-1]:  # the last block always trains
        if taken >= val_fraction * total and val:
            break
        val.append(keys[j])
        taken += pixels[keys[j]]
    val_set = set(val)
    train_idx = sorted(c for k in keys if k not in val_set for c in blocks[k])
    val_idx = sorted(c for k in val for c in blocks[k])
    return train_idx, val_idx
