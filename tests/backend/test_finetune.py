"""finetune (#14), backend half: validation of bad input (nothing written), raster and polygon labels in any
CRS, several scenes in several CRSs, cancel keeps the best epoch, resume continues exactly as an uninterrupted
run, the CLI, and `segment` running the trained checkpoint. Tiny model from the fake hub, 32 px chips."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from tests.conftest import PLACES, REPO, fake_hub, sample  # noqa: F401  (fake_hub is a fixture)
from terramind_backend.engine import JobCancelled, JobValidationError, plan_job, run_job, validate_job
from terramind_backend.finetune.scenes import prepare
from terramind_backend.finetune.spec import parse_finetune
from engine_helpers import reproject_to

CROP = 96
FAST = {"epochs": 2, "chip_size": 32, "batch_size": 4, "block_size": 1, "decoder": "FCNDecoder",
        "decoder_channels": 16, "early_stopping": 0, "min_labelled_pixels": 100}
NAMES = {1: "water", 2: "trees", 3: "flooded", 4: "crops", 5: "built", 6: "bare", 7: "snow", 8: "clouds",
         9: "rangeland"}


def crop(src, dst, size=CROP):
    with rasterio.open(src) as ds:
        win = Window(0, 0, size, size)
        profile = ds.profile.copy()
        profile.update(width=size, height=size, transform=ds.window_transform(win))
        data = ds.read(window=win)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return str(dst)


@pytest.fixture
def scene(tmp_path):
    place = PLACES[2]  # four classes in its corner
    (tmp_path / "out").mkdir()
    return crop(sample("S2L2A", place), tmp_path / "s2.tif"), crop(sample("LULC", place), tmp_path / "lulc.tif")


def spec_for(tmp_path, s2, labels, **options):
    return {"version": 1, "task": "finetune", "model": "terramind_v1_tiny",
            "training": [{"inputs": {"S2L2A": {"path": s2}}, "labels": labels}],
            "outputs": {"checkpoint": str(tmp_path / "out" / "model.ckpt")}, "device": "cpu", "seed": 3,
            "training_options": {**FAST, **options}}


def polygons_of(lulc_path, dst, crs="EPSG:4326", text=True):
    """The label raster as polygons with a class field, in another CRS (what a user digitises)."""
    fiona = pytest.importorskip("fiona", reason="backend dependency fiona missing: re-run scripts/setup.sh")
    from rasterio.features import shapes
    from rasterio.warp import transform_geom

    with rasterio.open(lulc_path) as ds:
        codes = ds.read(1)
        feats = [(transform_geom(ds.crs, crs, g), int(v)) for g, v in shapes(codes, transform=ds.transform)
                 if int(v) != 0]
    kind = "str" if text else "int"
    schema = {"geometry": "Polygon", "properties": {"cls": kind, "note": "str"}}
    with fiona.open(dst, "w", driver="GPKG", crs=crs, schema=schema) as out:
        for g, v in feats:
            out.write({"geometry": g, "properties": {"cls": NAMES[v] if text else v, "note": "x"}})
    return str(dst)


# --- validation: one clear message, nothing written --------------------------------------------------------

def _refused(tmp_path, spec, field, words):
    (tmp_path / "out").mkdir(exist_ok=True)
    with pytest.raises(JobValidationError) as err:
        run_job(spec)
    assert err.value.field == field, err.value.message
    assert all(w in err.value.message for w in words), err.value.message
    assert os.listdir(tmp_path / "out") == []


def test_bad_input_is_refused_before_anything_is_written(tmp_path, scene, fake_hub):  # noqa: F811
    s2, lulc = scene
    other = crop(sample("LULC", PLACES[3]), tmp_path / "far.tif")  # another place: no overlap
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": other}), "training[0].labels.path", ["do not overlap"])
    gpkg = polygons_of(lulc, tmp_path / "labels.gpkg")
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": gpkg, "field": "klass"}), "training[0].labels.field",
             ["no field 'klass'", "cls", "note"])
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": gpkg}), "training[0].labels.field", ["class field"])
    one = dict(spec_for(tmp_path, s2, {"path": lulc}), classes=[{"value": 1}, {"value": 55}])
    with rasterio.open(lulc) as ds:
        present = set(np.unique(ds.read(1)).tolist())
    value = sorted(present - {0})[0]
    one["classes"] = [{"value": value}, {"value": 55}]
    _refused(tmp_path, one, "training[0].labels", ["only one class"])
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": lulc}, min_labelled_pixels=10 ** 6),
             "training[0].labels", ["labelled pixels"])
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": lulc}, decoder="ASPPDecoder"), "training_options.decoder",
             ["Unknown decoder"])
    _refused(tmp_path, spec_for(tmp_path, s2, {"path": lulc}, tim=True, bands={"S2L2A": ["RED", "GREEN", "BLUE"]}),
             "training_options.bands", ["TiM needs every pre-trained band"])
    clash = spec_for(tmp_path, s2, {"path": lulc})
    clash["outputs"]["checkpoint"] = lulc + ".ckpt"
    os.rename(lulc, lulc + ".ckpt")
    clash["training"][0]["labels"] = {"path": lulc + ".ckpt"}
    _refused(tmp_path, clash, "outputs.checkpoint", ["would overwrite"])
    os.rename(lulc + ".ckpt", lulc)
    with pytest.raises(JobValidationError, match="two classes"):
        validate_job(dict(spec_for(tmp_path, s2, {"path": lulc}), classes=[{"value": 1}]))


def test_vector_labels_in_another_crs_match_the_raster_they_were_drawn_from(tmp_path, scene):
    s2, lulc = scene
    raster = prepare(parse_finetune(spec_for(tmp_path, s2, {"path": lulc})))
    gpkg = polygons_of(lulc, tmp_path / "labels.gpkg", crs="EPSG:4326", text=True)
    vector = prepare(parse_finetune(spec_for(tmp_path, s2, {"path": gpkg, "field": "cls"})))
    try:
        # text classes sort by name; compare per code
        by_code = dict(zip([NAMES[v] for v in raster.label_values], raster.class_pixels))
        got = dict(zip(vector.label_values, vector.class_pixels))
        assert set(got) == set(by_code)
        for name, n in by_code.items():  # reprojected polygon edges move a few boundary pixels
            assert abs(got[name] - n) <= max(0.03 * n, 12), (name, got[name], n)
        assert [c.name for c in vector.classes] == sorted(by_code)
        window = vector.chips[0].window(32)
        classes = vector.scenes[0].labels.read_classes(window, vector.table)
        assert classes.dtype == np.int16 and classes.min() >= -1 and classes.max() < len(vector.classes)
    finally:
        raster.close()
        vector.close()


def test_zero_is_unlabelled_unless_declared(tmp_path, scene):
    s2, lulc = scene
    with rasterio.open(lulc) as ds:
        profile, codes = ds.profile, ds.read(1)
    codes[:10] = 0
    with rasterio.open(tmp_path / "zeros.tif", "w", **profile) as out:
        out.write(codes, 1)
    labels = {"path": str(tmp_path / "zeros.tif")}
    auto = prepare(parse_finetune(spec_for(tmp_path, s2, labels)))
    present = sorted(set(np.unique(codes).tolist()) - {0})
    declared = prepare(parse_finetune(dict(spec_for(tmp_path, s2, labels),
                                           classes=[{"value": 0, "name": "background"}, {"value": present[0]}])))
    try:
        assert 0 not in auto.label_values and auto.label_values == present
        assert declared.label_values == [0, present[0]]
        assert declared.class_pixels[0] == int((codes == 0).sum())
        assert [c.name for c in declared.classes] == ["background", str(present[0])]
    finally:
        auto.close()
        declared.close()


# --- training -------------------------------------------------------------------------------------------

def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_three_scenes_in_three_crs_train_one_model_that_segment_runs(tmp_path, fake_hub):  # noqa: F811
    training = []
    for i, (place, crs) in enumerate(zip(PLACES[:3], (None, "EPSG:3857", "EPSG:3035"))):
        s2 = crop(sample("S2L2A", place), tmp_path / f"s2_{i}.tif")
        if crs:
            s2 = str(reproject_to(s2, tmp_path / f"s2_{i}_{crs[5:]}.tif", crs, 10.0))
        lulc = crop(sample("LULC", place), tmp_path / f"lulc_{i}.tif")  # labels stay in the scene's UTM zone
        training.append({"inputs": {"S2L2A": {"path": s2}}, "labels": {"path": lulc}})
    (tmp_path / "out").mkdir()
    spec = dict(spec_for(tmp_path, "", {}, epochs=1), training=training,
                classes=[{"value": v, "name": NAMES[v], "color": "#%02X%02X%02X" % (v * 20, 100, 200 - v * 10)}
                         for v in range(1, 10)])
    plan = plan_job(spec)
    assert [s["grid"]["crs"] for s in plan["scenes"]][1:] == ["EPSG:3857", "EPSG:3035"]
    events = []
    result = run_job(spec, emit=events.append)
    ckpt = result["outputs"][0]["path"]
    assert [o["name"] for o in result["outputs"]] == ["checkpoint", "metrics", "report", "classes"]
    assert all(os.path.isfile(o["path"]) for o in result["outputs"])
    train = [e for e in events if e.get("stage") == "train"]
    assert train[-1]["done"] == train[-1]["total"] and all(e["eta_s"] is not None for e in train)
    curve = [e["metrics"] for e in train if "metrics" in e]
    assert [m["epoch"] for m in curve] == [1]
    metrics = json.loads(open(ckpt + ".metrics.json").read())
    assert metrics["epochs"] == curve and metrics["split"]["val_chips"] > 0
    assert len(metrics["confusion_matrix"]["matrix"]) == 9 and len(metrics["per_class"]) == 9
    report = open(ckpt + ".report.html").read()
    assert report.count("<svg") == 2 and "Confusion matrix" in report and "rangeland" in report
    raw = _state(ckpt)
    assert raw["hyper_parameters"]["class_names"] == [NAMES[v] for v in range(1, 10)]
    assert set(raw["datamodule_hyper_parameters"]["means"]) == {"S2L2A"}
    assert all(k.startswith("model.") for k in raw["state_dict"])

    out = tmp_path / "classes.tif"  # the trained model through the segment task, on a scene in a third CRS
    run_job({"task": "segment", "inputs": {"S2L2A": training[2]["inputs"]["S2L2A"]},
             "outputs": {"classes": str(out)}, "device": "cpu", "options": {"checkpoint": ckpt}})
    with rasterio.open(out) as ds:
        assert ds.tags()["CLASS_NAMES"].split(",") == [NAMES[v] for v in range(1, 10)]
        assert ds.read(1).max() < 9 or ds.read(1).max() == 255


def test_cancel_keeps_the_best_epoch_and_resume_matches_an_uninterrupted_run(tmp_path, scene, fake_hub):  # noqa: F811
    s2, lulc = scene
    spec = spec_for(tmp_path, s2, {"path": lulc}, epochs=2, augment=True)
    whole = run_job(spec)
    reference = _state(str(tmp_path / "out" / "model.ckpt.state.pt"))
    ref_metrics = json.loads((tmp_path / "out" / "model.ckpt.metrics.json").read_text())
    for name in os.listdir(tmp_path / "out"):
        os.remove(tmp_path / "out" / name)

    cancel = threading.Event()
    with pytest.raises(JobCancelled) as first:  # cancelled during epoch 1: nothing to keep
        run_job(spec, cancel=cancel, emit=lambda e: cancel.set() if e.get("stage") == "train" else None)
    assert "no checkpoint was written" in str(first.value) and os.listdir(tmp_path / "out") == []

    cancel = threading.Event()
    with pytest.raises(JobCancelled) as second:  # cancelled after epoch 1
        run_job(spec, cancel=cancel, emit=lambda e: cancel.set() if "metrics" in e else None)
    assert "was kept at" in str(second.value) and "epoch 2 of 2" in str(second.value)
    assert json.loads((tmp_path / "out" / "model.ckpt.metrics.json").read_text())["stopped"] == "cancelled"

    resumed = run_job(dict(spec, training_options={**spec["training_options"], "resume": True}))
    state = _state(str(tmp_path / "out" / "model.ckpt.state.pt"))
    metrics = json.loads((tmp_path / "out" / "model.ckpt.metrics.json").read_text())
    assert resumed["epochs_run"] == whole["epochs_run"] == 2
    assert [(e["train_loss"], e["val_miou"]) for e in metrics["epochs"]] == \
        [(e["train_loss"], e["val_miou"]) for e in ref_metrics["epochs"]]
    for key, value in reference["model"].items():
        assert torch.equal(state["model"][key], value), key
    assert resumed["best_epoch"] == whole["best_epoch"]

    with pytest.raises(JobValidationError, match="already finished"):
        run_job(dict(spec, training_options={**spec["training_options"], "resume": True}))
    with pytest.raises(JobValidationError, match="other scenes, labels"):
        run_job(dict(spec, training_options={**spec["training_options"], "resume": True, "lr": 1e-3, "epochs": 3}))


def test_cli_finetune_with_polygon_labels(tmp_path, scene, fake_hub):  # noqa: F811
    s2, lulc = scene
    gpkg = polygons_of(lulc, tmp_path / "labels.gpkg", crs="EPSG:3857", text=False)
    out = tmp_path / "model.ckpt"
    cmd = [sys.executable, "-m", "terramind_backend", "finetune", "--in", f"S2L2A={s2}", "--labels", f"{gpkg}:cls",
           "--out", str(out), "--epochs", "1", "--chip", "32", "--batch", "4", "--decoder", "FCNDecoder",
           "--device", "cpu", "--json-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "backend" / "src")}
    dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, env=env, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["model_args"]["decoder"] == "FCNDecoder" and not out.exists()
    bad = subprocess.run(cmd[:-1] + ["--decoder", "Nope"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "Unknown decoder" in bad.stderr and not out.exists()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert events[-1]["event"] == "result" and events[-1]["outputs"][0]["path"] == str(out) and out.is_file()


def test_served_finetune_validates_streams_epochs_and_cancels_within_seconds(tmp_path, scene):
    """The plugin's path: `terramind serve --stdio` validates a finetune spec, streams train progress with the
    per-epoch metrics, and a cancel after the first epoch ends the job within 2 s, keeping that epoch's files."""
    import time

    from test_protocol_process import Backend
    from tests.conftest import FAKE_HUB

    s2, lulc = scene
    backend = Backend(env=dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1"))
    try:
        spec = spec_for(tmp_path, s2, {"path": lulc}, epochs=50)
        backend.send({"op": "validate", "id": "v1", "spec": dict(spec, training_options={**FAST, "decoder": "X"})})
        answer, _ = backend.until(lambda e: e["job"] == "v1", timeout=120)
        assert not answer["valid"] and answer["problems"][0]["field"] == "training_options.decoder"
        backend.send({"op": "run", "id": "j1", "spec": spec})
        epoch, seen = backend.until(lambda e: e["job"] == "j1" and "metrics" in e, timeout=300)
        assert {"train_loss", "val_loss", "val_miou", "val_accuracy", "seconds"} <= set(epoch["metrics"])
        assert [e["stage"] for e in seen if e["event"] == "progress"][:2] == ["prepare", "load"]
        t0 = time.monotonic()
        backend.send({"op": "cancel", "id": "c1", "job": "j1"})
        error, _ = backend.until(lambda e: e["job"] == "j1" and e["event"] in ("result", "error"), timeout=60)
        assert error["kind"] == "cancelled" and "was kept at" in error["message"], error
        assert time.monotonic() - t0 < 2.0
        names = sorted(os.listdir(tmp_path / "out"))
        assert names == ["model.ckpt", "model.ckpt.classes.json", "model.ckpt.metrics.json", "model.ckpt.report.html",
                         "model.ckpt.state.pt"], names
    finally:
        backend.close()


def test_out_of_memory_halves_the_forward_batch_and_training_goes_on(tmp_path, scene, fake_hub, monkeypatch):  # noqa: F811
    """CUDA out-of-memory (simulated: no GPU here) redoes the step in halves; later steps keep the smaller batch."""
    from terramind_backend.finetune.trainer import Trainer

    real, sizes = Trainer._forward, []

    def forward(self, x, drop=None):
        n = next(iter(x.values())).shape[0]
        sizes.append(n)
        if n > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, x, drop)

    monkeypatch.setattr(Trainer, "_forward", forward)
    s2, lulc = scene
    events = []
    result = run_job(spec_for(tmp_path, s2, {"path": lulc}, epochs=1), emit=events.append)
    warnings = [e["message"] for e in events if e.get("level") == "warning"]
    assert any("out of memory: continuing with 2 chips" in w for w in warnings), warnings
    assert sizes[0] == 4 and max(sizes[1:]) <= 2
    train = [e for e in events if e.get("stage") == "train"]
    assert train[-1]["done"] == train[-1]["total"] and result["epochs_run"] == 1


def test_class_values_match_whether_written_as_text_or_integers(tmp_path, scene):
    s2, lulc = scene
    gpkg = polygons_of(lulc, tmp_path / "labels.gpkg", text=False)  # an integer field
    spec = dict(spec_for(tmp_path, s2, {"path": gpkg, "field": "cls"}),
                classes=[{"value": "2", "name": "Trees"}, {"value": " 4 ", "name": "Crops"}])
    prepared = prepare(parse_finetune(spec))
    try:
        assert prepared.label_values == [2, 4] and all(prepared.class_pixels)
    finally:
        prepared.close()
    with pytest.raises(JobValidationError, match="listed twice"):
        parse_finetune(dict(spec, classes=[{"value": 2}, {"value": "2"}]))
