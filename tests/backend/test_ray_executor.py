"""The Ray executor (docs/scale.md) against a real two-worker Ray cluster on 127.0.0.1 in private
namespaces (ray_netns.py): same files as the local executor, a killed worker survived, cancel,
a lost cluster, and a clear message without Ray. The model is the tiny TerraMind on the fake hub.

CI runs a 448² scene (9 windows, 5 blocks); TERRAMIND_RAY_SCENE=4 runs the acceptance's 896²
(25 windows, 13 blocks) with the same assertions (docs/scale.md, "Checking it").
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from tests.conftest import FAKE_HUB
from terramind_backend.engine import JobValidationError, run_job, validate_job
from terramind_backend.engine.tiling import axis_offsets
from engine_helpers import mosaic, sha256

pytest.importorskip("ray", reason="the Ray executor's tests need the extra: pip install -e 'backend[ray]'")

from ray_netns import BIN, NetnsCluster, namespaces_available  # noqa: E402

REPS = int(os.environ.get("TERRAMIND_RAY_SCENE", "2"))   # scene = REPS·224 px square
HUB_ENV = {"HF_HUB_CACHE": str(FAKE_HUB), "HF_HUB_OFFLINE": "1",
           # a lost cluster ends the Ray driver after this many seconds (Ray's default is 60)
           "RAY_gcs_rpc_server_reconnect_timeout_s": "5"}
TERRAMIND = str(BIN / "terramind")


def _spec(task, scene, outputs, **over):
    spec = {"version": 1, "task": task, "model": "terramind_v1_tiny", "inputs": {"S2L2A": str(scene)},
            "outputs": outputs, "device": "cpu", "seed": 7, "options": {"precision": "fp32"},
            "tiling": {"window": 224, "overlap": 32, "batch_size": 2}}
    spec.update(over)
    return spec


def _ray(spec, **executor):
    return {**spec, "executor": {"kind": "ray", "block_batches": 1, **executor}}


def _write_job(folder, spec):
    path = folder / "job.json"
    path.write_text(json.dumps(spec))
    return path


def _events(stdout: str):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _assert_same_raster(ray_path, local_path, rtol=1e-4):
    with rasterio.open(ray_path) as r, rasterio.open(local_path) as loc:
        assert (r.crs, r.transform, r.width, r.height, r.count, r.dtypes) == \
               (loc.crs, loc.transform, loc.width, loc.height, loc.count, loc.dtypes)
        assert r.tags() == loc.tags() and r.descriptions == loc.descriptions
        a, b = r.read(), loc.read()
    assert np.array_equal(np.isnan(a), np.isnan(b)) if a.dtype.kind == "f" else True
    if a.dtype.kind == "f":
        a, b = np.nan_to_num(a), np.nan_to_num(b)
        scale = np.abs(b).max(axis=(1, 2), keepdims=True) + 1e-12  # relative to each band's range
        assert (np.abs(a - b) / scale).max() <= rtol
    return a, b


@pytest.fixture(scope="module", autouse=True)
def fake_hub_ready():
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh (scripts/test.sh does it)")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return mosaic("S2L2A", tmp_path_factory.mktemp("scene") / "s2.tif", REPS, REPS)


@pytest.fixture(scope="module")
def local_runs(scene, tmp_path_factory):
    """The local executor's outputs: embeddings, and LULC generation with its probabilities."""
    out = tmp_path_factory.mktemp("local")
    mp = pytest.MonkeyPatch()
    for k, v in HUB_ENV.items():
        mp.setenv(k, v)
    try:
        run_job(_spec("embed", scene, {"embeddings": str(out / "emb.tif")}))
        run_job(_spec("generate", scene, {"LULC": str(out / "lulc.tif")},
                      options={"precision": "fp32", "probabilities": True}))
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="module")
def cluster():
    why = namespaces_available()
    if why:
        pytest.skip(f"the Ray tests run their cluster in private namespaces: {why}")
    c = NetnsCluster(cpus=2, env=HUB_ENV)
    yield c
    c.stop()


