"""Backbone embeddings per 224x224 tile: our TerraMind backbone vs TerraTorch 1.1.1, same run, same CPU.

Run with the parity venv (both implementations in one process, same weights from the fake hub):

    OMP_NUM_THREADS=2 .venv-terratorch/bin/python bench/bench_embeddings.py [--size tiny] [--repeats 10]

Both run in fp32 with ``torch.set_float32_matmul_precision("highest")``: importing TerraTorch sets
"medium" globally (its clay_v15 module does), which lets CPU matmuls drop to bf16 on AMX machines
and changes results by ~1e-2. The TerraTorch number under its own "medium" setting is printed too,
for information, next to ours with ``precision="bf16"`` (the comparable low-precision mode).
Output: a Markdown table (best wall ms per batch, tiles/s, ratios = TerraTorch time / ours by best
wall time, median wall time and median CPU time; then the two low-precision modes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend" / "src"))


def _once(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _race(fns, repeats: int):
    """Per function: best wall time, median wall time, median CPU time; runs interleaved.

    On a shared machine, other processes stretch wall times at random; interleaving makes that hit
    every contender alike, the minimum is the least disturbed run, and CPU time (with one thread:
    the cycles really spent) is the most stable measure of the work itself.
    """
    for fn in fns:
        fn()  # warm-up (allocations, oneDNN primitive caches)
    walls, cpus = [[] for _ in fns], [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            wall, cpu = _once(fn)
            walls[i].append(wall)
            cpus[i].append(cpu)
    return ([min(w) for w in walls], [statistics.median(w) for w in walls], [statistics.median(c) for c in cpus])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--modalities", default="S2L2A")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--hub", default=str(ROOT / ".cache" / "fake-hub"))
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_CACHE", a.hub)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from terratorch.registry import BACKBONE_REGISTRY

    from terramind_backend.models.vit import build_backbone

    mods = a.modalities.split(",")
    tt = BACKBONE_REGISTRY.build(f"terramind_v1_{a.size}", modalities=mods, pretrained=True).eval()
    ours = build_backbone(a.size, modalities=mods, pretrained=True)
    ours_bf16 = build_backbone(a.size, modalities=mods, pretrained=True, precision="bf16")
    channels = {m: ours.encoder_embeddings[ours.mod_name_mapping[m]].in_channels for m in mods}

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {a.size}, modalities {mods}")
    print("| batch | TerraTorch ms | ours ms | TerraTorch tiles/s | ours tiles/s | ratio (best wall) |"
          " ratio (median wall) | ratio (median CPU time) | TerraTorch 'medium' ms | ours bf16 ms | ratio bf16 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for batch in [int(b) for b in a.batches.split(",")]:
        gen = torch.Generator().manual_seed(batch)
        inputs = {m: torch.randn(batch, c, 224, 224, generator=gen) for m, c in channels.items()}
        def run_bf16():
            with torch.inference_mode():
                return ours_bf16(dict(inputs))

        torch.set_float32_matmul_precision("medium")
        with torch.no_grad():
            (t_medium, t_bf16), _, _ = _race([lambda: tt(dict(inputs)), run_bf16], max(3, a.repeats // 2))
        torch.set_float32_matmul_precision("highest")

        def run_tt():
            with torch.no_grad():  # TerraTorch as its users run it
                return tt(dict(inputs))

        def run_ours():
            with torch.inference_mode():
                return ours(dict(inputs))

        worst = max(((g - r).abs().max() / r.abs().max()).item() for g, r in zip(run_ours(), run_tt()))
        assert worst <= 1e-5, f"outputs differ: {worst:.2e} relative"
        (t_tt, t_ours), (m_tt, m_ours), (c_tt, c_ours) = _race([run_tt, run_ours], a.repeats)
        print(f"| {batch} | {t_tt * 1e3:.1f} | {t_ours * 1e3:.1f} | {batch / t_tt:.1f} | {batch / t_ours:.1f} | "
              f"{t_tt / t_ours:.2f}x | {m_tt / m_ours:.2f}x | {c_tt / c_ours:.2f}x | {t_medium * 1e3:.1f} | "
              f"{t_bf16 * 1e3:.1f} | {t_medium / t_bf16:.2f}x |")


if __name__ == "__main__":
    main()
