"""The block plan both executors walk: the same windows, batches and batch numbers as
`tiling.plan_windows`; the Ray executor's block files written atomically (no Ray needed)."""
from __future__ import annotations

import numpy as np
import pytest

from terramind_backend.engine.executors.blocks import block_done, load_block, remove_block, save_block
from terramind_backend.engine.executors.windows import BlockPlan
from terramind_backend.engine.grid import Grid
from terramind_backend.engine.jobspec import Tiling
from terramind_backend.engine.tiling import batches, plan_windows


@pytest.mark.parametrize("height, width, tiling, block_batches", [
    (896, 896, Tiling(224, 32, 2), 1),
    (1000, 700, Tiling(224, 32, 8), 2),
    (100, 5000, Tiling(96, 16, 3), 4),
    (224, 224, Tiling(224, 32, 8), 2),
])
def test_blocks_cover_the_local_plan_in_order_with_its_batch_numbers(height, width, tiling, block_batches):
    grid = Grid(None, None, width, height)
    plan = BlockPlan.for_grid(grid, tiling, block_batches)
    local = list(batches(plan_windows(height, width, tiling.window, tiling.overlap), tiling.batch_size))
    assert plan.windows == sum(len(b) for b in local)
    seen = []
    for i in range(len(plan)):
        block = plan[i]
        assert block.index == i and block.first_batch == len(seen)
        seen += [list(b) for b in block.batches]
    assert seen == [list(b) for b in local]
    with pytest.raises(IndexError):
        plan[len(plan)]


def test_block_files_are_complete_or_absent(tmp_path):
    stacks = {"LULC": np.random.rand(3, 11, 8, 8).astype(np.float32), "DEM": np.ones((3, 2, 8, 8), np.float32)}
    assert not block_done(str(tmp_path), 4, stacks)
    save_block(str(tmp_path), 4, stacks)
    assert block_done(str(tmp_path), 4, stacks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block-0000004.DEM.npy", "block-0000004.LULC.npy"]
    back = load_block(str(tmp_path), 4, stacks)
    assert all(np.array_equal(back[k], stacks[k]) for k in stacks)
    save_block(str(tmp_path), 4, stacks)                 # a retried block: same files, no temp left
    assert len(list(tmp_path.iterdir())) == 2
    remove_block(str(tmp_path), 4, stacks)
    assert list(tmp_path.iterdir()) == []