def test_ray_embeddings_and_lulc_match_the_local_executor(cluster, scene, local_runs, tmp_path):
    digest = sha256(scene)
    emb = _ray(_spec("embed", scene, {"embeddings": str(tmp_path / "emb.tif")}))
    run = cluster.run([TERRAMIND, "run", str(_write_job(tmp_path, emb)), "--address", cluster.address,
                       "--json-progress"])
    assert run.returncode == 0, run.stderr
    events = _events(run.stdout)
    tiles = [e for e in events if e.get("stage") == "tiles"]
    per_axis = len(axis_offsets(REPS * 224, 224, 224 - 32))
    assert tiles[-1]["done"] == tiles[-1]["total"] == per_axis ** 2   # progress as for a local job
    assert events[-1]["event"] == "result" and events[-1]["device"] == "ray:cpu"
    _assert_same_raster(tmp_path / "emb.tif", local_runs / "emb.tif")
    assert (tmp_path / "emb.qml").read_text() == (local_runs / "emb.qml").read_text()

    lulc = _ray(_spec("generate", scene, {"LULC": str(tmp_path / "lulc.tif")},
                      options={"precision": "fp32", "probabilities": True}))
    run = cluster.run([TERRAMIND, "run", str(_write_job(tmp_path, lulc)), "--address", cluster.address])
    assert run.returncode == 0, run.stderr
    p_ray, p_local = _assert_same_raster(tmp_path / "lulc_probabilities.tif", local_runs / "lulc_probabilities.tif")
    classes, classes_local = _assert_same_raster(tmp_path / "lulc.tif", local_runs / "lulc.tif")
    top2 = np.sort(p_local, axis=0)[-2:]
    decided = (top2[1] - top2[0]) > 1e-4        # a class may flip only where two are tied
    assert np.array_equal(classes[0][decided], classes_local[0][decided])
    assert (tmp_path / "lulc.qml").read_text() == (local_runs / "lulc.qml").read_text()
    assert sorted(os.listdir(tmp_path)) == sorted(["emb.qml", "emb.tif", "emb_pca.qml", "emb_pca.tif", "job.json",
                                                   "lulc.qml", "lulc.tif",
                                                   "lulc.tif.aux.xml", "lulc_probabilities.qml",
                                                   "lulc_probabilities.tif"])
    assert sha256(scene) == digest


def _start(cluster, folder, spec):
    return cluster.popen([TERRAMIND, "run", str(_write_job(folder, spec)), "--address", cluster.address,
                          "--json-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_windows(proc, done: int = 1):
    """Read progress until ``done`` windows are finished (the job is mid-way); returns the lines read."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("stage") == "tiles" and event["done"] >= done:
            return lines
    raise AssertionError(f"the job ended before {done} windows: {''.join(lines)}")


def test_a_worker_killed_mid_job_is_survived(cluster, scene, local_runs, tmp_path):
    spec = _ray(_spec("embed", scene, {"embeddings": str(tmp_path / "emb.tif")}))
    proc = _start(cluster, tmp_path, spec)
    _wait_for_windows(proc)
    workers = cluster.processes("ray::BlockWorker")
    assert workers, "no Ray worker process found"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    _assert_same_raster(tmp_path / "emb.tif", local_runs / "emb.tif")
    assert sorted(os.listdir(tmp_path)) == ["emb.qml", "emb.tif", "emb_pca.qml", "emb_pca.tif", "job.json"]  # no scratch


def test_cancel_from_qgis_stops_the_ray_tasks_within_seconds_and_leaves_nothing(cluster, scene, tmp_path):
    """Through `terramind serve --stdio`, as the plugin cancels: the protocol's cancel op."""
    (tmp_path / "lulc.tif").write_bytes(b"previous result")   # an older file at the destination survives
    spec = _ray(_spec("generate", scene, {"LULC": str(tmp_path / "lulc.tif")}), address=cluster.address)
    server = cluster.popen([TERRAMIND, "serve", "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)

    def send(request):
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()

    try:
        send({"op": "run", "id": "job-1", "spec": spec})
        _wait_for_windows(server)
        t0 = time.monotonic()
        send({"op": "cancel", "id": "cancel-1", "job": "job-1"})
        for line in server.stdout:
            event = json.loads(line)
            if event.get("job") == "job-1" and event["event"] in ("error", "result"):
                break
        took = time.monotonic() - t0
        assert event["event"] == "error" and event["kind"] == "cancelled", event
        assert took < 15, f"cancel took {took:.1f} s"
        deadline = time.monotonic() + 30                       # the actors are gone too (30 s: a loaded CI box)
        while cluster.processes("ray::BlockWorker") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert cluster.processes("ray::BlockWorker") == []
        assert sorted(os.listdir(tmp_path)) == ["lulc.tif"], os.listdir(tmp_path)  # no temp output, no scratch
        assert (tmp_path / "lulc.tif").read_bytes() == b"previous result"
        send({"op": "shutdown", "id": "bye"})
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()


def test_a_lost_cluster_fails_clearly_and_leaves_nothing(scene, tmp_path):
    why = namespaces_available()
    if why:
        pytest.skip(f"the Ray tests run their cluster in private namespaces: {why}")
    doomed = NetnsCluster(cpus=2, env=HUB_ENV)
    try:
        proc = _start(doomed, tmp_path, _ray(_spec("generate", scene, {"LULC": str(tmp_path / "lulc.tif")})))
        _wait_for_windows(proc)
        doomed.stop()                                           # the whole cluster goes away
        out, err = proc.communicate(timeout=120)
    finally:
        doomed.stop()
    assert proc.returncode == 1
    assert "cluster is gone or unreachable" in err
    assert sorted(os.listdir(tmp_path)) == ["job.json"]


def test_without_ray_the_message_says_how_to_install_it(scene, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)             # as if Ray were not installed
    spec = _ray(_spec("embed", scene, {"embeddings": str(tmp_path / "emb.tif")}))
    for check in (validate_job, run_job):                    # the dialog's check, and the run itself
        with pytest.raises(JobValidationError) as err:
            check(spec)
        assert err.value.field == "executor.kind"
        assert "pip install 'terramind-backend[ray]'" in err.value.message
    assert os.listdir(tmp_path) == []
