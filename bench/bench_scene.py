"""Whole-scene runs: peak RSS and time of the job engine for growing S2L2A scenes, vs TerraTorch's
`tiled_inference` (which holds the whole scene, and the whole output, in memory).

    OMP_NUM_THREADS=2 .venv-backend/bin/python bench/bench_scene.py [--sizes 1024,2048,4096]
        [--task embed|lulc] [--terratorch-sizes 1024] [--hub .cache/fake-hub]

Scenes are mirrored mosaics of a real TerraMesh S2L2A tile (../shared/data/terramesh-samples),
written as tiled GeoTIFFs. Every run is its own process, so its peak RSS (`ru_maxrss`) is that
run's alone. Ours: `terramind embed` (or `generate LULC`) with window 224, overlap 32, batch 8.
TerraTorch (in .venv-terratorch): the whole scene as one tensor through `tiled_inference` with
crop 224 / stride 192 and the same tiny model (TerraTorch's own modules); embeddings are repeated
to pixel resolution because `tiled_inference` blends per pixel; LULC blends class probabilities. Weights: random official-layout files from the fake
hub (same shapes and cost as the real ones). Output: a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "terramesh-samples" / "S2L2A" / "282D_485L_3_3.tif"

# One job through our engine, in its own process: argv[1] is the JobSpec as JSON. Prints one JSON line: the job's
# seconds, its windows, the tile phase's seconds and the peak RSS. bench_ray_scaling.py runs it too.
TIMED_JOB = r"""
import json, resource, sys, time
from terramind_backend.engine import run_job
spec = json.loads(sys.argv[1])
marks = {}

def emit(event):  # time the tile loop apart from model loading and the final COG conversion
    if event.get("stage") == "tiles":
        marks.setdefault("first", time.perf_counter())
        if event["done"] == event["total"]:
            marks["last"] = time.perf_counter()

