"""An output folder that turns read-only mid-job (docs/reliability.md). Tests run as root, which bypasses
permissions, so the folder refuses the way a read-only one does: every rename and removal in it raises
EACCES (lost permission) or EROFS (read-only file system), from when the first output is renamed into place."""
from __future__ import annotations

import errno
import os

import pytest

from terramind_backend.engine import explain, run_job
from terramind_backend.engine import writer
from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_a_folder_turning_read_only_is_named_and_the_other_outputs_are_cleaned_up(tmp_path, monkeypatch, code,
                                                                                  fake_hub):  # noqa: F811
    locked, other = tmp_path / "locked", tmp_path / "other"
    locked.mkdir()
    other.mkdir()
    real_replace, real_remove = os.replace, os.remove
    refused_removals, turned = [], []

    def in_locked(path):
        return os.path.dirname(os.path.abspath(path)) == str(locked)

    def replace(src, dst):
        if in_locked(src):  # the folder turns read-only as the outputs are published
            turned.append(src)
            raise OSError(code, "refused rename", src, dst) if code == errno.EROFS else \
                PermissionError(code, "refused rename", src, dst)
        real_replace(src, dst)

    def remove(path):
        if turned and in_locked(path):  # from then on the cleanup fails there too
            refused_removals.append(path)
            raise PermissionError(errno.EACCES, "refused removal", path)
        real_remove(path)

    monkeypatch.setattr(writer.os, "replace", replace)
    monkeypatch.setattr(writer.os, "remove", remove)
    spec = {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "timesteps": 1,
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"LULC": str(locked / "lulc.tif"), "NDVI": str(other / "ndvi.tif")}}
    with pytest.raises(OSError) as raised:
        run_job(spec)
    assert raised.value.errno == code and raised.value.strerror == "refused rename"  # not the cleanup's error
    message = explain(raised.value, spec)
    assert f"The output folder {locked} became read-only" in message
    assert ".part" not in message and ".cog" not in message
    assert os.listdir(other) == []                        # the other output's temp files were removed
    assert refused_removals and sorted(os.listdir(locked)) == sorted(map(os.path.basename, refused_removals))
    assert not (locked / "lulc.tif").exists()
