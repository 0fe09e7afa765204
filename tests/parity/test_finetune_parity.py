"""finetune (#14) acceptance against TerraTorch 1.1.1: `terramind finetune` (the backend's own venv) trains on a
TerraMesh tile with its real LULC labels; the training loss falls, the metrics file is written, TerraTorch opens
the checkpoint with `SemanticSegmentationTask.load_from_checkpoint` (strict state dict) and its prediction on the
tile equals the classes our `segment` task writes (>= 99.9 % of pixels, fp32). CI keeps it small (training on the
tile's 128 px corner, 4 epochs, 32 px chips; prediction on the whole tile); docs/finetune.md records a 12-epoch run.
The same holds for a CE + Dice run with balanced class weights, whose checkpoint also makes TerraTorch compute our
training loss (test_finetune_loss_parity.py compares the losses and their gradients case by case)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FAKE_HUB, PLACES, REPO, sample

rasterio = pytest.importorskip("rasterio")
BACKEND = REPO / ".venv-backend" / "bin" / "python"


pytestmark = pytest.mark.usefixtures("true_fp32")   # tests/parity/conftest.py


def _backend(*args, timeout=900):
    if not BACKEND.exists():
        pytest.skip(".venv-backend not built")
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    env = {**os.environ, "HF_HUB_CACHE": str(FAKE_HUB), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    run = subprocess.run([str(BACKEND), "-m", "terramind_backend", *args], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _terratorch_task(ckpt: Path):
    from terratorch.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask.load_from_checkpoint(str(ckpt), map_location="cpu")  # strict state dict
    torch.set_float32_matmul_precision("highest")  # TerraTorch's import lowered it again
    return task.eval()


def _standardized(ckpt: Path, s2: Path) -> torch.Tensor:
    raw = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    means = torch.tensor(raw["datamodule_hyper_parameters"]["means"]["S2L2A"]).view(-1, 1, 1)
    stds = torch.tensor(raw["datamodule_hyper_parameters"]["stds"]["S2L2A"]).view(-1, 1, 1)
    with rasterio.open(s2) as ds:
        return ((torch.from_numpy(ds.read().astype("float32")) - means) / stds)[None]


def _terratorch_classes(task, ckpt: Path, s2: Path) -> np.ndarray:
    with torch.no_grad():
        (classes, kind), _ = task.predict_step({"image": _standardized(ckpt, s2)}, 0)
    assert kind == "pred"
    return classes[0].numpy()


def _corner(src: Path, dst: Path, size: int = 128) -> Path:
    from rasterio.windows import Window

    with rasterio.open(src) as ds:
        win = Window(0, 0, size, size)
        profile = dict(ds.profile, width=size, height=size, transform=ds.window_transform(win))
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=win))
    return dst


def _finetune_corner(tmp_path: Path, s2: Path, lulc: Path, *options: str):
    """`terramind finetune` on the tile's 128 px corner with the CI settings; the checkpoint and its metrics."""
    ckpt = tmp_path / "model.ckpt"
    train_s2, train_lulc = _corner(s2, tmp_path / "s2.tif"), _corner(lulc, tmp_path / "lulc.tif")
    run = _backend("finetune", "--model", "terramind_v1_tiny", "--in", f"S2L2A={train_s2}", "--labels", str(train_lulc),
                   "--out", str(ckpt), "--epochs", "4", "--chip", "32", "--batch", "4", "--lr", "2e-3",
                   "--device", "cpu", "--seed", "1", "--json-progress", *options)
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["epochs_run"] == 4

    metrics = json.loads(Path(f"{ckpt}.metrics.json").read_text())
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0], losses
    with rasterio.open(train_lulc) as ds:
        codes = sorted(set(np.unique(ds.read(1)).tolist()) - {0})
    assert [c["label"] for c in metrics["classes"]] == codes and len(codes) >= 3  # 0 = unlabelled
    return ckpt, metrics


