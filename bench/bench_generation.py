"""Generation speed: our backend vs TerraTorch 1.1.1 on the same CPU, same inputs, same steps.

Run with the TerraTorch environment (both implementations are importable there):

    HF_HUB_CACHE=$PWD/.cache/fake-hub HF_HUB_OFFLINE=1 \\
        .venv-terratorch/bin/python bench/bench_generation.py [--batches 1 8] [--tasks lulc dem] [--repeat 1]

For every (task, batch) each implementation runs in its own fresh subprocess, so the reported peak RSS
(``ru_maxrss``) is that implementation's alone: model load + one warm-up + ``--repeat`` timed runs (best
kept). Times are CPU seconds of the process (``--clock cpu``, default; with ``--threads 1`` that is the
compute cost and holds on a shared, busy machine) or wall seconds (``--clock wall``).
``--bf16`` adds a run of ours with ``precision="bf16"`` (transformer and tokenizer decoders in bf16, inverse-CDF token draws: the AMX/GPU fast
path; not TerraTorch's arithmetic, so it is reported separately from the fp32 ratio).
Tasks (tiny model, 224x224 S2L2A tiles, standardized, TerraTorch's default sampling: top_p 0.8, T 1):

- ``lulc``: S2L2A -> LULC (token generation + LULC ViT decoder)
- ``dem``:  S2L2A -> DEM at ``--timesteps`` DDIM steps (token generation + diffusion decoder)

Reported: seconds per tile and tiles/s per implementation, the ratio ours/TerraTorch in tiles/s, peak RSS.
Weights come from the HF cache (the fake hub's random weights have the official shapes, so timings hold).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"lulc": "LULC", "dem": "DEM"}


def _build(impl: str, task: str, timesteps: int):
    import torch

    kwargs = dict(modalities=["S2L2A"], output_modalities=[OUTPUTS[task]], pretrained=True, timesteps=timesteps,
                  standardize=True)
    if impl.startswith("ours"):
        sys.path.insert(0, str(REPO / "backend" / "src"))
        from terramind_backend.models import build_model

        precision = "bf16" if impl == "ours-bf16" else "fp32"
        return build_model("terramind_v1_tiny_generate", precision=precision, **kwargs)
    from terratorch.registry import FULL_MODEL_REGISTRY

    if impl != "terratorch-default":
        # TerraTorch's import lowers it to "medium" (bf16 matmuls on AMX CPUs); "terratorch" compares full fp32,
        # "terratorch-default" keeps what TerraTorch users get.
        torch.set_float32_matmul_precision("highest")
    return FULL_MODEL_REGISTRY.build("terramind_v1_tiny_generate", **kwargs).eval()


def worker(impl: str, task: str, batch: int, timesteps: int, repeat: int, threads: int, clock: str,
           warmup: int = 1) -> dict:
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = _build(impl, task, timesteps)
    load_s = time.perf_counter() - t0
    x = 1000 + torch.rand(batch, 12, 224, 224, generator=torch.Generator().manual_seed(0)) * 3000

    def run():
        random.seed(0)
        with torch.no_grad():
            return model({"S2L2A": x})
    for _ in range(warmup):  # allocator, oneDNN primitives, cached position grids
        run()
    timer = time.process_time if clock == "cpu" else time.perf_counter
    times, walls = [], []
    for _ in range(repeat):
        t, w = timer(), time.perf_counter()
        out = run()
        times.append(timer() - t)
        walls.append(time.perf_counter() - w)
    assert out[OUTPUTS[task]].shape[0] == batch
    best = min(times)
    return {"impl": impl, "task": task, "batch": batch, "timesteps": timesteps, "threads": threads,
            "clock": clock, "load_s": round(load_s, 2), "times_s": [round(t, 3) for t in times],
            "wall_s": [round(t, 3) for t in walls], "s_per_tile": best / batch,
            "tiles_per_s": batch / best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spawn(impl, task, batch, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, task, str(batch), "--timesteps", str(args.timesteps),
           "--repeat", str(args.repeat), "--threads", str(args.threads), "--clock", args.clock,
           "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode:
        raise RuntimeError(f"{impl} {task} b{batch} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["lulc", "dem"], choices=sorted(OUTPUTS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--timesteps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs after one warm-up (best is reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="also run ours with precision='bf16' (what precision='auto' picks on AMX CPUs and GPUs)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    parser.add_argument("--impls", nargs="+", choices=("terratorch", "terratorch-default", "ours", "ours-bf16"),
                        help="run only these (default: terratorch, ours [, ours-bf16 with --bf16])")
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "TASK", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, task, batch = args.worker
        print(json.dumps(worker(impl, task, int(batch), args.timesteps, args.repeat, args.threads, args.clock,
                                args.warmup)))
        return 0

    results = []
    print(f"threads={args.threads} clock={args.clock} timesteps={args.timesteps} repeat={args.repeat} "
          f"HF_HUB_CACHE={os.environ.get('HF_HUB_CACHE', '(default)')}")
    print(f"{'task':5} {'batch':>5} {'impl':>10} {'s/tile':>8} {'tiles/s':>8} {'peak RSS MB':>11}  runs (s), wall (s)")
    for task in args.tasks:
        for batch in args.batches:
            pair = {}
            impls = args.impls or ["terratorch", "ours"] + (["ours-bf16"] if args.bf16 else [])
            for impl in impls:  # TerraTorch first: the ratio never favours a warm page cache
                r = _spawn(impl, task, batch, args)
                pair[impl] = r
                results.append(r)
                print(f"{task:5} {batch:5d} {impl:>10} {r['s_per_tile']:8.3f} {r['tiles_per_s']:8.3f} "
                      f"{r['peak_rss_mb']:11.0f}  {r['times_s']}, {r['wall_s']}", flush=True)
            for base in [b for b in ("terratorch", "terratorch-default") if b in pair]:
                for impl in [i for i in impls if not i.startswith("terratorch")]:
                    ratio = pair[impl]["tiles_per_s"] / pair[base]["tiles_per_s"]
                    print(f"{task:5} {batch:5d} {'ratio':>10} {impl}/{base} tiles/s = {ratio:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
