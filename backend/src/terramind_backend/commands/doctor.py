"""`terramind doctor`: what the backend runs on and which weights are already cached."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="report torch/device/GDAL versions, HF cache and cached weights")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..environment import describe

    info = describe(measure_precision=True)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"terramind backend {info['terramind_backend']}  (Python {info['python']}, {info['platform']})")
    print(f"torch           {info['torch']}  ({info['torch_threads']} CPU threads)")
    if info["cuda"]:
        for gpu in info["cuda"]:
            print(f"device          cuda:{gpu['index']} {gpu['name']} ({gpu['memory_gib']} GiB)")
    elif info["mps"]:
        print("device          mps (Apple Metal)")
    else:
        print("device          cpu (no CUDA GPU or Apple Metal found)")
    print(f"precision auto  {info['auto_precision']['summary']}")
    print(f"rasterio/GDAL   {info['rasterio']} / {info['gdal']}")
    print(f"HF hub          {info['huggingface_hub']}  cache: {info['hf_cache']}")
    print(f"offline mode    {'on' if info['hf_offline'] else 'off'}   HF token: {'set' if info['hf_token'] else 'not set'}")
    cache = info["model_cache"]
    budget = cache.get("problem") or f"{cache['budget_mb']:.0f} MB ({cache['budget_source']})"
    print(f"model cache     {budget}; models beyond it are unloaded, least recently used first")
    for repo_id in info["weights_without_commit"]:
        print(f"not pinned      {repo_id}: this build will not fetch or load it (see catalog.py)")
    cached = info["cached_weights"]
    print(f"cached weights  {len(cached)} file(s)")
    for c in cached:
        print(f"  {c['name']:<32} {c['size_mb']:>9.1f} MB  {c['repo_id']}/{c['filename']} @ {c['revision'][:12]}")
    return 0
