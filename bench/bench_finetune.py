"""Fine-tuning throughput (training chips per second): our `finetune` trainer vs TerraTorch 1.1.1's
`SemanticSegmentationTask` fitted by Lightning, on the same chips, same CPU, same run.

Run with the parity venv (both implementations in one process, same fake-hub backbone weights):

    OMP_NUM_THREADS=2 .venv-terratorch/bin/python bench/bench_finetune.py [--epochs 2] [--chip 64] [--batch 8]

Both train `terramind_v1_tiny` (frozen backbone) + SelectIndices/ReshapeTokensToImage/
LearnedInterpolateToPyramidal + UNetDecoder [512, 256, 128, 64] + head, AdamW, batch `--batch`, on the
chips our `prepare`/`split_chips` cut from TerraMesh tiles with their LULC labels, and validate once per
epoch on the same validation chips. Ours is timed as the job runs it (`Trainer.fit`: chips read from
disk every step, flips/rot90, per-epoch metrics, checkpoint, report and resume state written); TerraTorch
gets the chips pre-read in memory and writes nothing (no checkpointing, no logger), so the ratio is
conservative for us. fp32 "highest" matmul precision for both (importing TerraTorch sets "medium").
Output: a Markdown table row (seconds, chips/s, ratio = ours chips/s ÷ TerraTorch chips/s).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend" / "src"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--chip", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--places", type=int, default=2, help="TerraMesh tiles to train on (1-5)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per side; the best time counts")
    ap.add_argument("--hub", default=str(ROOT / ".cache" / "fake-hub"))
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_CACHE", a.hub)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import lightning.pytorch as pl
    import numpy as np
    import torch
    from terratorch.tasks import SemanticSegmentationTask

    from terramind_backend.finetune import checkpoint as ckpt
    from terramind_backend.finetune.model import build_model, input_stats, model_args
    from terramind_backend.finetune.scenes import prepare
    from terramind_backend.finetune.spec import parse_finetune
    from terramind_backend.finetune.split import split_chips
    from terramind_backend.finetune.trainer import ChipReader, Trainer
    from tests.conftest import PLACES, sample

    torch.set_float32_matmul_precision("highest")
    out = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    spec = parse_finetune({
        "task": "finetune", "model": "terramind_v1_tiny", "device": "cpu", "seed": 0,
        "training": [{"inputs": {"S2L2A": str(sample("S2L2A", p))}, "labels": str(sample("LULC", p))}
                     for p in PLACES[:a.places]],
        "outputs": {"checkpoint": str(out / "model.ckpt")},
        "training_options": {"epochs": a.epochs, "chip_size": a.chip, "batch_size": a.batch, "block_size": 1,
                             "early_stopping": 0}})
    prepared = prepare(spec)
    args = model_args(spec, len(prepared.classes))
    names, means, stds = input_stats(args)
    train_idx, val_idx = split_chips(prepared.chips, a.chip, 1, 0.2, 0)
    reader = ChipReader(prepared, names, means, stds)

    # --- ours: the job's trainer, files written each epoch as in a real run
    def ours() -> float:
        torch.manual_seed(0)
        model = build_model(args)
        trainer = Trainer(model, reader, prepared, train_idx, val_idx, device="cpu", class_weights=None,
                          emit=lambda e: None, cancel=None)

        def on_epoch(result):
            if result.best:
                ckpt.save_torch(spec.checkpoint, ckpt.lightning_checkpoint(
                    model, args, prepared.classes, means, stds, label_values=prepared.label_values,
                    epoch=result.epoch, step=0, lr=1e-4, weight_decay=0.05, freeze_backbone=True, dice=False,
                    class_weights=None))
            ckpt.save_torch(spec.sidecar("state.pt"), trainer.state("bench"))
        t0 = time.perf_counter()
        trainer.fit(on_epoch)
        return time.perf_counter() - t0

    # --- TerraTorch: the same model_args (pretrained backbone from the same hub), chips pre-read
    def items(idx):
        out = []
        for k in idx:
            x, y = reader.read(prepared.chips[k])
            out.append({"image": torch.from_numpy(x["S2L2A"]), "mask": torch.from_numpy(y)})
        return out

    train_items, val_items = items(train_idx), items(val_idx)

    class Chips(pl.LightningDataModule):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(train_items, batch_size=a.batch, shuffle=True)

        def val_dataloader(self):
            return torch.utils.data.DataLoader(val_items, batch_size=a.batch)

    def terratorch() -> float:
        torch.manual_seed(0)
        task = SemanticSegmentationTask(model_args=dict(args, backbone_pretrained=True),
                                        model_factory="EncoderDecoderFactory", loss="ce", ignore_index=-1, lr=1e-4,
                                        optimizer="AdamW", freeze_backbone=True,
                                        class_names=[c.name for c in prepared.classes], plot_on_val=False)
        fit = pl.Trainer(max_epochs=a.epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        torch.set_float32_matmul_precision("highest")
        t0 = time.perf_counter()
        fit.fit(task, datamodule=Chips())
        return time.perf_counter() - t0

    times = {"ours": [], "tt": []}
    for _ in range(a.repeats):  # interleaved: machine load hits both sides alike
        times["tt"].append(terratorch())
        times["ours"].append(ours())
    ours_s, tt_s = min(times["ours"]), min(times["tt"])
    reader.close()
    prepared.close()

    chips = len(train_idx) * a.epochs
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(train_idx)} train / {len(val_idx)} val "
          f"chips of {a.chip} px, batch {a.batch}, {a.epochs} epochs")
    print("| TerraTorch s | ours s | TerraTorch chips/s | ours chips/s | ratio (ours ÷ TerraTorch) |")
    print("|---|---|---|---|---|")
    print(f"| {tt_s:.1f} | {ours_s:.1f} | {chips / tt_s:.2f} | {chips / ours_s:.2f} | {tt_s / ours_s:.2f}× |")


if __name__ == "__main__":
    main()
