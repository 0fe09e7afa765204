"""The training loop: chips streamed from disk, AdamW, warm-up + cosine schedule, early stopping.

Every epoch draws its chip order, augmentations and torch seed from ``(seed, epoch)`` alone, so a
run is reproducible for a seed and device, and a resumed run (model, optimizer and schedule state
restored) continues exactly as the uninterrupted one would have. Chips are read window by window
through the scenes' aligned readers: memory holds one batch, whatever the scene size.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from ..engine.align import AlignedReader
from ..engine.errors import JobCancelled
from .labels import UNLABELLED
from .loss import segmentation_loss
from .metrics import confusion, scores
from .scenes import Prepared


class ChipReader:
    """Standardized inputs and class labels of one chip; every scene's files stay open for the run."""

    def __init__(self, prepared: Prepared, names: List[str], means: dict, stds: dict):
        spec = prepared.spec
        self.prepared, self.names, self.size = prepared, names, spec.training_options.chip_size
        self.table = prepared.table
        self.stats = {n: (np.asarray(means[n], np.float32)[:, None, None], np.asarray(stds[n], np.float32)[:, None, None])
                      for n in names}
        self.readers: Dict[int, Dict[str, AlignedReader]] = {}
        for scene in prepared.scenes:
            inputs = spec.training[scene.index].inputs
            self.readers[scene.index] = {m: AlignedReader(scene.layout.sources[m], inputs[m], scene.layout.grid)
                                         for m in names}

    def read(self, chip):
        window = chip.window(self.size)
        arrays, valid = {}, None
        for name, reader in self.readers[chip.scene].items():
            data, ok = reader.read(window)
            mean, std = self.stats[name]
            arrays[name] = (data - mean) / std
            valid = ok if valid is None else valid & ok
        for name in arrays:  # invalid pixels become 0 = the mean after standardization
            arrays[name][:, ~valid] = 0
        labels = self.prepared.scenes[chip.scene].labels.read_classes(window, self.table).astype(np.int64)
        labels[~valid] = UNLABELLED
        return arrays, labels

    def close(self) -> None:
        for readers in self.readers.values():
            for r in readers.values():
                r.close()


