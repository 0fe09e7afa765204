"""The Ray driver process: `python -m terramind_backend.engine.executors.ray_driver JOB.pkl`.

Started by `ray.py` for one job. It connects to (or starts) the Ray cluster, creates the model
actors, hands them blocks in plan order (a bounded number ahead of the oldest unfinished one, so
the scratch folder never holds more than a few blocks) and reports each finished block. Events go
to the parent as JSON lines on the original stdout; everything else printed here goes to stderr.
It runs in its own process because Ray ends the process that lost its cluster: the parent survives
that, reports it and cleans up. ``cancel`` on stdin (or stdin closing, or SIGINT/SIGTERM) kills the
actors and exits.
"""
from __future__ import annotations

import base64
import json
import os
import pickle  # nosec B403: job hand-over with our own parent process only (never foreign data)
import signal
import sys
import threading
import time

EXIT_CANCELLED = 3
ACTOR_RETRIES = 4          # restarts of a dead actor, and retries of the blocks it held
QUEUE_PER_ACTOR = 2        # blocks queued on one actor (one running, one ready)
START_TIMEOUT_S = 600      # waiting for the first actor: model download/load, or resources that never come


class _Events:
    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # Ray's and the model code's prints must not mix with the events

    def __call__(self, event: str, **fields) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()


def _watch_cancel(cancel: threading.Event) -> None:
    def on_signal(signum, frame):
        cancel.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "cancel":
                break
        cancel.set()  # "cancel", or the parent is gone
    threading.Thread(target=read_stdin, daemon=True).start()


def _connect(ray, job) -> str:
    ex = job["spec"].executor
    common = dict(log_to_driver=False, logging_level="WARNING", runtime_env=ex.runtime_env or None)
    if ex.address:
        ray.init(address=ex.address, **common)
        return f"cluster {ex.address}"
    cpus = (ex.workers or max(1, int((os.cpu_count() or 1) // ex.cpus_per_worker))) * ex.cpus_per_worker
    ray.init(address="local", num_cpus=max(1, int(round(cpus))), include_dashboard=False,
             object_store_memory=78 * 2**20, **common)
    return "a local Ray instance (stopped after the job)"


def _actor_count(ray, job, gpus: float) -> int:
    ex = job["spec"].executor
    if ex.workers:
        return ex.workers
    res = ray.cluster_resources()
    fits = res.get("CPU", 1) // ex.cpus_per_worker
    if gpus > 0:
        fits = min(fits, res.get("GPU", 0) // gpus)
    return max(1, int(fits))


def _gpus_per_worker(ray, job) -> float:
    spec = job["spec"]
    if spec.executor.gpus_per_worker is not None:
        return spec.executor.gpus_per_worker
    wants_gpu = spec.device == "auto" or spec.device.startswith("cuda")
    return 1.0 if wants_gpu and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _get(ray, ref, cancel: threading.Event, timeout: float):
    deadline = time.monotonic() + timeout
    while not cancel.is_set():
        ready, _ = ray.wait([ref], timeout=0.25)
        if ready:
            return ray.get(ref)
        if time.monotonic() > deadline:
            raise TimeoutError
    return None


def run(job, send, cancel: threading.Event) -> int:
    import ray

    from .ray_worker import BlockWorker

    spec, ex = job["spec"], job["spec"].executor
    where = _connect(ray, job)
    actors = []
    try:
        gpus = _gpus_per_worker(ray, job)
        n = _actor_count(ray, job, gpus)
        remote = ray.remote(num_cpus=ex.cpus_per_worker, num_gpus=gpus, max_restarts=ACTOR_RETRIES,
                            max_task_retries=ACTOR_RETRIES)(BlockWorker)
        actors = [remote.remote(spec, job["layout"], job["scratch"], max(1, int(ex.cpus_per_worker)))
                  for _ in range(n)]
        send("log", level="info", message=f"Ray: {n} worker(s) ({ex.cpus_per_worker:g} CPU, {gpus:g} GPU each) "
                                          f"on {where}; loading the model on each")
        try:
            info = _get(ray, actors[0].describe.remote(), cancel, START_TIMEOUT_S)
        except TimeoutError:
            send("error", message=f"No Ray worker started within {START_TIMEOUT_S} s: the cluster lacks the "
                                  f"resources each needs ({ex.cpus_per_worker:g} CPU, {gpus:g} GPU), or cannot "
                                  f"load the model.")
            return 1
        if info is None:
            return EXIT_CANCELLED
        send("ready", device=info["device"], workers=n,
             products=base64.b64encode(ray.cloudpickle.dumps(info["products"])).decode("ascii"))
        return _schedule(ray, actors, job["blocks"], send, cancel)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        ray.shutdown()


def _schedule(ray, actors, blocks, send, cancel: threading.Event) -> int:
    """Blocks in plan order to the least busy actor, at most a bounded number ahead of the oldest
    unfinished one; each finished block is reported at once (any order)."""
    ahead = len(actors) * QUEUE_PER_ACTOR * 2
    pending = {}                      # ref → (block index, actor position)
    load = [0] * len(actors)
    next_block = 0
    while next_block < len(blocks) or pending:
        if cancel.is_set():
            return EXIT_CANCELLED
        oldest = min((index for index, _ in pending.values()), default=next_block)
        while (next_block < len(blocks) and next_block < oldest + ahead
               and min(load) < QUEUE_PER_ACTOR):
            a = load.index(min(load))
            pending[actors[a].run_block.remote(blocks[next_block])] = (next_block, a)
            load[a] += 1
            next_block += 1
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
        for ref in ready:
            index, a = pending.pop(ref)
            load[a] -= 1
            ray.get(ref)  # a task that failed for good raises here (its cause in the message)
            send("block", index=index)
    send("finished")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    send = _Events()
    cancel = threading.Event()
    _watch_cancel(cancel)
    with open(argv[0], "rb") as f:
        job = pickle.load(f)  # nosec B301: written by our parent process, in its private scratch folder
    try:
        code = run(job, send, cancel)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear event for the parent
        cause = getattr(exc, "cause", None) or exc   # a worker's exception, without Ray's wrapping
        send("error", message=f"{type(cause).__name__}: {cause}")
        return 1
    if code == EXIT_CANCELLED:
        send("cancelled")
    return code


if __name__ == "__main__":
    sys.exit(main())
