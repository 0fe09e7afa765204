"""The Ray actor: one model on one worker, computing blocks of a job's window plan.

Plain Python (no Ray import): `ray_driver` wraps it with ``ray.remote`` and its resources. Workers
import it by name, so every worker needs this backend installed (docs/scale.md) and must be able
to open the job's input paths and write to its scratch folder.
"""
from __future__ import annotations

import os
import socket

import numpy as np
import rasterio

from .. import predictors
from ..predictors.base import Context
from .blocks import block_done, save_block
from .windows import READ_ENV, Block, close_readers, open_readers, read_windows, window_stacks, work_grid


class BlockWorker:
    def __init__(self, spec, layout, scratch: str, threads: int):
        import torch

        from ..model_cache import ModelCache
        from ..runner import _resolve_device

        torch.set_num_threads(max(1, threads))
        self.spec, self.layout, self.scratch = spec, layout, scratch
        self.device = _resolve_device(spec.device)
        self.predictor = predictors.load(spec.task).build(
            Context(spec, layout, ModelCache(), self.device, lambda event: None))
        self.grid = work_grid(spec, layout)
        self.keys = [p.key for p in self.predictor.products]
        self._env = rasterio.Env(**READ_ENV)
        self._env.__enter__()
        self._readers = open_readers(spec, layout, self.grid)

    def describe(self) -> dict:
        """What the driver needs to assemble the outputs: the products (output specs, finalize rules)."""
        return {"products": self.predictor.products, "device": self.device, "host": socket.gethostname(),
                "pid": os.getpid()}

    def run_block(self, block: Block) -> int:
        """Compute one block (skipped when a previous attempt already finished it); returns its index."""
        if block_done(self.scratch, block.index, self.keys):
            return block.index
        parts = {k: [] for k in self.keys}
        for offset, batch in enumerate(block.batches):
            arrays, valid = read_windows(self._readers, batch, self.grid, self.spec)
            outputs = self.predictor.predict(arrays, valid, block.first_batch + offset)
            for key, stack in window_stacks(self.predictor.products, outputs, valid).items():
                parts[key].append(stack)
        save_block(self.scratch, block.index, {k: np.concatenate(v) for k, v in parts.items()})
        return block.index

    def __del__(self):
        try:
            close_readers(self._readers)
            self._env.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 # nosec B110: best effort at actor exit
            pass
