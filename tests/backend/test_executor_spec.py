"""The JobSpec's ``executor`` and the CLI's --executor/--address (no Ray needed)."""
from __future__ import annotations

import argparse

import pytest

from terramind_backend.commands.jobs import _with_executor
from terramind_backend.engine import JobValidationError, parse_jobspec
from terramind_backend.engine.jobspec import Executor

BASE = {"task": "embed", "inputs": {"S2L2A": "s2.tif"}, "outputs": {"embeddings": "e.tif"}}


def test_local_by_default_and_ray_fields_parsed(tmp_path):
    assert parse_jobspec(BASE).executor == Executor(kind="local")
    spec = parse_jobspec({**BASE, "executor": {"kind": "ray", "address": "10.0.0.5:6379", "workers": 3,
                                               "gpus_per_worker": 1, "scratch": "scratch", "colour": 1}},
                         base_dir=str(tmp_path))
    ex = spec.executor
    assert (ex.kind, ex.address, ex.workers, ex.gpus_per_worker, ex.cpus_per_worker, ex.block_batches) == \
           ("ray", "10.0.0.5:6379", 3, 1.0, 1.0, 2)
    assert ex.scratch == str(tmp_path / "scratch")
    assert spec.warnings == ("Ignored unknown key executor.'colour'.",)
    assert parse_jobspec(spec.to_dict(), base_dir=str(tmp_path)) == spec
    assert parse_jobspec({**BASE, "executor": "ray"}).executor.kind == "ray"


@pytest.mark.parametrize("executor, field", [
    ({"kind": "dask"}, "executor.kind"),
    ({"kind": "ray", "address": ""}, "executor.address"),
    ({"kind": "ray", "workers": 0}, "executor.workers"),
    ({"kind": "ray", "cpus_per_worker": 0}, "executor.cpus_per_worker"),
    ({"kind": "ray", "gpus_per_worker": -1}, "executor.gpus_per_worker"),
    ({"kind": "ray", "block_batches": 0}, "executor.block_batches"),
    ({"kind": "ray", "runtime_env": "pip"}, "executor.runtime_env"),
    (["ray"], "executor"),
])
def test_bad_executor_names_its_field(executor, field):
    with pytest.raises(JobValidationError) as err:
        parse_jobspec({**BASE, "executor": executor})
    assert err.value.field == field


def _args(executor=None, address=None):
    return argparse.Namespace(executor=executor, address=address)


def test_cli_flags_override_the_jobspec_executor():
    assert _with_executor(BASE, _args()) is BASE
    assert _with_executor(BASE, _args("ray"))["executor"] == {"kind": "ray"}
    spec = {**BASE, "executor": {"kind": "ray", "workers": 2}}
    assert _with_executor(spec, _args(address="h:6379"))["executor"] == {"kind": "ray", "workers": 2,
                                                                         "address": "h:6379"}
    assert _with_executor(spec, _args("local"))["executor"] == {"kind": "local", "workers": 2}
    with pytest.raises(SystemExit, match="--address"):
        _with_executor(BASE, _args("local", "h:6379"))


def test_scratch_folders_of_dead_runs_are_swept(tmp_path):
    import os
    import subprocess
    import sys

    from terramind_backend.engine.executors.ray import _new_scratch

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    litter = tmp_path / f".terramind-ray.{dead.pid:08x}.abc"
    (litter / "sub").mkdir(parents=True)
    (litter / "block-0000000.LULC.npy").write_bytes(b"x")
    alive = tmp_path / f".terramind-ray.{os.getppid():08x}.def"   # another live run's: kept
    alive.mkdir()
    scratch = _new_scratch(str(tmp_path))
    assert not litter.exists() and alive.is_dir()
    assert os.path.basename(scratch).startswith(f".terramind-ray.{os.getpid():08x}.")