def augment(arrays: dict, labels: np.ndarray, rng: np.random.Generator):
    """A random 90° rotation and horizontal flip, the same for every modality and the labels."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))

    def t(a):
        a = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if flip else a)
    return {n: t(a) for n, a in arrays.items()}, t(labels)


def schedule(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to zero at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    val_miou: float
    val_accuracy: float
    lr: float
    seconds: float
    confusion: np.ndarray = field(repr=False)
    best: bool = False

    def record(self) -> dict:
        return {"epoch": self.epoch, "train_loss": round(self.train_loss, 6), "val_loss": round(self.val_loss, 6),
                "val_miou": round(self.val_miou, 6), "val_accuracy": round(self.val_accuracy, 6),
                "lr": float(f"{self.lr:.6g}"), "seconds": round(self.seconds, 3), "best": self.best}


class Trainer:
    def __init__(self, model, reader: ChipReader, prepared: Prepared, train_idx, val_idx, *, device: str,
                 class_weights: Optional[list], emit: Callable[[dict], None], cancel):
        self.model, self.reader, self.prepared = model.to(device), reader, prepared
        self.spec, self.opts = prepared.spec, prepared.spec.training_options
        self.train_idx, self.val_idx = list(train_idx), list(val_idx)
        self.device, self.emit, self.cancel = torch.device(device), emit, cancel
        self.num_classes = len(prepared.classes)
        self.weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32,
                                                                          device=self.device)
        self.micro = self.opts.batch_size  # chips per forward; halved on CUDA out-of-memory
        self.steps_per_epoch = math.ceil(len(self.train_idx) / self.opts.batch_size)
        self.total_steps = self.steps_per_epoch * self.opts.epochs
        self.bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        encoder_params = list(model.encoder.parameters())
        if self.opts.freeze_backbone:
            for p in encoder_params:
                p.requires_grad_(False)
        ids = {id(p) for p in encoder_params}
        head = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
        groups = [{"params": head, "lr": self.opts.lr}]
        if not self.opts.freeze_backbone:
            groups.append({"params": [p for p in encoder_params if p.requires_grad], "lr": self.opts.backbone_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=self.opts.weight_decay)
        warmup = self.steps_per_epoch if self.opts.epochs > 1 else 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: schedule(s, warmup, self.total_steps))
        self.history: List[EpochResult] = []
        self.start_epoch = 1
        self.best_epoch, self.best_miou, self.stale = 0, -1.0, 0

    # -- state for resume ---------------------------------------------------------------------------
    def trainable_state(self) -> dict:
        """Everything that changes in training (the frozen backbone is rebuilt from the official weights)."""
        frozen = self.opts.freeze_backbone
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
                if not (frozen and k.startswith("encoder."))}

    def state(self, fingerprint: str) -> dict:
        return {"fingerprint": fingerprint, "epoch": self.history[-1].epoch if self.history else 0,
                "model": self.trainable_state(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "micro": self.micro,
                "history": [dict(h.record(), confusion=h.confusion.tolist()) for h in self.history],
                "best_epoch": self.best_epoch, "best_miou": self.best_miou, "stale": self.stale}

    def restore(self, state: dict) -> None:
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        if unexpected or any(not (self.opts.freeze_backbone and k.startswith("encoder.")) for k in missing):
            raise ValueError("the resume state does not match this model")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.micro = int(state["micro"])
        for h in state["history"]:
            matrix = np.asarray(h.pop("confusion"), dtype=np.int64)
            self.history.append(EpochResult(h["epoch"], h["train_loss"], h["val_loss"], h["val_miou"],
                                            h["val_accuracy"], h["lr"], h["seconds"], matrix, h["best"]))
        self.best_epoch, self.best_miou, self.stale = state["best_epoch"], state["best_miou"], state["stale"]
        self.start_epoch = int(state["epoch"]) + 1

    # -- one batch ------------------------------------------------------------------------------------
    def _batch(self, indexes, rng: Optional[np.random.Generator]):
        xs, ys = [], []
        for k in indexes:
            arrays, labels = self.reader.read(self.prepared.chips[k])
            if rng is not None:
                arrays, labels = augment(arrays, labels, rng)
            xs.append(arrays)
            ys.append(labels)
        x = {n: torch.from_numpy(np.stack([a[n] for a in xs])).to(self.device) for n in self.reader.names}
        return x, torch.from_numpy(np.stack(ys)).to(self.device)

    def _forward(self, x: dict, drop: Optional[np.random.Generator] = None) -> torch.Tensor:
        if drop is not None and len(x) > 1 and self.opts.modality_drop_rate:
            # TerraTorch's modality drop: up to all but one input modality vanish for this batch
            names = list(x)
            for name in [names[i] for i in drop.permutation(len(names))[: len(names) - 1]]:
                if drop.random() < self.opts.modality_drop_rate:
                    x = {k: v for k, v in x.items() if k != name}
        model_input = next(iter(x.values())) if len(x) == 1 and len(self.reader.names) == 1 else x
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(model_input).float()

    def _loss(self, logits, y):
        return segmentation_loss(logits, y, self.weight, self.opts.dice)

    def _step(self, indexes, rng, drop) -> float:
        x, y = self._batch(indexes, rng)
        labelled = int((y >= 0).sum())
        while True:
            try:
                self.optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for s in range(0, len(indexes), self.micro):
                    xs = {n: v[s:s + self.micro] for n, v in x.items()}
                    ys = y[s:s + self.micro]
                    share = int((ys >= 0).sum()) / max(labelled, 1)
                    if share == 0:
                        continue
                    loss = self._loss(self._forward(xs, drop), ys) * share
                    loss.backward()
                    total += float(loss.detach())
                self.optimizer.step()
                self.scheduler.step()
                return total
            except torch.cuda.OutOfMemoryError:
                if self.micro == 1:
                    raise
                self.micro = max(1, self.micro // 2)
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                self.emit({"event": "log", "level": "warning",
                           "message": f"CUDA out of memory: continuing with {self.micro} chips per forward pass"})

    def validate(self):
        self.model.eval()
        matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        loss_sum, pixels = 0.0, 0
        with torch.no_grad():
            for s in range(0, len(self.val_idx), self.micro):
                self._check_cancel()
                x, y = self._batch(self.val_idx[s:s + self.micro], None)
                logits = self._forward(x)
                n = int((y >= 0).sum())
                if n:  # the training loss's definition, weighted by labelled pixels
                    loss_sum += float(self._loss(logits, y)) * n
                    pixels += n
                matrix += confusion(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), self.num_classes)
        return loss_sum / max(pixels, 1), matrix

    def _check_cancel(self):
        if self.cancel is not None and self.cancel.is_set():
            raise JobCancelled()

    # -- the run --------------------------------------------------------------------------------------
    def fit(self, on_epoch: Callable[[EpochResult], None]) -> str:
        """Train from ``start_epoch``; ``on_epoch`` gets each finished epoch. Returns why it stopped."""
        opts, seed = self.opts, self.spec.seed
        done = (self.start_epoch - 1) * self.steps_per_epoch
        t0, done0 = time.monotonic(), done
        for epoch in range(self.start_epoch, opts.epochs + 1):
            started = time.monotonic()
            torch.manual_seed(seed * 100_003 + epoch)
            rng = np.random.default_rng([seed, epoch])
            drop = np.random.default_rng([seed, epoch, 1])
            order = [self.train_idx[i] for i in rng.permutation(len(self.train_idx))]
            self.model.train()
            if opts.freeze_backbone:
                self.model.encoder.eval()
            losses = []
            for step in range(self.steps_per_epoch):
                self._check_cancel()
                batch = order[step * opts.batch_size:(step + 1) * opts.batch_size]
                losses.append(self._step(batch, rng if opts.augment else None, drop))
                done += 1
                rate = (time.monotonic() - t0) / (done - done0)
                self.emit(self._progress(done, rate * (self.total_steps - done), epoch, step + 1, losses[-1],
                                         f"epoch {epoch}/{opts.epochs}, step {step + 1}/{self.steps_per_epoch}, "
                                         f"loss {losses[-1]:.3f}"))
            val_loss, matrix = self.validate()
            s = scores(matrix)
            result = EpochResult(epoch, float(np.mean(losses)), val_loss, s["miou"], s["accuracy"],
                                 self.optimizer.param_groups[0]["lr"], time.monotonic() - started, matrix)
            if result.val_miou > self.best_miou:
                result.best, self.best_miou, self.best_epoch, self.stale = True, result.val_miou, epoch, 0
            else:
                self.stale += 1
            self.history.append(result)
            on_epoch(result)
            rate = (time.monotonic() - t0) / max(done - done0, 1)
            event = self._progress(done, rate * (self.total_steps - done), epoch, self.steps_per_epoch,
                                   result.train_loss, f"epoch {epoch}/{opts.epochs}: val mIoU {result.val_miou:.3f} "
                                                      f"(best {self.best_miou:.3f})")
            event["metrics"] = result.record()
            self.emit(event)
            if opts.early_stopping and self.stale >= opts.early_stopping and epoch < opts.epochs:
                return "early_stopping"
        return "completed"

    def _progress(self, done, eta, epoch, step, loss, message) -> dict:
        return {"event": "progress", "stage": "train", "done": done, "total": self.total_steps,
                "fraction": done / self.total_steps, "eta_s": round(eta, 1), "message": message, "epoch": epoch,
                "epochs": self.opts.epochs, "step": step, "steps": self.steps_per_epoch, "loss": round(loss, 6)}
