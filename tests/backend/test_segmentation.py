"""Fine-tuned segmentation in the backend: checkpoint reading, refusals, classes, and a segment job."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


from tests.conftest import PLACES, sample  # noqa: E402
from terramind_backend.models.segmentation import (CheckpointError, ClassTableError,  # noqa: E402
                                                   UnsupportedCheckpointError, describe_checkpoint,
                                                   parse_model_args, read_checkpoint)

UNET_ARGS = dict(backbone="terramind_v1_tiny", backbone_pretrained=True, backbone_modalities=["S2L2A"],
                 necks=[{"name": "SelectIndices", "indices": [2, 5, 8, 11]},
                        {"name": "ReshapeTokensToImage", "remove_cls_token": False},
                        {"name": "LearnedInterpolateToPyramidal"}],
                 decoder="UNetDecoder", decoder_channels=[32, 16, 16, 8], num_classes=3)


def _save(path: Path, state: dict, **hparams) -> Path:
    """A Lightning-like checkpoint: prefixed state dict plus plain hyper-parameters."""
    torch.save({"epoch": 0, "global_step": 2, "pytorch-lightning_version": "2.5.1",
                "state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": {"model_factory": "EncoderDecoderFactory", "task": "segmentation", **hparams}},
               str(path))
    return path


def _tiny_state() -> dict:
    return {"head.head.2.weight": torch.zeros(3, 8, 1, 1)}


@pytest.mark.parametrize("change, part, named", [
    ({"backbone": "prithvi_eo_v2_300"}, "backbone", "prithvi_eo_v2_300"),
    ({"decoder": "ASPPSegmentationHead"}, "decoder", "ASPPSegmentationHead"),
    ({"necks": [{"name": "FeaturePyramidNetworkNeck"}]}, "neck", "FeaturePyramidNetworkNeck"),
    ({"peft_config": {"method": "LORA"}}, "peft_config", "PEFT"),
    ({"num_classes": None}, "task", "num_classes"),
    ({"backbone_use_temporal": True}, "backbone", "TemporalWrapper"),
    ({"head_activation": "relu"}, "head", "head_activation"),
    ({"mystery_option": 1}, "model_args", "mystery_option"),
])
def test_unsupported_parts_are_refused_by_name(change, part, named):
    args = {**UNET_ARGS, **change}
    with pytest.raises(UnsupportedCheckpointError) as err:
        parse_model_args(args)
    assert err.value.part == part
    assert named in str(err.value)


def test_terratorch_prefixed_names_and_routing():
    config = parse_model_args({**UNET_ARGS, "decoder": "terratorch_UNetDecoder", "head_dropout": 0.1,
                               "backbone_ckpt_path": "/nowhere.pt"})
    assert config.decoder == "UNetDecoder" and config.head_kwargs == {"dropout": 0.1}
    assert config.decoder_kwargs == {"channels": [32, 16, 16, 8]}
    assert config.backbone_kwargs == {"modalities": ["S2L2A"]}  # pretrained/ckpt_path never reach the builder
    assert "backbone_pretrained" in config.ignored


def test_other_factories_and_tasks_are_refused(tmp_path):
    path = _save(tmp_path / "smp.ckpt", _tiny_state(), model_args=UNET_ARGS)
    raw = torch.load(str(path), weights_only=True)
    raw["hyper_parameters"]["model_factory"] = "SMPModelFactory"
    torch.save(raw, str(path))
    with pytest.raises(UnsupportedCheckpointError, match="SMPModelFactory"):
        read_checkpoint(path)
    raw["hyper_parameters"].update(model_factory="EncoderDecoderFactory", task="regression")
    torch.save(raw, str(path))
    with pytest.raises(UnsupportedCheckpointError, match="regression"):
        read_checkpoint(path)


class _Hook:
    """Unpickling this would flip ``ran`` (it must never happen)."""
    ran = False

    def __setstate__(self, state):
        type(self).ran = True


def test_python_objects_in_hparams_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": _tiny_state(), "hyper_parameters": {"model_args": UNET_ARGS, "aux": _Hook()}},
               str(path))
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "weights_only" in message and "never unpickles" in message and "torch.save" in message
    assert "_Hook" in message  # names the offending object
    assert not _Hook.ran


def test_missing_file_and_missing_model_args(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(junk)
    bare = tmp_path / "bare.pt"
    torch.save(_tiny_state(), str(bare))
    with pytest.raises(CheckpointError, match="config"):
        read_checkpoint(bare)


def test_classes_from_checkpoint_default_and_sidecar(tmp_path):
    path = _save(tmp_path / "m.ckpt", _tiny_state(), model_args=UNET_ARGS)
    _, info = read_checkpoint(path)
    assert info.class_source == "default" and [c.name for c in info.classes] == ["class 0", "class 1", "class 2"]
    assert len({c.color for c in info.classes}) == 3

    path = _save(tmp_path / "m.ckpt", _tiny_state(), model_args=UNET_ARGS, class_names=["land", "water", "cloud"])
    _, info = read_checkpoint(path)
    assert info.class_source == "checkpoint" and [c.name for c in info.classes] == ["land", "water", "cloud"]

    sidecar = tmp_path / "m.ckpt.classes.json"
    sidecar.write_text(json.dumps({"classes": [{"value": 1, "name": "Flood", "color": "#0000ff"},
                                               {"value": 2, "color": [255, 255, 255]}]}))
    described = describe_checkpoint(path)
    assert described["class_source"] == "sidecar" and described["sidecar_exists"]
    assert [(c["name"], c["color"]) for c in described["classes"]] == [
        ("class 0", described["classes"][0]["color"]), ("Flood", "#0000FF"), ("class 2", "#FFFFFF")]

    sidecar.write_text(json.dumps({"classes": [{"value": 7, "name": "beyond"}]}))
    with pytest.raises(ClassTableError, match="outside 0..2"):
        read_checkpoint(path)


def test_expected_inputs_from_bands_and_pretraining_stats(tmp_path):
    from terramind_backend.models.modalities import PRETRAINING_MEAN

    args = {**UNET_ARGS, "backbone_modalities": ["S2L2A", "S1GRD"],
            "backbone_bands": {"S2L2A": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]}}
    path = _save(tmp_path / "multi.ckpt", _tiny_state(), model_args=args)
    _, info = read_checkpoint(path)
    s2, s1 = info.inputs
    assert (s2.modality, s2.num_bands, s2.stats_source) == ("S2L2A", 6, "pretraining")
    full = PRETRAINING_MEAN["untok_sen2l2a@224"]
    assert s2.mean == [full[1], full[2], full[3], full[8], full[10], full[11]]
    assert (s1.modality, s1.num_bands, s1.mean) == ("S1GRD", 2, PRETRAINING_MEAN["untok_sen1grd@224"])


def test_state_dict_with_config_yaml_beside(tmp_path):
    import yaml

    weights = tmp_path / "weights.pt"
    torch.save(_tiny_state(), str(weights))
    config = {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                        "init_args": {"model_args": UNET_ARGS, "model_factory": "EncoderDecoderFactory",
                                      "class_names": ["a", "b", "c"]}},
              "data": {"init_args": {"means": {"S2L2A": [1.0] * 12}, "stds": {"S2L2A": [2.0] * 12}}}}
    (tmp_path / "weights.yaml").write_text(yaml.safe_dump(config))
    _, info = read_checkpoint(weights)
    assert info.config_path.name == "weights.yaml" and info.class_source == "config"
    assert info.inputs[0].mean == [1.0] * 12 and info.inputs[0].stats_source == "config"

    config["model"]["class_path"] = "terratorch.tasks.PixelwiseRegressionTask"
    (tmp_path / "weights.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UnsupportedCheckpointError, match="PixelwiseRegressionTask"):
        read_checkpoint(weights)


# --- with the real backbone: state-dict round trip and a segment job ----------------------------------

def _random_checkpoint(tmp_path: Path) -> Path:
    from terramind_backend.models.segmentation import build_segmentation_model

    torch.manual_seed(0)
    model = build_segmentation_model(UNET_ARGS)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return _save(tmp_path / "seg.ckpt", model.state_dict(), model_args=UNET_ARGS,
                 class_names=["Other", "Water", "Trees"])


def test_checkpoint_round_trip_and_tensor_mismatch(tmp_path):
    from terramind_backend.models.segmentation import load_segmentation_checkpoint

    path = _random_checkpoint(tmp_path)
    loaded = load_segmentation_checkpoint(path)
    assert not loaded.model.training
    assert loaded.model.encoder.reference_arithmetic  # TerraTorch's rounding: its argmax on near-ties
    with torch.no_grad():
        out = loaded.model(torch.randn(1, 12, 100, 90))  # padded to 128x96 inside, cropped back
    assert out.shape == (1, 3, 100, 90)

    raw = torch.load(str(path), weights_only=True)
    raw["state_dict"].pop("model.head.head.2.bias")
    torch.save(raw, str(path))
    with pytest.raises(UnsupportedCheckpointError, match="head.head.2.bias"):
        load_segmentation_checkpoint(path)


def test_segment_job_writes_classes_with_colour_table(tmp_path):
    import rasterio

    from terramind_backend.engine import run_job
    from terramind_backend.models.segmentation import load_segmentation_checkpoint

    ckpt = _random_checkpoint(tmp_path)
    (tmp_path / "seg.ckpt.classes.json").write_text(json.dumps(
        ["Other", {"value": 1, "name": "Water", "color": "#3171AD"}, {"value": 2, "name": "Trees", "color": "#469C76"}]))

    src = sample("S2L2A", PLACES[0])
    scene = tmp_path / "s2.tif"
    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read()
    data[:, :20, :30] = 0  # a nodata corner
    profile.update(nodata=0)
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write(data)

    out = tmp_path / "out" / "classes.tif"
    out.parent.mkdir()
    spec = {"version": 1, "task": "segment", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": {"path": str(scene)}},
            "outputs": {"classes": str(out), "probabilities": str(tmp_path / "out" / "p.tif")},
            "tiling": {"window": 224, "overlap": 0, "batch_size": 1}, "device": "cpu",
            "options": {"checkpoint": str(ckpt)}}
    from terramind_backend.engine import ModelCache

    cache = ModelCache()
    result = run_job(spec, models=cache)
    assert len(cache) == 1  # the loaded checkpoint stays warm for the next job
    kinds = {o["name"]: o["kind"] for o in result["outputs"]}
    assert kinds == {"classes": "classes", "probabilities": "probabilities"}

    with rasterio.open(out) as ds:
        classes = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.crs == profile["crs"]
        cmap = ds.colormap(1)
        assert cmap[1][:3] == (0x31, 0x71, 0xAD) and cmap[2][:3] == (0x46, 0x9C, 0x76)
    qml = (tmp_path / "out" / "classes.qml").read_text()
    assert 'label="Water"' in qml and 'label="Trees"' in qml

    # one window covering the tile: the same classes as the model on the standardized tile
    loaded = load_segmentation_checkpoint(ckpt)
    mean = torch.tensor(loaded.info.inputs[0].mean).view(1, -1, 1, 1)
    std = torch.tensor(loaded.info.inputs[0].std).view(1, -1, 1, 1)
    x = (torch.from_numpy(data[None].astype("float32")) - mean) / std
    x[..., :20, :30] = 0
    with torch.no_grad():
        want = loaded.model(x).argmax(1)[0].numpy()
    assert (classes[:20, :30] == 255).all()
    np.testing.assert_array_equal(classes[20:], want[20:])
    np.testing.assert_array_equal(classes[:20, 30:], want[:20, 30:])
    with rasterio.open(tmp_path / "out" / "p.tif") as ds:
        probs = ds.read()
    assert probs.shape[0] == 3 and np.allclose(probs[:, 30:, 30:].sum(0), 1, atol=1e-5)
    assert np.isnan(probs[:, :20, :30]).all()


def test_segment_job_needs_the_checkpoint_inputs(tmp_path):
    from terramind_backend.engine import JobValidationError, run_job

    ckpt = _random_checkpoint(tmp_path)
    spec = {"version": 1, "task": "segment", "model": "terramind_v1_tiny",
            "inputs": {"S1RTC": {"path": str(sample("S1RTC", PLACES[0]))}},
            "outputs": {"classes": str(tmp_path / "c.tif")}, "device": "cpu",
            "options": {"checkpoint": str(ckpt)}}
    with pytest.raises(JobValidationError) as err:
        run_job(spec)
    assert err.value.field == "inputs.S2L2A" and "S2L2A" in str(err.value)
    assert not (tmp_path / "c.tif").exists()


def test_segment_job_with_a_band_subset_checkpoint(tmp_path):
    """Checkpoints trained on some S2 bands (backbone_bands) take a band mapping with just those bands."""
    from terramind_backend.engine import JobValidationError, run_job
    from terramind_backend.models.segmentation import build_segmentation_model

    args = {**UNET_ARGS, "backbone_bands": {"S2L2A": ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]}}
    model = build_segmentation_model(args)
    assert model.encoder.encoder_embeddings["untok_sen2l2a@224"].proj.in_features == 6 * 256
    ckpt = _save(tmp_path / "six.ckpt", model.state_dict(), model_args=args)
    spec = {"version": 1, "task": "segment", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A", PLACES[1]))}},
            "outputs": {"classes": str(tmp_path / "c.tif")}, "device": "cpu",
            "tiling": {"window": 128, "overlap": 32, "batch_size": 3}, "options": {"checkpoint": str(ckpt)}}
    with pytest.raises(JobValidationError) as err:
        run_job(spec)
    assert err.value.field == "inputs.S2L2A.bands" and "BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2" in str(err.value)
    spec["inputs"]["S2L2A"]["bands"] = [2, 3, 4, 9, 11, 12]
    result = run_job(spec)
    assert [o["name"] for o in result["outputs"]] == ["classes"] and result["tiles"] == 4  # blended windows
    import rasterio

    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert classes.shape == (224, 224) and set(np.unique(classes)) <= {0, 1, 2}


def test_reshape_neck_handles_non_square_grids():
    from terramind_backend.models.segmentation.necks import ReshapeTokensToImage

    tokens = torch.arange(2 * 14 * 16 * 3, dtype=torch.float32).reshape(2, 14 * 16, 3)
    (grid,) = ReshapeTokensToImage([3], remove_cls_token=False)([tokens], image_size=(224, 256))
    assert grid.shape == (2, 3, 14, 16)
    assert torch.equal(grid[1, :, 2, 5], tokens[1, 2 * 16 + 5])  # tokens are row-major
    with pytest.warns(UserWarning, match="no CLS token"):  # TerraTorch's default; TerraMind has no CLS token
        (same,) = ReshapeTokensToImage([3])([tokens], image_size=(224, 256))
    assert torch.equal(same, grid)
    (given,) = ReshapeTokensToImage([3], remove_cls_token=False, h=14)([tokens])
    assert torch.equal(given, grid)


def test_sidecar_template_round_trip(tmp_path):
    from terramind_backend.models.segmentation import build_class_table, sidecar_path, write_sidecar
    from terramind_backend.models.segmentation.classes import read_sidecar

    table = build_class_table(3, ["a", "b"], ["#010203"])
    path = write_sidecar(sidecar_path(tmp_path / "m.ckpt"), table)
    assert path.name == "m.ckpt.classes.json"
    assert read_sidecar(path, 3) == table
    assert table[0].rgb == (1, 2, 3) and table[2].name == "class 2"