t = time.perf_counter()
result = run_job(spec, emit=emit)
print(json.dumps({"s": time.perf_counter() - t, "tiles": result["tiles"], "tiles_s": marks["last"] - marks["first"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def job_spec(scene: Path, out: Path, task: str) -> dict:
    """Ours in this benchmark: tiny model, window 224, overlap 32, batch 8 (embed, or generate LULC)."""
    outputs = {"embeddings": str(out)} if task == "embed" else {"LULC": str(out)}
    return {"task": "embed" if task == "embed" else "generate", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": str(scene)}, "outputs": outputs, "device": "cpu", "timesteps": 1,
            "tiling": {"window": 224, "overlap": 32, "batch_size": 8}}


TERRATORCH = r"""
import json, resource, sys, time
import numpy as np, rasterio, torch
from terratorch.registry import BACKBONE_REGISTRY
from terratorch.tasks.tiled_inference import tiled_inference
torch.set_float32_matmul_precision("highest")
scene = sys.argv[1]
mean = torch.tensor([1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234, 3132.22,
                     3162.988, 2424.884, 1857.648])[None, :, None, None]
std = torch.tensor([2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918, 1753.829,
                    1797.379, 1434.261, 1334.311])[None, :, None, None]
model = BACKBONE_REGISTRY.build("terramind_v1_tiny", modalities=["S2L2A"], pretrained=True).eval()
t = time.perf_counter()
with rasterio.open(scene) as ds:
    x = torch.from_numpy(ds.read().astype(np.float32))[None]
x = (x - mean) / std

def forward(chips):
    tokens = model({"S2L2A": chips})[-1]                       # [B, 196, 192]
    b, n, d = tokens.shape
    s = int(n ** 0.5)
    grid = tokens.transpose(1, 2).reshape(b, d, s, s)
    return grid.repeat_interleave(16, 2).repeat_interleave(16, 3)  # per pixel, as tiled_inference blends

with torch.no_grad():
    y = tiled_inference(forward, x, crop=224, stride=192, batch_size=8)
print(json.dumps({"s": time.perf_counter() - t, "shape": list(y.shape),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

TERRATORCH_LULC = r"""
import json, resource, sys, time
import numpy as np, rasterio, torch
from terratorch.registry import FULL_MODEL_REGISTRY
from terratorch.tasks.tiled_inference import tiled_inference
torch.set_float32_matmul_precision("highest")
scene = sys.argv[1]
model = FULL_MODEL_REGISTRY.build("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC"],
                                  pretrained=True, standardize=True, timesteps=1).eval()
t = time.perf_counter()
with rasterio.open(scene) as ds:
    x = torch.from_numpy(ds.read().astype(np.float32))[None]

def forward(chips):
    return torch.softmax(model({"S2L2A": chips})["LULC"], dim=1)  # blend probabilities, as ours does

with torch.no_grad():
    y = tiled_inference(forward, x, crop=224, stride=192, batch_size=8)
classes = y.argmax(1)
print(json.dumps({"s": time.perf_counter() - t, "shape": list(y.shape),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_scene(path: Path, size: int) -> Path:
    """A size² mosaic of mirrored copies of the sample tile (seamless), written one row of tiles at a time."""
    import numpy as np
    import rasterio

    with rasterio.open(SAMPLE) as src:
        tile, profile = src.read(), src.profile
    reps = -(-size // tile.shape[1])
    profile.update(width=size, height=size, tiled=True, blockxsize=256, blockysize=256, interleave="pixel",
                   compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(reps):  # one row of tiles at a time: the builder stays small too
            row = [tile[:, ::-1] if i % 2 else tile for _ in range(reps)]
            row = np.concatenate([r[:, :, ::-1] if j % 2 else r for j, r in enumerate(row)], axis=2)[:, :, :size]
            rows = min(tile.shape[1], size - i * tile.shape[1])
            dst.write(row[:, :rows], window=((i * tile.shape[1], i * tile.shape[1] + rows), (0, size)))
    return path


def run(python: str, code: str, args, env) -> dict:
    proc = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1], "rc": proc.returncode,
                "stderr": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--task", choices=("embed", "lulc"), default="embed")
    ap.add_argument("--terratorch-sizes", default="1024", help="sizes also run through TerraTorch ('' = none)")
    ap.add_argument("--hub", default=str(ROOT / ".cache" / "fake-hub"))
    a = ap.parse_args()
    env = {**os.environ, "HF_HUB_CACHE": a.hub, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT / "backend" / "src")}
    env.setdefault("OMP_NUM_THREADS", "2")
    ours_py = str(ROOT / ".venv-backend" / "bin" / "python")
    tt_py = str(ROOT / ".venv-terratorch" / "bin" / "python")
    tt_sizes = {int(s) for s in a.terratorch_sizes.split(",") if s}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scene_") as tmp:
        for size in [int(s) for s in a.sizes.split(",")]:
            scene = Path(tmp) / f"s2_{size}.tif"
            make_scene(scene, size)
            spec = job_spec(scene, Path(tmp) / f"out_{size}.tif", a.task)
            ours = run(ours_py, TIMED_JOB, [json.dumps(spec)], env)
            tt_code = TERRATORCH if a.task == "embed" else TERRATORCH_LULC
            tt = run(tt_py, tt_code, [scene], env) if size in tt_sizes else None
            rows.append((size, ours, tt))
            print(f"# {size}: ours {ours} terratorch {tt}", file=sys.stderr, flush=True)
            scene.unlink()
    base = rows[0][1]
    print(f"task {a.task}, terramind_v1_tiny, CPU threads {env['OMP_NUM_THREADS']}, {time.strftime('%Y-%m-%d')}")
    print("| scene | windows | ours total s | ours tile loop s | tile loop s / Mpx | ours peak RSS MB | RSS vs first "
          "| TerraTorch s | TerraTorch peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, ours, tt in rows:
        mpx = size * size / 1e6
        if "error" in ours:
            print(f"| {size}² | – | failed: {ours['error']} | | | | | | |")
            continue
        rel = (ours["rss_mb"] / base["rss_mb"] - 1) * 100 if "rss_mb" in base else float("nan")
        tt_s = "–" if tt is None else (f"failed ({tt['error']})" if "error" in tt else f"{tt['s']:.1f}")
        tt_m = "–" if tt is None or "error" in tt else f"{tt['rss_mb']:.0f}"
        print(f"| {size}² | {ours['tiles']} | {ours['s']:.1f} | {ours['tiles_s']:.1f} | {ours['tiles_s'] / mpx:.2f} | "
              f"{ours['rss_mb']:.0f} | {rel:+.1f} % | {tt_s} | {tt_m} |")


if __name__ == "__main__":
    main()
