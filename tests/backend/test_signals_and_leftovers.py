"""Real processes, real signals: SIGTERM/SIGINT clean up like a cancel (the server still sends the job's
final event); what a SIGKILL leaves behind is swept by the next job writing the same output; a failing
COG conversion or cleanup leaves no temp file and hides no error."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from terramind_backend.engine import leftovers, run_job
from tests.backend.test_protocol_process import Backend
from tests.conftest import FAKE_HUB, fake_hub, sample  # noqa: F401  (fake_hub is a fixture)

CLI = [sys.executable, "-m", "terramind_backend"]


def _env():
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    return dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def slow_embed_spec(out):
    """Hundreds of tiny windows (S2 upsampled to 2.5 m, 32 px windows): seconds of work, a light model."""
    return {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu", "resolution": 2.5,
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}}, "outputs": {"embeddings": str(out)},
            "tiling": {"window": 32, "overlap": 0, "batch_size": 1}, "options": {"precision": "fp32"}}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_signal_cancels_the_job_sends_its_final_event_and_cleans_up(tmp_path, signum):
    backend = Backend(env=_env())
    try:
        backend.send({"op": "run", "id": "j", "spec": slow_embed_spec(tmp_path / "emb.tif")})
        backend.send({"op": "run", "id": "queued", "spec": slow_embed_spec(tmp_path / "other.tif")})
        backend.until(lambda e: e["job"] == "j" and e["event"] == "progress" and e["stage"] == "tiles"
                      and e["done"] >= 2, timeout=120)
        assert any(leftovers.is_temp(n) for n in os.listdir(tmp_path))  # mid-write
        backend.proc.send_signal(signum)
        final, _ = backend.until(lambda e: e["job"] == "j" and e["event"] in ("result", "error"), timeout=20)
        queued, _ = backend.until(lambda e: e["job"] == "queued", timeout=20)
        assert final["kind"] == "cancelled" and signal.Signals(signum).name in final["message"]
        assert queued["event"] == "error" and queued["kind"] == "cancelled"
        assert backend.proc.wait(20) == 128 + signum
        assert os.listdir(tmp_path) == []
    finally:
        backend.close()


def _start_cli(out, extra=()):
    spec_file = out.parent / "job.json"
    spec_file.write_text(json.dumps(slow_embed_spec(out)))
    return subprocess.Popen(CLI + ["run", str(spec_file), "--json-progress", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_tiles(proc):
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "progress" and event.get("stage") == "tiles" and event["done"] >= 2:
            return
    raise AssertionError(f"no tiles progress: {proc.stderr.read()[-2000:]}")


def test_cli_sigterm_cleans_up_and_prints_a_cancelled_event(tmp_path):
    proc = _start_cli(tmp_path / "emb.tif")
    try:
        _wait_for_tiles(proc)
        proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert rest[-1]["event"] == "error" and rest[-1]["kind"] == "cancelled" and "SIGTERM" in rest[-1]["message"]
    assert sorted(os.listdir(tmp_path)) == ["job.json"]


def test_litter_of_a_sigkilled_run_is_swept_by_the_next_job_writing_that_output(tmp_path, fake_hub):  # noqa: F811
    out = tmp_path / "emb.tif"
    proc = _start_cli(out)
    try:
        _wait_for_tiles(proc)
        proc.kill()
        proc.wait(20)
    finally:
        proc.stdout.close()
        proc.stderr.close()
    litter = [n for n in os.listdir(tmp_path) if leftovers.is_temp(n)]
    assert litter, "a SIGKILL leaves its temporary file"
    # a live writer's file and an unrelated hidden file are left alone
    live = tmp_path / f".emb.tif.{os.getppid():08x}.part.tif"
    live.write_bytes(b"being written by a live process")
    unrelated = tmp_path / ".emb.tif.notes"
    unrelated.write_text("mine")
    spec = slow_embed_spec(out)
    spec.update(resolution=10.0, tiling={"window": 224, "overlap": 0, "batch_size": 1})
    run_job(spec)
    assert sorted(os.listdir(tmp_path)) == sorted(["job.json", "emb.tif", "emb.qml", "emb_pca.tif", "emb_pca.qml",
                                                  live.name, unrelated.name])
    # a day later even a live-looking process's file is litter (process ids are reused)
    assert leftovers.sweep_stale(str(out), now=time.time() + leftovers.STALE_AFTER_S + 60) == [str(live)]


def test_failing_cog_conversion_removes_its_temp_file(tmp_path, monkeypatch, fake_hub):  # noqa: F811
    from terramind_backend.engine import writer

    def broken_copy(src, dst, **kwargs):
        with open(dst, "wb") as f:
            f.write(b"half a COG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "rio_copy", broken_copy)
    spec = slow_embed_spec(tmp_path / "emb.tif")
    spec.update(resolution=10.0, tiling={"window": 224, "overlap": 0, "batch_size": 1})
    with pytest.raises(Exception):
        run_job(spec)
    assert os.listdir(tmp_path) == []


def test_a_failing_cleanup_neither_hides_the_error_nor_stops_other_cleanups(tmp_path, monkeypatch, fake_hub):  # noqa: F811
    from terramind_backend.engine import writer

    def broken_copy(src, dst, **kwargs):
        raise RuntimeError("the original failure")

    real_remove = os.remove
    refused = []

    def remove(path):
        if path.endswith(".part.tif") and not refused:  # the first cleanup fails
            refused.append(path)
            raise PermissionError(13, "Permission denied", path)
        real_remove(path)

    monkeypatch.setattr(writer, "rio_copy", broken_copy)
    monkeypatch.setattr(writer.os, "remove", remove)
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "timesteps": 1,
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"LULC": str(tmp_path / "a" / "lulc.tif")}, "options": {"probabilities": True}}
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError, match="the original failure"):
        run_job(spec)
    left = os.listdir(tmp_path / "a")
    assert left == [os.path.basename(refused[0])]  # only the file whose removal failed; the other output's went
