"""Built models kept between jobs, least recently used first out, under a memory budget.

A warm server must not grow without bound: an entry is keyed only on what decides the weights
(model name, device, build arguments; per-call settings such as ``timesteps`` are passed at call
time by the predictors and are not part of the key), and entries are evicted least-recently-used
whenever the cached bytes exceed the budget. The model a job just asked for is never evicted by its
own load, so a model larger than the budget still runs, alone.

Budget: ``TERRAMIND_MODEL_CACHE_MB`` (``terramind serve --model-cache-mb``) or, by default,
``DEFAULT_BUDGET_FRACTION`` of the machine's physical memory.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Callable, Dict, Optional

Emit = Callable[[dict], None]

BUDGET_ENV = "TERRAMIND_MODEL_CACHE_MB"
DEFAULT_BUDGET_FRACTION = 0.4     # of physical memory: leaves room for the job's windows, GDAL and QGIS
MIN_DEFAULT_BUDGET = 2**30        # machines that report very little memory still keep one small model


def physical_memory_bytes() -> Optional[int]:
    """Total RAM of this machine, or None when the OS does not say."""
    try:
        if sys.platform == "win32":
            class _Status(ctypes.Structure):
                _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                            ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]
            status = _Status()
            status.dwLength = ctypes.sizeof(_Status)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                return int(status.ullTotalPhys)
            return None
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def default_budget_bytes() -> int:
    """The budget from ``TERRAMIND_MODEL_CACHE_MB`` if set, else a fraction of physical memory."""
    configured = os.environ.get(BUDGET_ENV, "").strip()
    if configured:
        try:
            mb = float(configured)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV}={configured!r} is not a number of megabytes (e.g. 4096).") from None
        if not mb > 0:
            raise ValueError(f"{BUDGET_ENV} must be a positive number of megabytes, got {configured!r}.")
        return int(mb * 2**20)
    total = physical_memory_bytes()
    return max(MIN_DEFAULT_BUDGET, int(total * DEFAULT_BUDGET_FRACTION)) if total else 4 * 2**30


def cache_budget() -> dict:
    """The budget a new cache gets and where it comes from (``terramind doctor``; ``hello`` adds live use)."""
    total = physical_memory_bytes()
    try:
        budget, problem = default_budget_bytes(), None
    except ValueError as exc:
        budget, problem = None, str(exc)
    source = f"{BUDGET_ENV}" if os.environ.get(BUDGET_ENV, "").strip() else \
        f"{int(DEFAULT_BUDGET_FRACTION * 100)} % of physical memory"
    info = {"budget_mb": None if budget is None else round(budget / 2**20, 1), "budget_source": source,
            "physical_memory_mb": None if total is None else round(total / 2**20, 1)}
    if problem:
        info["problem"] = problem
    return info


def size_bytes(obj) -> int:
    """Bytes held by a model's parameters and buffers (also inside tuples, lists and dicts of them)."""
    seen = set()

    def walk(item) -> int:
        if id(item) in seen:
            return 0
        seen.add(id(item))
        if hasattr(item, "parameters") and hasattr(item, "buffers"):
            tensors = {t.data_ptr(): t.numel() * t.element_size()
                       for t in list(item.parameters()) + list(item.buffers()) if t.numel()}
            return sum(tensors.values())
        if isinstance(item, dict):
            return sum(walk(v) for v in item.values())
        if isinstance(item, (list, tuple)):
            return sum(walk(v) for v in item)
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return sum(walk(v) for v in vars(item).values())
        return 0

    return walk(obj)


def _release_freed_memory() -> None:
    """Hand memory of evicted models back to the OS (glibc keeps freed heap pages otherwise)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 # nosec B110: freeing is best effort; the model is already dropped
        pass
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


class ModelCache:
    """``get(name, device, emit, **build_kwargs)`` builds a model once and keeps it while it fits the budget."""

    def __init__(self, budget_bytes: Optional[int] = None):
        self.budget_bytes = int(budget_bytes) if budget_bytes is not None else default_budget_bytes()
        self._entries: "OrderedDict[tuple, tuple]" = OrderedDict()   # key -> (object, bytes), oldest first
        self._last_size: Dict[str, int] = {}                          # name -> bytes when last built
        self._lock = threading.RLock()
        self.evictions = 0

    @staticmethod
    def _key(name: str, device: str, kwargs: dict) -> tuple:
        return (name, device, repr(sorted(kwargs.items())))

    @property
    def used_bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def usage(self) -> dict:
        """What the cache holds now (``hello`` and ``terramind doctor`` report it)."""
        with self._lock:
            return {"entries": len(self._entries), "used_mb": round(self.used_bytes / 2**20, 1),
                    "budget_mb": round(self.budget_bytes / 2**20, 1), "evictions": self.evictions,
                    "models": [key[0] for key in self._entries]}

    def get(self, name: str, device: str, emit: Optional[Emit] = None, **kwargs):
        from .. import build_model

        key = self._key(name, device, kwargs)
        emit = emit or (lambda e: None)

        def load():
            emit({"event": "progress", "stage": "load", "done": 0, "total": 1, "fraction": 0.0, "eta_s": None,
                  "message": f"Loading {name}"})
            started: Dict[str, float] = {}

            def download(done, total, label):
                t0 = started.setdefault(label, time.monotonic())
                rate = done / max(time.monotonic() - t0, 1e-6)
                eta = round((total - done) / rate, 1) if total and done and rate > 0 else None
                emit({"event": "progress", "stage": "download", "done": int(done), "total": int(total or 0),
                      "fraction": (done / total) if total else 0.0, "eta_s": eta,
                      "message": f"Downloading {label}"})

            model = build_model(name, download_progress=download, **kwargs).eval().to(device)
            emit({"event": "progress", "stage": "load", "done": 1, "total": 1, "fraction": 1.0, "eta_s": None,
                  "message": f"Loaded {name}"})
            return model

        return self.get_or_load(key, load, label=name)

    def get_or_load(self, key: tuple, loader: Callable[[], object], label: Optional[str] = None):
        """Any cached object (a model, a segmentation checkpoint) under a caller-made key."""
        label = label or str(key[0])
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            # make room first with what the last build of this model (or the largest entry) weighed
            expected = self._last_size.get(label, max((s for _, s in self._entries.values()), default=0))
            self._evict(self.budget_bytes - expected)
            obj = loader()
            size = size_bytes(obj)
            self._last_size[label] = size
            self._entries[key] = (obj, size)
            self._evict(self.budget_bytes, keep=key)
            return obj

    def _evict(self, limit: int, keep: Optional[tuple] = None) -> None:
        evicted = False
        while self._entries and self.used_bytes > max(limit, 0):
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            del self._entries[oldest]
            self.evictions += 1
            evicted = True
        if evicted:
            _release_freed_memory()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _release_freed_memory()
