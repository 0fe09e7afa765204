"""Is bf16 faster than fp32 for our model's matrix products on this device? Measured, not guessed.

CPU bf16 paths differ too much for a flag test to know (AMX tiles, AVX-512 BF16 dot products, or slow
emulation), so ``precision="auto"`` asks this probe: a few of the GEMMs TerraMind runs (the tiny backbone's
MLP and the ViT-B LULC decoder's, on two tiles of tokens) timed in fp32 and in bf16 as our bf16 path runs
them (bf16 weights, activations cast at the call). bf16 is chosen only when it is at least ``MIN_GAIN``
faster. The probe takes a fraction of a second, runs once per device and process, and its result is
cached per machine and torch version in the user cache folder (``user_cache.py``), so later processes
only read it.
"""
from __future__ import annotations

import hashlib
import platform
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable, Dict, Optional, Tuple

from .. import user_cache

__all__ = ["MIN_GAIN", "ProbeResult", "bf16_probe", "cached_probe"]

PROBE_VERSION = 1
CACHE_FILE = "bf16-probe.json"
MIN_GAIN = 1.15      # smaller gains are within timing noise and not worth bf16's ≈ 1 % deviations
_TOKENS = 392        # two 224² tiles of 16 px patches
_SHAPES = ((192, 768), (768, 192), (768, 3072), (3072, 768))   # (in, out): tiny backbone MLP, ViT-B decoder MLP
_BUDGET_S = 0.4      # stop repeating once the timed rounds have used this much
_SLOW_BF16 = 3.0     # a first bf16 round this much slower than fp32 ends the probe at once (emulated bf16)


@dataclass(frozen=True)
class ProbeResult:
    device: str           # "cpu" or the CUDA device name
    bf16_faster: bool     # what "auto" resolves to: bf16 when True
    fp32_ms: float        # best time of the probe's GEMMs in fp32
    bf16_ms: float        # the same in bf16
    measured: str         # ISO time of the measurement
    machine: str          # what the cache key was made of, readable
    cached: bool = False  # read from the cache file rather than measured by this process

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.bf16_ms if self.bf16_ms > 0 else 0.0

    def summary(self) -> str:
        choice = "bf16" if self.bf16_faster else "fp32"
        return (f"auto = {choice} on {self.device}: bf16 matrix products measured {self.speedup:.2f}x fp32's speed "
                f"({self.bf16_ms:.1f} vs {self.fp32_ms:.1f} ms; bf16 needs {MIN_GAIN:g}x), "
                f"{'cached ' if self.cached else ''}{self.measured}")


_lock = threading.Lock()
_results: Dict[str, ProbeResult] = {}


def _machine(device) -> str:
    """What the result depends on: the processor (or GPU), its ISA as torch sees it, and torch's version."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        hw = f"cuda {props.name} sm{props.major}{props.minor}"
    else:
        hw = f"cpu {_cpu_name()} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        hw += f" amx={bool(amx()) if amx else False} threads={torch.get_num_threads()}"
    return f"{hw} torch {torch.__version__} probe {PROBE_VERSION}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _device_label(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _measure(device) -> Tuple[float, float]:
    """Best total milliseconds of the probe GEMMs in (fp32, bf16), interleaved so load hits both alike."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    cases = []
    for k, n in _SHAPES:
        x = torch.randn(_TOKENS, k, generator=gen).to(device)
        w = (torch.randn(n, k, generator=gen) / k ** 0.5).to(device)
        cases.append((x, w, w.to(torch.bfloat16)))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def fp32():
        for x, w, _ in cases:
            F.linear(x, w)

    def bf16():
        for x, _, wb in cases:
            F.linear(x.to(torch.bfloat16), wb).float()

    def timed(fn: Callable[[], None]) -> float:
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return (time.perf_counter() - t) * 1e3

    with torch.inference_mode():
        best = [timed(fp32), timed(bf16)]  # first calls: oneDNN primitive creation, CUDA kernels, caches
        if best[1] > _SLOW_BF16 * best[0]:
            return best[0], best[1]
        spent, rounds = 0.0, 0
        while rounds < 3 or (spent < _BUDGET_S * 1e3 and rounds < 20):
            a, b = timed(fp32), timed(bf16)
            best = [min(best[0], a), min(best[1], b)]
            spent += a + b
            rounds += 1
    return best[0], best[1]


def _key(machine: str) -> str:
    return hashlib.sha256(machine.encode()).hexdigest()[:16]


def cached_probe(device) -> Optional[ProbeResult]:
    """The result known for ``device`` without measuring: this process's, else the cache file's."""
    label = str(device)
    if label in _results:
        return _results[label]
    entry = (user_cache.read_json(CACHE_FILE) or {}).get(_key(_machine(device)))
    try:
        return ProbeResult(**{**entry, "cached": True}) if isinstance(entry, dict) else None
    except TypeError:  # written by another probe version: measure again
        return None


def bf16_probe(device) -> ProbeResult:
    """Measure (or recall) whether bf16 beats fp32 on ``device`` by at least ``MIN_GAIN``."""
    label = str(device)
    with _lock:
        if label in _results:
            return _results[label]
        result = cached_probe(device)
        if result is None:
            fp32_ms, bf16_ms = _measure(device)
            machine = _machine(device)
            result = ProbeResult(_device_label(device), fp32_ms >= MIN_GAIN * bf16_ms, round(fp32_ms, 2),
                                 round(bf16_ms, 2), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 machine)
            entries = user_cache.read_json(CACHE_FILE) or {}
            entries[_key(machine)] = {k: v for k, v in asdict(result).items() if k != "cached"}
            user_cache.write_json(CACHE_FILE, entries)
        _results[label] = result
        return result
