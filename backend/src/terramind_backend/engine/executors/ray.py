"""The Ray executor (docs/scale.md): the window plan runs on a Ray cluster, the outputs are
assembled here exactly as the local executor assembles them.

This process starts `ray_driver` as a child (Ray ends the process that loses its cluster, and the
stdio server must outlive that), learns the products and the plan from it, then blends each block's
window stacks from the scratch folder in plan order with the same `Assembly` as a local job,
deleting each block once blended, and publishes atomically. A failed, lost or cancelled cluster
job publishes nothing and removes its scratch folder.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import pickle  # nosec B403: job hand-over with our own child process only (never foreign data)
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import rasterio

from ..errors import JobCancelled, JobValidationError
from ..leftovers import is_stale
from .assembly import Assembly
from .blocks import load_block, remove_block
from .windows import READ_ENV, Progress, window_plan, work_grid

INSTALL_HINT = "pip install 'terramind-backend[ray]'"
STOP_GRACE_S = 10      # a cancelled driver gets this long to kill its actors before it is killed


class ClusterJobFailed(RuntimeError):
    pass


def ray_available() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def require_ray() -> None:
    if not ray_available():
        raise JobValidationError(f"executor 'ray' needs Ray in the backend's environment: {INSTALL_HINT} "
                                 f"(or run with the local executor).", "executor.kind")


class _Driver:
    """The child process and its event stream."""

    def __init__(self, job_file: str, log_file: str):
        self._log = open(log_file, "w+", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_DISABLE_USAGE_STATS="1")
        self.proc = subprocess.Popen(  # nosec B603: our own interpreter and module, argv list, no shell
            [sys.executable, "-m", __package__ + ".ray_driver", job_file], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, encoding="utf-8")
        self.events: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.events.put({"event": "exit"})

    def next_event(self, cancel: threading.Event) -> dict:
        while True:
            if cancel.is_set():
                raise JobCancelled()
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event["event"] == "error":
                raise ClusterJobFailed(f"The Ray job failed: {event['message']}")
            if event["event"] == "exit":
                self.proc.wait()
                raise ClusterJobFailed(f"The Ray driver stopped (exit code {self.proc.returncode}); the cluster "
                                       f"is gone or unreachable. Last lines of its log:\n{self.log_tail()}")
            return event

    def log_tail(self, lines: int = 8) -> str:
        self._log.flush()
        self._log.seek(0)
        text = [ln for ln in self._log.read().splitlines() if ln.strip()]
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """Ask the driver to cancel (it kills its actors), then make sure it is gone; idempotent."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("cancel\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


_SCRATCH = re.compile(r"^\.terramind-ray\.(?P<pid>[0-9a-f]{8})\.")


def _scratch_root(spec) -> str:
    return spec.executor.scratch or os.path.dirname(next(iter(spec.outputs.values())))


def _new_scratch(root: str) -> str:
    """A fresh scratch folder named after this process; those of dead runs (a backend killed with
    SIGKILL cannot clean up) are removed first, like the writers' temp files (leftovers.py)."""
    for name in os.listdir(root):
        match = _SCRATCH.match(name)
        if match and is_stale(os.path.join(root, name), int(match["pid"], 16)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f".terramind-ray.{os.getpid():08x}.", dir=root)


def run_on_ray(spec, layout, emit, cancel) -> dict:
    require_ray()
    root = _scratch_root(spec)
    if not os.path.isdir(root):
        raise JobValidationError(f"executor.scratch {root!r} is not a folder.", "executor.scratch")
    grid = work_grid(spec, layout)
    blocks = window_plan(grid, spec, spec.executor.block_batches)
    total = blocks.windows
    scratch = _new_scratch(root)
    driver = None
    try:
        job_file = os.path.join(scratch, "job.pkl")
        with open(job_file, "wb") as f:
            pickle.dump({"spec": spec, "layout": layout, "scratch": scratch, "blocks": blocks}, f)
        driver = _Driver(job_file, os.path.join(scratch, "driver.log"))
        emit({"event": "log", "level": "info", "message": "Connecting to Ray"})
        event = driver.next_event(cancel)
        while event["event"] == "log":
            emit({"event": "log", "level": event.get("level", "info"), "message": event["message"]})
            event = driver.next_event(cancel)
        if event["event"] != "ready":
            raise ClusterJobFailed(f"Unexpected event from the Ray driver: {event}")
        products = pickle.loads(base64.b64decode(event["products"]))  # nosec B301: from our own child process
        device = f"ray:{event['device']}"
        emit({"event": "log", "level": "info",
              "message": f"{spec.task} on Ray ({event['workers']} workers, {event['device']}): grid "
                         f"{layout.grid.width}x{layout.grid.height} px ({layout.grid.crs.to_string()}, "
                         f"{layout.grid.res:g} units/px), {total} windows in {len(blocks)} blocks"})
        keys = [p.key for p in products]
        with rasterio.Env(**READ_ENV), Assembly(products, grid, spec.tiling.window, spec.tiling.overlap,
                                                 layout.polygon) as assembly:
            progress = Progress(total, emit)
            finished, next_block = set(), 0
            while next_block < len(blocks):
                event = driver.next_event(cancel)
                if event["event"] == "block":
                    finished.add(event["index"])
                elif event["event"] == "log":
                    emit({"event": "log", "level": event.get("level", "info"), "message": event["message"]})
                while next_block in finished:   # blend in plan order: the row strips need row-major windows
                    finished.discard(next_block)
                    block = blocks[next_block]
                    stacks = load_block(scratch, block.index, keys)
                    assembly.add(block.windows, stacks)
                    remove_block(scratch, block.index, keys)
                    progress.advance(len(block.windows))
                    next_block += 1
            assembly.publish(emit, cancel)
        return {"outputs": assembly.outputs(), "tiles": total, "device": device}
    finally:
        _clean_up(driver, scratch)


def _clean_up(driver: "_Driver", scratch: str) -> None:
    """Remove the scratch folder and stop the driver (it kills its actors). The stdio server's hard
    cancel may interrupt this once (JobCancelled raised into the thread), so it goes round again."""
    for _ in range(3):
        try:
            shutil.rmtree(scratch, ignore_errors=True)
            if driver is not None:
                driver.stop()
            return
        except JobCancelled:
            continue
