"""Find-similar on large embeddings rasters: time and peak RSS of the `similarity` job vs the direct way
(read the whole raster, numpy cosine over every patch), which is the only reference there is: TerraTorch
has no similarity search.

    OMP_NUM_THREADS=2 .venv-backend/bin/python bench/bench_similarity.py [--sizes 256,1024] [--features 192]

Rasters: N × N patches of random float32 features (192 = tiny's width; base 768), tiled 128 px, deflate, as
the embed task writes them. Every run is its own process, so its peak RSS (`ru_maxrss`) is its own. Ours:
one positive, one negative, threshold 0.3 with matching areas. Direct: `rasterio.read()` of everything,
the same score in float64. Output: a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATCH, ORIGIN = 160.0, (500000.0, 5300000.0)

WRITE = r"""
import sys, numpy as np, rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=d, dtype="float32", crs="EPSG:32633",
                   transform=from_origin(500000.0, 5300000.0, 160.0, 160.0), nodata=float("nan"), tiled=True,
                   blockxsize=128, blockysize=128, compress="deflate") as ds:
    for r in range(0, n, 128):
        h = min(128, n - r)
        ds.write(rng.normal(size=(d, h, n)).astype("float32"), window=Window(0, r, n, h))
    ds.update_tags(TERRAMIND_OUTPUT="embeddings")
"""

OURS = r"""
import json, resource, sys, time
from terramind_backend.engine import run_job
emb, out, areas = sys.argv[1:4]
spec = {"task": "similarity", "inputs": {"embeddings": emb}, "outputs": {"similarity": out, "areas": areas},
        "options": {"similarity": {"positives": [[500080.0, 5299920.0]], "negatives": [[500400.0, 5299600.0]],
                                   "threshold": 0.3}}}
t0 = time.perf_counter()
run_job(spec)
print(json.dumps({"s": time.perf_counter() - t0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DIRECT = r"""
import json, resource, sys, time
import numpy as np, rasterio
emb = sys.argv[1]
t0 = time.perf_counter()
with rasterio.open(emb) as ds:
    data = ds.read().astype(np.float64)
d = data.shape[0]
flat = data.reshape(d, -1)
unit = flat / np.linalg.norm(flat, axis=0)
p, n = unit[:, 0], unit[:, 2 * data.shape[2] + 2]
cos = p @ unit
sim = np.clip(np.where(n @ unit > cos, 0.0, cos), 0, 1)
print(json.dumps({"s": time.perf_counter() - t0, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict:
    python = str(ROOT / ".venv-backend" / "bin" / "python")
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="patches per side, comma-separated")
    parser.add_argument("--features", type=int, default=192)
    args = parser.parse_args()
    print(f"| patches | features | file MB | ours s | ours peak RSS MB | direct s | direct peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-similarity-") as work:
        for n in (int(s) for s in args.sizes.split(",")):
            emb = Path(work) / f"emb_{n}.tif"
            subprocess.run([str(ROOT / ".venv-backend" / "bin" / "python"), "-c", WRITE, str(emb), str(n),
                            str(args.features)], check=True)
            ours = run(OURS, str(emb), str(Path(work) / f"sim_{n}.tif"), str(Path(work) / f"areas_{n}.gpkg"))
            direct = run(DIRECT, str(emb))
            print(f"| {n}×{n} | {args.features} | {emb.stat().st_size / 2**20:.0f} | {ours['s']:.1f} | "
                  f"{ours['rss_mb']:.0f} | {direct['s']:.1f} | {direct['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
