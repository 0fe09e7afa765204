"""`make bench`: our backend at its default settings against TerraTorch 1.1.1, one table of ratios.

    .venv-terratorch/bin/python bench/run_all.py [--device cpu|cuda] [--threads 1] [--batches 1 8]
                                                 [--tasks embed lulc dem] [--no-record] [--compile]

Three implementations, each task in its own fresh process (so one's allocator or caches cannot help another):

- ``ours``: `build_model` as a job builds it, default ``precision="auto"`` (its choice is measured by
  `models/bf16_probe.py`; the header prints it);
- ``TT default``: TerraTorch as its users get it (its import sets ``float32_matmul_precision("medium")``, i.e.
  bf16 matmuls on AMX CPUs and TF32 on GPUs);
- ``TT fp32``: TerraTorch with ``float32_matmul_precision("highest")``.

Tasks on 224² S2L2A tiles with the tiny model and the fake hub's random weights in the official shapes (same cost
as the real ones): ``embed`` (backbone, all 12 layer outputs), ``lulc`` (S2L2A → LULC generation) and ``dem``
(S2L2A → DEM generation, 10 DDIM steps). Times: on the CPU, CPU seconds of the process with ``--threads``
threads (default 1: stable on a shared machine), best of the timed runs after a warm-up; on CUDA, wall seconds
with synchronisation. The diffusion decoder dominates DEM, so DEM runs a single untimed batch-1 warm-up.
The table is printed and, unless ``--no-record``, written into docs/benchmarks.md between the ``make-bench``
markers, with the CPU model, its relevant flags, torch version, threads and load average.

``--device cuda`` is the GPU mode: batches default to 1, 8 and 32, ours runs its default (bf16 on GPUs with bf16),
``--compile`` wraps our backbone in ``torch.compile(mode="max-autotune")`` (CUDA graphs + autotuned GEMMs), and the
embed row also reports the backbone's achieved TFLOP/s as a fraction of a measured bf16 GEMM peak.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPLS = ("tt-fp32", "tt-default", "ours")
TASKS = {"embed": "embeddings", "lulc": "S2L2A → LULC", "dem": "S2L2A → DEM (10 steps)"}
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- make-bench:start -->", "<!-- make-bench:end -->"
SIZE = "tiny"
TILE = 224


# --- one (implementation, task) in its own process -----------------------------------------------------------------

def _build(impl: str, task: str, device: str, compile_: bool):
    import torch

    if impl == "ours":
        sys.path.insert(0, str(REPO / "backend" / "src"))
        from terramind_backend.models import build_model

        if task == "embed":
            model = build_model(f"terramind_v1_{SIZE}", modalities=["S2L2A"], pretrained=True, precision="auto")
        else:
            model = build_model(f"terramind_v1_{SIZE}_generate", modalities=["S2L2A"], pretrained=True,
                                output_modalities=["LULC" if task == "lulc" else "DEM"], timesteps=10,
                                standardize=True, precision="auto")
        model = model.eval().to(device)
        if compile_ and task == "embed":
            model = torch.compile(model, mode="max-autotune")
        return model
    from terratorch.registry import BACKBONE_REGISTRY, FULL_MODEL_REGISTRY

    if impl == "tt-fp32":  # importing TerraTorch set "medium"; "tt-default" keeps it
        torch.set_float32_matmul_precision("highest")
    if task == "embed":
        model = BACKBONE_REGISTRY.build(f"terramind_v1_{SIZE}", modalities=["S2L2A"], pretrained=True)
    else:
        model = FULL_MODEL_REGISTRY.build(f"terramind_v1_{SIZE}_generate", modalities=["S2L2A"], pretrained=True,
                                          output_modalities=["LULC" if task == "lulc" else "DEM"], timesteps=10,
                                          standardize=True)
    return model.eval().to(device)


def _inputs(task: str, batch: int, device: str):
    import torch

    gen = torch.Generator().manual_seed(batch)
    if task == "embed":  # the backbone takes standardized values
        return torch.randn(batch, 12, TILE, TILE, generator=gen).to(device)
    return (1000 + torch.rand(batch, 12, TILE, TILE, generator=gen) * 3000).to(device)  # reflectance x 10000


def worker(impl: str, task: str, batches, device: str, threads: int, repeat: int, compile_: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = _build(impl, task, device, compile_)
    load_s = time.perf_counter() - t0
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time

    def run(x):
        random.seed(0)
        torch.manual_seed(0)
        with torch.no_grad():
            out = model({"S2L2A": x})
        sync()
        return out

    results = {}
    if task == "dem":  # one untimed batch-1 call: the UNet's minute per batch dwarfs any first-call cost
        run(_inputs(task, 1, device))
    for batch in batches:
        x = _inputs(task, batch, device)
        if task != "dem":
            run(x)
        times = []
        for _ in range(1 if task == "dem" else repeat):
            start = clock()
            run(x)
            times.append(clock() - start)
        results[batch] = min(times) / batch
    info = {"impl": impl, "task": task, "s_per_tile": results, "load_s": round(load_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if impl == "ours":
        sys.path.insert(0, str(REPO / "backend" / "src"))
        from terramind_backend.environment import auto_precision

        info["auto"] = auto_precision(device, measure=True)["summary"]
    if cuda and task == "embed":
        info["gemm_peak_tflops"] = _bf16_gemm_peak(device)
    return info


def _bf16_gemm_peak(device: str) -> float:
    """Best bf16 TFLOP/s of large square matmuls on this GPU (the reference for the backbone's fraction)."""
    import torch

    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * 8192 ** 3 / best / 1e12


def backbone_flops_per_tile() -> float:
    """Multiply-adds ×2 of the tiny backbone per 224² tile: per layer QKV + projection (4·d²·N), the MLP
    (8·d²·N) and attention (2·N²·d); N = 196 tokens, d and layers from the catalog (192, 12)."""
    from terramind_backend.catalog import BACKBONES

    n, d, layers = (TILE // 16) ** 2, BACKBONES[SIZE].dim, BACKBONES[SIZE].encoder_depth
    return 2 * layers * (12 * d * d * n + 2 * n * n * d)


def _spawn(impl: str, task: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, task, "--device", args.device, "--threads", str(args.threads),
           "--repeat", str(args.repeat), "--batches", *map(str, args.batches)] + (["--compile"] if args.compile else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{impl} {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the report ----------------------------------------------------------------------------------------------------

def machine(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        name = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split())
    except (OSError, AttributeError):
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
    shown = " ".join(f for f in wanted if f in flags) or "(flags unknown)"
    return f"{name}, {os.cpu_count()} logical CPUs, flags: {shown}; torch {torch.__version__}"


def table(rows: dict, batches, device: str) -> str:
    lines = ["| task | batch | TT fp32 s/tile | TT default s/tile | ours s/tile | **ours / TT default** | ours / TT fp32 |",
             "|---|---|---|---|---|---|---|"]
    for task in TASKS:
        if task not in rows:
            continue
        r = rows[task]
        for batch in batches:
            t = {impl: r[impl]["s_per_tile"][str(batch)] for impl in IMPLS}
            lines.append(f"| {TASKS[task]} | {batch} | {t['tt-fp32']:.4f} | {t['tt-default']:.4f} | {t['ours']:.4f} | "
                         f"**{t['tt-default'] / t['ours']:.2f}×** | {t['tt-fp32'] / t['ours']:.2f}× |")
    if device.startswith("cuda") and "embed" in rows and "gemm_peak_tflops" in rows["embed"]["ours"]:
        peak = rows["embed"]["ours"]["gemm_peak_tflops"]
        best = min(rows["embed"]["ours"]["s_per_tile"].values())
        achieved = backbone_flops_per_tile() / best / 1e12
        lines.append(f"\nBackbone (ours, best batch): {achieved:.1f} TFLOP/s = {achieved / peak:.0%} of the measured "
                     f"bf16 GEMM peak ({peak:.0f} TFLOP/s); {1 / best:.0f} tiles/s.")
    return "\n".join(lines)


def record(text: str) -> None:
    doc = DOC.read_text()
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n## `make bench`\n\n" + START + "\n" + text + "\n" + END + "\n"
    DOC.write_text(doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", nargs="+", type=int)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--repeat", type=int, default=2, help="timed runs after the warm-up (best kept; DEM: 1)")
    ap.add_argument("--compile", action="store_true", help="torch.compile our backbone (CUDA graphs on GPUs)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not update docs/benchmarks.md")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "TASK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.batches = args.batches or ([1, 8, 32] if args.device.startswith("cuda") else [1, 8])
    os.environ.setdefault("HF_HUB_CACHE", str(REPO / ".cache" / "fake-hub"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batches, args.device, args.threads, args.repeat, args.compile)))
        return 0

    started, load = time.perf_counter(), os.getloadavg()[0]
    rows = {}
    for task in args.tasks:
        rows[task] = {}
        for impl in IMPLS:  # TerraTorch first: a warm page cache never favours ours
            rows[task][impl] = _spawn(impl, task, args)
            print(f"  {task:5} {impl:10} " + "  ".join(f"b{b}: {s:.4f} s/tile" for b, s in
                                                        rows[task][impl]["s_per_tile"].items()), flush=True)
    auto = next(iter(rows.values()))["ours"]["auto"]
    clock = "wall s" if args.device.startswith("cuda") else f"CPU s, {args.threads} thread(s)"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{when}, `make bench` ({time.perf_counter() - started:.0f} s): {machine(args.device)}; {clock}; "
            f"load average {load:.1f} → {os.getloadavg()[0]:.1f}. Ours at defaults: precision {auto}.\n\n"
            + table(rows, args.batches, args.device))
    print("\n" + text)
    if not args.no_record:
        record(text)
        print(f"\nrecorded in {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
