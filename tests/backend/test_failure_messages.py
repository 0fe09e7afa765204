"""Every failure names its cause and the fix, never a library's internals or a Python class name: real
faults (a folder deleted mid-job, a truncated input, a damaged or pickled checkpoint), plus the ones a test
machine cannot produce for real (a full disk, torch out of memory) injected where they happen."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest
import rasterio

from terramind_backend.engine import JobValidationError, explain, run_job
from terramind_backend.engine.failures import InputReadError
from terramind_backend.hub import CheckpointLoadError, load_checkpoint
from tests.conftest import FAKE_HUB, fake_hub, sample  # noqa: F401  (fake_hub is a fixture)


def embed_spec(out, src=None, **over):
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": {"path": str(src or sample("S2L2A"))}}, "outputs": {"embeddings": str(out)},
            "tiling": {"window": 32, "overlap": 0, "batch_size": 4}, "options": {"precision": "fp32"}}
    spec.update(over)
    return spec


def test_output_folder_deleted_mid_job_names_the_folder(tmp_path, fake_hub):  # noqa: F811
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    spec = embed_spec(out_dir / "emb.tif")

    def emit(event):
        if event.get("stage") == "tiles" and event.get("done") == 4 and out_dir.exists():
            shutil.rmtree(out_dir)

    with pytest.raises(Exception) as info:
        run_job(spec, emit=emit)
    message = explain(info.value, spec)
    assert f"The output folder {out_dir} was deleted" in message and ".part.tif" not in message


def test_truncated_input_names_the_file(tmp_path, fake_hub):  # noqa: F811
    src = tmp_path / "s2.tif"
    with rasterio.open(sample("S2L2A")) as ds:
        profile = dict(ds.profile, tiled=True, blockxsize=32, blockysize=32, compress="deflate")
        data = ds.read()
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(data)
    size = src.stat().st_size
    with open(src, "r+b") as f:
        f.truncate(size // 2)  # the header and the first blocks survive: validation passes, reading fails
    spec = embed_spec(tmp_path / "emb.tif", src=src)
    with pytest.raises(InputReadError) as info:
        run_job(spec)
    assert str(src) in str(info.value) and "truncated" in str(info.value)
    assert explain(info.value, spec) == str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["s2.tif"]


def test_out_of_memory_says_which_setting_to_lower(tmp_path):
    spec = embed_spec(tmp_path / "emb.tif")
    oom = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)")
    message = explain(oom, spec)
    assert message.startswith("Out of memory: lower tiling.batch_size (now 4; try 2)") and "window (now 32)" in message
    gpu = explain(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), dict(spec, device="cuda"))
    assert gpu.startswith("Out of memory on the GPU")
    assert "allocate" not in explain(MemoryError(), spec)


def test_full_disk_mid_job_and_the_free_space_check_before_it(tmp_path, fake_hub, monkeypatch):  # noqa: F811
    spec = embed_spec(tmp_path / "emb.tif")
    full = OSError(errno.ENOSPC, "No space left on device")
    message = explain(full, spec)
    assert message.startswith(f"The disk holding {tmp_path} is full") and "Errno" not in message

    from terramind_backend.engine import guards

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(guards.shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(JobValidationError, match="Not enough free space for the outputs") as info:
        run_job(spec)
    assert info.value.field == "outputs.embeddings" and str(tmp_path) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_checkpoints_that_are_not_plain_tensors_are_refused_without_weights_only_false(tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    pickled = tmp_path / "trap.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, pickled)
    with pytest.raises(CheckpointLoadError) as info:
        load_checkpoint(pickled)
    assert "never unpickles" in str(info.value) and "weights_only=False" not in str(info.value)
    assert not (tmp_path / "pwned").exists()

    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(CheckpointLoadError, match="is not a valid .safetensors file"):
        load_checkpoint(fake)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(pickle.dumps({"w": 1})[:5])
    with pytest.raises(CheckpointLoadError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(damaged)


@pytest.mark.parametrize("checkpoint", ["trap.pt", "model.safetensors"])
def test_generate_with_a_bad_checkpoint_fails_with_the_reason(tmp_path, fake_hub, checkpoint):  # noqa: F811
    import torch

    path = tmp_path / checkpoint
    if checkpoint.endswith(".pt"):
        torch.save({"x": rasterio.Affine.identity()}, path)  # a Python object besides tensors
    else:
        path.write_bytes(b"\x00" * 64)
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"LULC": str(tmp_path / "lulc.tif")},
            "options": {"checkpoint": checkpoint}}
    with pytest.raises(Exception) as info:
        run_job(spec, base_dir=str(tmp_path))
    message = explain(info.value, spec, str(tmp_path))
    assert checkpoint in message and "weights_only=False" not in message
    assert "Error:" not in message and "Traceback" not in message


def test_cli_json_progress_prints_an_error_event_for_a_runtime_failure(tmp_path):
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    out_dir = tmp_path / "gone"
    job = tmp_path / "job.json"
    job.write_text(json.dumps(embed_spec(out_dir / "emb.tif")))
    out_dir.mkdir()
    # the folder disappears after validation, while the model loads: a runtime failure, not a validation one
    code = ("import shutil, sys, terramind_backend.engine.executors.assembly as a\n"
            "orig = a.check_free_space\n"
            "def gone(products, grid):\n"
            f"    shutil.rmtree({str(out_dir)!r}); return orig(products, grid)\n"
            "a.check_free_space = gone\n"
            "from terramind_backend.cli import main\n"
            f"sys.exit(main(['run', {str(job)!r}, '--json-progress']))\n")
    env = dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, done.stderr[-2000:]
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "runtime"
    assert f"The output folder {out_dir} was deleted" in events[-1]["message"]