def _terratorch_predicts_our_segment_classes(tmp_path: Path, ckpt: Path, s2: Path, metrics: dict):
    """Our `segment` on the whole tile and TerraTorch's prediction from the strictly loaded checkpoint agree;
    returns TerraTorch's task."""
    out = tmp_path / "classes.tif"
    job = {"version": 1, "task": "segment", "inputs": {"S2L2A": {"path": str(s2)}}, "outputs": {"classes": str(out)},
           "device": "cpu", "tiling": {"window": 224, "overlap": 0, "batch_size": 1},
           "options": {"checkpoint": str(ckpt)}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    _backend("run", "--quiet", str(tmp_path / "job.json"))
    with rasterio.open(out) as ds:
        ours = ds.read(1)
        assert ds.tags()["CLASS_NAMES"].split(",") == [c["name"] for c in metrics["classes"]]

    task = _terratorch_task(ckpt)
    theirs = _terratorch_classes(task, ckpt, s2)
    agree = float((ours == theirs).mean())
    assert agree >= 0.999, f"{agree:.5f} of pixels agree with TerraTorch"
    assert len(np.unique(theirs)) >= 2  # a trained model, not a constant map
    return task


def test_finetune_checkpoint_opens_in_terratorch_and_predicts_our_segment_classes(tmp_path):
    place = PLACES[2]
    s2, lulc = sample("S2L2A", place), sample("LULC", place)
    ckpt, metrics = _finetune_corner(tmp_path, s2, lulc)
    assert {"per_class", "confusion_matrix", "label_pixels", "split"} <= set(metrics)
    _terratorch_predicts_our_segment_classes(tmp_path, ckpt, s2, metrics)


def test_dice_finetune_with_class_weights_opens_in_terratorch_which_computes_our_training_loss(tmp_path):
    """`--dice --class-weights balanced`: TerraTorch rebuilds CE + Dice (its CombinedLoss of CrossEntropyLoss and
    segmentation_models_pytorch's DiceLoss) from the hyper-parameters, loads the criterion's tensors strictly,
    predicts our classes, and its criterion gives our training loss on the same logits and labels."""
    from segmentation_models_pytorch.losses import DiceLoss
    from terratorch.tasks.loss_handler import CombinedLoss

    from terramind_backend.finetune.loss import IGNORE_INDEX, segmentation_loss

    place = PLACES[2]
    s2, lulc = sample("S2L2A", place), sample("LULC", place)
    ckpt, metrics = _finetune_corner(tmp_path, s2, lulc, "--dice", "--class-weights", "balanced")
    task = _terratorch_predicts_our_segment_classes(tmp_path, ckpt, s2, metrics)

    weights = torch.load(str(ckpt), map_location="cpu", weights_only=True)["hyper_parameters"]["class_weights"]
    assert len(weights) == len(metrics["classes"]) and len(set(weights)) > 1  # balanced: not all equal
    criterion = task.criterion
    assert isinstance(criterion, CombinedLoss) and isinstance(criterion.losses["dice"], DiceLoss)
    assert criterion.losses["ce"].weight.tolist() == pytest.approx(weights)

    with rasterio.open(lulc) as ds:
        codes = ds.read(1)
    y = np.full(codes.shape, IGNORE_INDEX, dtype=np.int64)
    for index, c in enumerate(metrics["classes"]):
        y[codes == c["label"]] = index
    y = torch.from_numpy(y)[None]
    with torch.no_grad():
        logits = task.model(_standardized(ckpt, s2)).output
        theirs = float(criterion(logits, y)["loss"])
        ours = float(segmentation_loss(logits, y, torch.tensor(weights), dice=True))
    assert ours == pytest.approx(theirs, abs=1e-5)


@pytest.mark.slow
def test_tim_finetune_checkpoint_loads_strictly_in_terratorch(tmp_path, monkeypatch):
    """A TiM run (the backbone imagines LULC): TerraTorch's TiM holds that LULC tokenizer too, so the checkpoint
    carries its tensors; TerraTorch loads the file strictly and our segment still runs it."""
    from terratorch.tasks import SemanticSegmentationTask

    from terramind_backend.engine import run_job

    monkeypatch.setenv("HF_HUB_CACHE", str(FAKE_HUB))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    place = PLACES[2]
    s2, lulc = _corner(sample("S2L2A", place), tmp_path / "s2.tif", 64), _corner(sample("LULC", place),
                                                                                   tmp_path / "lulc.tif", 64)
    ckpt = tmp_path / "tim.ckpt"
    run_job({"task": "finetune", "model": "terramind_v1_tiny_tim", "device": "cpu", "options": {"tim_modalities": ["LULC"]},
             "training": [{"inputs": {"S2L2A": str(s2)}, "labels": str(lulc)}], "outputs": {"checkpoint": str(ckpt)},
             "training_options": {"epochs": 1, "chip_size": 32, "batch_size": 2, "block_size": 1,
                                  "decoder": "FCNDecoder", "decoder_channels": 16, "min_labelled_pixels": 100}})
    raw = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    assert any(k.startswith("model.encoder.tokenizer.tok_lulc@224.") for k in raw["state_dict"])
    task = SemanticSegmentationTask.load_from_checkpoint(str(ckpt), map_location="cpu")  # strict
    torch.set_float32_matmul_precision("highest")
    assert task.hparams["model_args"]["backbone"] == "terramind_v1_tiny_tim"
    out = tmp_path / "classes.tif"
    run_job({"task": "segment", "inputs": {"S2L2A": str(s2)}, "outputs": {"classes": str(out)}, "device": "cpu",
             "options": {"checkpoint": str(ckpt)}})
    assert out.is_file()
