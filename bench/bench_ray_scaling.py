"""Scaling of the Ray executor from 1 to 2 workers on this machine, beside the local executor.

    unshare -n bash -c 'ip link set lo up && .venv-backend/bin/python bench/bench_ray_scaling.py \
        [--reps 4] [--task embed|lulc] [--hub .cache/fake-hub]'

(`unshare -n`: a private network namespace, so the local Ray instance binds only loopback.)
The scene is a reps·224 px square mosaic of a real TerraMesh S2L2A tile; the job is the tiny
TerraMind (random official-layout weights from the fake hub, same cost as the real ones), fp32,
window 224, overlap 32, batch 2. Each run is its own process: the local executor with one torch
thread (what one Ray worker gets), then `executor: ray` with 1 and with 2 workers of 1 CPU each
(a local Ray instance per run). Timed: the tile phase, from the first to the last tile progress
event (model loading and the COG conversion excluded, as in bench_scene.py). Output: a Markdown
table with tiles/s and the scaling efficiency = (tiles/s with 2 workers) / (2 × tiles/s with 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scene import TIMED_JOB, make_scene, run as run_timed  # noqa: E402 (the scene and the timed job: one place)


def run(spec: dict, env: dict) -> dict:
    result = run_timed(sys.executable, TIMED_JOB, [json.dumps(spec)], env)
    if "error" in result:
        raise SystemExit(result["stderr"] or f"job failed (exit {result['rc']})")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4, help="scene = reps·224 px square (default 4: 896²)")
    ap.add_argument("--task", choices=("embed", "lulc"), default="embed")
    ap.add_argument("--hub", default=str(ROOT / ".cache" / "fake-hub"))
    args = ap.parse_args()

    env = dict(os.environ, HF_HUB_CACHE=args.hub, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               RAY_DISABLE_USAGE_STATS="1")
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp) / "s2.tif", args.reps * 224)
        out = {"embeddings": str(Path(tmp) / "emb.tif")} if args.task == "embed" else {"LULC": str(Path(tmp) / "l.tif")}
        spec = {"task": "embed" if args.task == "embed" else "generate", "model": "terramind_v1_tiny",
                "inputs": {"S2L2A": str(scene)}, "outputs": out, "device": "cpu",
                "options": {"precision": "fp32"}, "tiling": {"window": 224, "overlap": 32, "batch_size": 2}}
        rows = [("local executor, 1 thread", run(spec, env))]
        for workers in (1, 2):
            ray_spec = {**spec, "executor": {"kind": "ray", "workers": workers, "block_batches": 1}}
            rows.append((f"ray, {workers} worker{'s' * (workers > 1)} × 1 CPU", run(ray_spec, env)))
    print(f"| run ({args.reps * 224}² {args.task}, {rows[0][1]['tiles']} windows) | job s | tile phase s | tiles/s |")
    print("|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['s']:.1f} | {r['tiles_s']:.1f} | {r['tiles'] / r['tiles_s']:.2f} |")
    rate = [r["tiles"] / r["tiles_s"] for _, r in rows]
    print(f"\nscaling efficiency 1 → 2 workers: {rate[2] / (2 * rate[1]):.2f} "
          f"(2 workers / 1 worker = {rate[2] / rate[1]:.2f}×; ray 1 worker / local = {rate[1] / rate[0]:.2f})")


if __name__ == "__main__":
    main()
