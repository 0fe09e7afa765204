"""Tokenizer speed: our tokenizers vs TerraTorch 1.1.1's, same process, same weights, same inputs.

Run with the TerraTorch environment (both implementations import there):

    HF_HUB_CACHE=$PWD/.cache/fake-hub HF_HUB_OFFLINE=1 \\
        .venv-terratorch/bin/python bench/bench_tokenizers.py [--batches 1 8] [--steps 2] [--repeat 2]

Cases (224x224 tiles, 14x14 tokens):
- ``build``: constructing + loading the pretrained tokenizer (DEM DiVAE, LULC VQVAE).
- ``dem-decode``: DiVAE ``decode_tokens`` with ``--steps`` DDIM steps (the UNet dominates; the time per step
  is what generation at N steps pays N times).
- ``lulc-decode``: VQVAE ``decode_tokens`` (ViT-B decoder), ``s2l2a-encode``: ViT-B encoder + FSQ.
Decoders run ours in fp32 (the parity mode) and, as separate rows, in ``precision="bf16"``.
Runs alternate ours/TerraTorch and keep the best of ``--repeat``. Times are CPU seconds of the process
(``--clock cpu``, the default: with one thread this is the compute cost and is robust to other processes on a
shared machine) or wall seconds (``--clock wall``).
Both run in full float32 matmul precision (importing TerraTorch lowers it to bf16; we restore "highest").
Output: one line per case with seconds per tile, tiles/s and the ratio ours/TerraTorch (tiles/s), plus the
largest |Δ| between the two outputs. ``--json`` writes the rows to a file.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "backend" / "src"))


def _build_pair(key: str):
    from terratorch.registry import FULL_MODEL_REGISTRY

    from terramind_backend.models.tokenizers import build_tokenizer

    torch.set_float32_matmul_precision("highest")
    t0 = CLOCK()
    ref = FULL_MODEL_REGISTRY.build(f"terramind_v1_tokenizer_{key}", pretrained=True).eval()
    t_ref = CLOCK() - t0
    t0 = CLOCK()
    ours = build_tokenizer(key, pretrained=True)
    t_ours = CLOCK() - t0
    return ref, ours, t_ref, t_ours


CLOCK = time.process_time  # CPU seconds of this process; set by --clock


def _best(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = CLOCK()
        out = fn()
        best = min(best, CLOCK() - t0)
    return best, out


def _pairwise(ref_fn, ours_fn, repeat: int):
    """Alternate the two implementations; best time of each."""
    t_ref, t_ours, out_ref, out_ours = float("inf"), float("inf"), None, None
    for _ in range(repeat):
        t, out_ref = _best(ref_fn, 1)
        t_ref = min(t_ref, t)
        t, out_ours = _best(ours_fn, 1)
        t_ours = min(t_ours, t)
    return t_ref, t_ours, out_ref, out_ours


def _row(case: str, batch: int, t_ref: float, t_ours: float, delta=None, note: str = "") -> dict:
    row = dict(case=case, batch=batch, terratorch_s_per_tile=t_ref / batch, ours_s_per_tile=t_ours / batch,
               terratorch_tiles_per_s=batch / t_ref, ours_tiles_per_s=batch / t_ours, ratio=t_ref / t_ours,
               max_abs_diff=delta, note=note)
    print(f"{case:22s} B={batch:<2d} TerraTorch {t_ref / batch:8.3f} s/tile  ours {t_ours / batch:8.3f} s/tile  "
          f"ratio {t_ref / t_ours:5.2f}x" + (f"  max|Δ| {delta:.2e}" if delta is not None else "")
          + (f"  {note}" if note else ""), flush=True)
    return row


def bench(batches, steps: int, repeat: int) -> list:
    rows = []
    g = torch.Generator().manual_seed(0)
    tokens_dem = torch.randint(0, 15360, (max(batches), 14, 14), generator=g)
    tokens_lulc = torch.randint(0, 4375, (max(batches), 14, 14), generator=g)
    s2 = torch.randn(max(batches), 12, 224, 224, generator=g)

    ref, ours, t_ref, t_ours = _build_pair("dem")
    rows.append(_row("dem-build", 1, t_ref, t_ours))
    with torch.inference_mode():
        for b in batches:
            tok = tokens_dem[:b]
            t_ref, t_ours, a, o = _pairwise(
                lambda: ref.decode_tokens(tok, timesteps=steps, generator=torch.Generator().manual_seed(1),
                                          verbose=False),
                lambda: ours.decode_tokens(tok, timesteps=steps, generator=torch.Generator().manual_seed(1)),
                repeat)
            rows.append(_row(f"dem-decode-{steps}steps", b, t_ref, t_ours, (a - o).abs().max().item(), "fp32"))
            t_bf, o_bf = _best(lambda: ours.decode_tokens(tok, timesteps=steps, precision="bf16",
                                                          generator=torch.Generator().manual_seed(1)), repeat)
            rows.append(_row(f"dem-decode-{steps}steps", b, t_ref, t_bf, (a - o_bf).abs().max().item(),
                             "ours precision=bf16"))
    del ref, ours
    gc.collect()

    ref, ours, t_ref, t_ours = _build_pair("lulc")
    rows.append(_row("lulc-build", 1, t_ref, t_ours))
    with torch.inference_mode():
        for b in batches:
            tok = tokens_lulc[:b]
            t_ref, t_ours, a, o = _pairwise(lambda: ref.decode_tokens(tok), lambda: ours.decode_tokens(tok), repeat)
            rows.append(_row("lulc-decode", b, t_ref, t_ours, (a - o).abs().max().item(), "fp32"))
            t_bf, o_bf = _best(lambda: ours.decode_tokens(tok, precision="bf16"), repeat)
            agree = (a.argmax(1) == o_bf.argmax(1)).float().mean().item()
            rows.append(_row("lulc-decode", b, t_ref, t_bf, (a - o_bf).abs().max().item(),
                             f"ours precision=bf16, argmax agreement {agree:.4f}"))
    del ref, ours
    gc.collect()

    ref, ours, _, _ = _build_pair("s2l2a")
    with torch.inference_mode():
        for b in batches:
            x = s2[:b]
            t_ref, t_ours, a, o = _pairwise(lambda: ref.encode(x)[2], lambda: ours.encode(x)[2], repeat)
            rows.append(_row("s2l2a-encode", b, t_ref, t_ours, (a != o).float().mean().item(), "Δ = token mismatch rate"))
    del ref, ours
    gc.collect()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps per DiVAE decode")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {args.clock} seconds", flush=True)
    rows = bench(args.batches, args.steps, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
