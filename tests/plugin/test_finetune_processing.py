"""terramind:finetune without the backend: the JobSpec its parameters become (labels from an unsaved memory
layer written to a GeoPackage, classes from its legend) and bad labels refused before any job is sent."""
from __future__ import annotations

import pytest
from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback,
                       QgsProject, QgsRasterLayer)

from tests.conftest import sample
from tests.plugin.test_finetune_labels import categorize, owned, polygons


@pytest.fixture
def scene(qgis_app, qgis_new_project):
    layer = owned(QgsRasterLayer(str(sample("S2L2A")), "scene"))
    assert layer.isValid()
    return layer


def prepared(parameters):
    alg = QgsApplication.processingRegistry().createAlgorithmById("terramind:finetune")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    ok, message = alg.checkParameterValues(parameters, context)
    assert ok, message
    assert alg.prepareAlgorithm(parameters, context, feedback)
    return alg, context, feedback


def test_memory_polygons_become_a_finetune_jobspec(provider, scene, tmp_path):
    labels = polygons(scene, [1, 2, 1])
    QgsProject.instance().addMapLayer(labels)
    categorize(labels, [(1, "Water", "#3171ad"), (2, "Forest", "#1a7a3a")])
    out = str(tmp_path / "model.ckpt")
    alg, context, feedback = prepared({"S2L2A": scene.id(), "LABELS": labels.id(), "FIELD": "cls", "OUTPUT": out,
                                       "EPOCHS": 2, "DECODER": 2, "MODEL": 0, "DEVICE": 2, "SEED": 3,
                                       "CHIP_SIZE": 64, "BATCH_SIZE": 4, "BALANCED": True})
    spec, _ = alg.build_spec({"S2L2A": scene.id(), "LABELS": labels.id(), "FIELD": "cls", "OUTPUT": out,
                              "EPOCHS": 2, "DECODER": 2, "MODEL": 0, "DEVICE": 2, "SEED": 3, "CHIP_SIZE": 64,
                              "BATCH_SIZE": 4, "BALANCED": True}, context, feedback)
    assert spec["task"] == "finetune" and spec["model"] == "terramind_v1_tiny" and spec["version"] == 1
    assert spec["outputs"] == {"checkpoint": out}
    assert spec["device"] == "cpu" and spec["seed"] == 3 and spec["resolution"] == 10.0
    (scene_spec,) = spec["training"]
    assert scene_spec["inputs"] == {"S2L2A": {"path": str(sample("S2L2A")), "bands": None, "scale": None,
                                              "offset": None, "nodata": None}}
    assert scene_spec["labels"]["field"] == "cls" and scene_spec["labels"]["path"].endswith(".gpkg")
    assert spec["classes"] == [{"value": 1, "name": "Water", "color": "#3171ad"},
                               {"value": 2, "name": "Forest", "color": "#1a7a3a"}]
    options = spec["training_options"]
    assert options["epochs"] == 2 and options["decoder"] == "FCNDecoder" and options["chip_size"] == 64
    assert options["batch_size"] == 4 and options["class_weights"] == "balanced" and options["freeze_backbone"]


@pytest.mark.parametrize("case, message", [
    ("one_class", "at least two classes"),
    ("no_field", "Choose the field"),
    ("elsewhere", "do not overlap"),
])
def test_bad_labels_fail_before_any_job(provider, scene, tmp_path, case, message, monkeypatch):
    import processing

    from terramind_qgis import client

    monkeypatch.setattr(client.BackendClient, "run_job", lambda *a, **k: pytest.fail("a job was sent"))
    labels = polygons(scene, [1, 1] if case == "one_class" else [1, 2])
    if case == "elsewhere":
        labels = polygons(scene, [1, 2])
        for feature in labels.getFeatures():
            geometry = feature.geometry()
            geometry.translate(1e6, 0)
            labels.dataProvider().changeGeometryValues({feature.id(): geometry})
        labels.updateExtents()
    QgsProject.instance().addMapLayer(labels)
    out = tmp_path / "model.ckpt"
    feedback = QgsProcessingFeedback()
    with pytest.raises(QgsProcessingException):
        processing.run("terramind:finetune", {"S2L2A": scene.id(), "LABELS": labels.id(),
                                              "FIELD": "" if case == "no_field" else "cls", "OUTPUT": str(out)},
                       feedback=feedback)
    assert message in feedback.textLog()
    assert list(tmp_path.iterdir()) == []
