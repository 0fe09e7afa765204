"""The finetune JobSpec builder (pure Python, shared by the dialog and terramind:finetune): the problems it
names before anything runs, and the JobSpec it writes (docs/finetune.md)."""
from __future__ import annotations

import os

import pytest

from tests.conftest import sample
from terramind_qgis.finetune.spec import FinetuneChoices, SceneChoice, build_finetune_spec, check_finetune
from terramind_qgis.jobspec_builder import InputChoice, JobSpecError

LABELS = {"path": "/data/labels.gpkg", "field": "cls"}


def choices(tmp_path, **changes):
    scene = SceneChoice([InputChoice("S2L2A", str(sample("S2L2A")), 12)], labels=dict(LABELS))
    values = dict(scenes=[scene], checkpoint=str(tmp_path / "model.ckpt"), model_size="tiny", device="cpu",
                  epochs=3, decoder="UperNetDecoder", chip_size=64, batch_size=2, seed=5,
                  classes=[{"value": 1, "name": "Water", "color": "#3171ad"},
                           {"value": 2, "name": "Forest", "color": "#1a7a3a"}])
    values.update(changes)
    return FinetuneChoices(**values)


def test_valid_choices_build_the_documented_jobspec(tmp_path):
    spec = build_finetune_spec(choices(tmp_path, class_weights="balanced"))
    assert spec == {
        "version": 1, "task": "finetune", "model": "terramind_v1_tiny",
        "training": [{"inputs": {"S2L2A": {"path": str(sample("S2L2A")), "bands": None, "scale": None,
                                           "offset": None, "nodata": None}}, "labels": LABELS}],
        "classes": [{"value": 1, "name": "Water", "color": "#3171ad"},
                    {"value": 2, "name": "Forest", "color": "#1a7a3a"}],
        "outputs": {"checkpoint": str(tmp_path / "model.ckpt")}, "resolution": 10.0, "device": "cpu", "seed": 5,
        "training_options": {"epochs": 3, "decoder": "UperNetDecoder", "batch_size": 2, "chip_size": 64,
                             "lr": 1e-4, "freeze_backbone": True, "val_fraction": 0.2, "early_stopping": 5,
                             "class_weights": "balanced", "dice": False, "resume": False}}


@pytest.mark.parametrize("change, field, words", [
    ({"decoder": "SegFormer"}, "training.decoder", "Unknown decoder"),
    ({"chip_size": 48}, "training.chip_size", "multiple of 32"),
    ({"epochs": 0}, "training.epochs", "at least one epoch"),
    ({"val_fraction": 1.0}, "training.val_fraction", "between 0 and 1"),
    ({"checkpoint": ""}, "outputs.checkpoint", "Choose where to save"),
    ({"checkpoint": "model.pt"}, "outputs.checkpoint", "end the file name with .ckpt"),
    ({"checkpoint": "/no/such/folder/model.ckpt"}, "outputs.checkpoint", "does not exist"),
    ({"model_size": "huge"}, "model", "Unknown model size"),
    ({"scenes": []}, "inputs", "Add at least one input"),
])
def test_each_problem_names_its_field(tmp_path, change, field, words):
    problems = check_finetune(choices(tmp_path, **change))
    assert [p.field for p in problems] == [field] and words in problems[0].message
    with pytest.raises(JobSpecError):
        build_finetune_spec(choices(tmp_path, **change))


def test_scenes_must_share_modalities_and_inputs_are_checked_per_scene(tmp_path):
    other = SceneChoice([InputChoice("S1RTC", str(sample("S1RTC")), 2)], labels=dict(LABELS))
    problems = check_finetune(choices(tmp_path, scenes=choices(tmp_path).scenes + [other]))
    assert [p.field for p in problems] == ["inputs"] and "same input modalities" in problems[0].message
    wrong_bands = SceneChoice([InputChoice("S2L2A", str(sample("S2RGB")), 3)], labels=dict(LABELS))
    problems = check_finetune(choices(tmp_path, scenes=choices(tmp_path).scenes + [wrong_bands]))
    assert [p.field for p in problems] == ["training.1.inputs.S2L2A.bands"]


def test_checkpoint_over_an_input_and_unwritten_labels_are_refused(tmp_path):
    over = os.path.join(str(tmp_path), "scene.ckpt")
    open(over, "w").close()
    scene = SceneChoice([InputChoice("S2L2A", over, 12)], labels=dict(LABELS))
    problems = check_finetune(choices(tmp_path, scenes=[scene], checkpoint=over))
    assert any(p.field == "outputs.checkpoint" and "overwrite an input" in p.message for p in problems)
    unwritten = choices(tmp_path)
    unwritten.scenes[0].labels = None
    with pytest.raises(JobSpecError, match="training.0.labels"):
        build_finetune_spec(unwritten)


def test_backend_fields_of_the_only_scene_map_to_the_dialogs(qgis_app):
    from terramind_qgis.widgets.train_panel import _single_scene_field

    assert _single_scene_field("training.0.inputs.S2L2A.bands") == "inputs.S2L2A.bands"
    assert _single_scene_field("training.0.labels.field") == "training.0.labels.field"
    assert _single_scene_field("training_options.chip_size") == "training_options.chip_size"


def test_apply_builds_the_segment_job_on_the_one_road(tmp_path, qgis_app):
    """Apply: the training scene's inputs, the new checkpoint, one class output; no model (the checkpoint names
    it); the dialog's area and tiling when given, else the whole first input."""
    from terramind_qgis.finetune.apply import classes_path, segment_choices
    from terramind_qgis.jobspec_builder import JobChoices, build_jobspec

    training = choices(tmp_path)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"")
    assert classes_path(str(checkpoint)) == str(tmp_path / "model_classes.tif")
    (tmp_path / "model_classes.tif").write_bytes(b"")
    out = classes_path(str(checkpoint))
    assert out == str(tmp_path / "model_classes_2.tif")        # an earlier result is kept
    spec = build_jobspec(segment_choices(training, str(checkpoint), out))
    assert spec["task"] == "segment" and "model" not in spec
    assert spec["inputs"] == build_finetune_spec(training)["training"][0]["inputs"]
    assert spec["outputs"] == {"classes": out} and spec["extent"] is None
    assert spec["options"]["checkpoint"] == str(checkpoint) and spec["options"]["probabilities"] is False
    assert spec["device"] == "cpu" and spec["resolution"] == 10.0
    dialog_now = JobChoices(task="finetune", extent_bounds=(0.0, 0.0, 640.0, 640.0), extent_crs="EPSG:32722",
                            window=128, overlap=16, device="cuda")
    spec = build_jobspec(segment_choices(training, str(checkpoint), out, dialog_now))
    assert spec["extent"] == {"bounds": [0.0, 0.0, 640.0, 640.0], "crs": "EPSG:32722"}
    assert spec["tiling"]["window"] == 128 and spec["device"] == "cpu"   # trained on the CPU: applied there too
