"""Publishing a job's outputs all-or-nothing (engine/publish.py, docs/reliability.md): a rename that fails part
way leaves every old output byte-identical and no temp or backup file; success leaves no backup; a backup left
by a run that died while publishing is restored or removed by the next job's sweep."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from terramind_backend.engine import leftovers, publish, run_job
from tests.conftest import fake_hub, sample  # noqa: F401  (fake_hub is a fixture)

OLD = {"lulc.tif": b"old lulc raster", "lulc.qml": b"old lulc style", "lulc.tif.aux.xml": b"old lulc classes",
       "ndvi.tif": b"old ndvi raster", "ndvi.qml": b"old ndvi style", "ndvi.tif.aux.xml": b"stale ndvi classes"}


def _old_outputs(folder):
    for name, data in OLD.items():
        (folder / name).write_bytes(data)


def _contents(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _hidden(folder):
    return [name for name in os.listdir(folder) if leftovers.is_temp(name)]


def _generate(folder):
    return {"version": 1, "task": "generate", "model": "terramind_v1_tiny", "device": "cpu", "timesteps": 1,
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"LULC": str(folder / "lulc.tif"), "NDVI": str(folder / "ndvi.tif")}}


def test_second_output_failing_to_go_in_leaves_both_old_outputs_and_success_leaves_no_backup(
        tmp_path, monkeypatch, fake_hub):  # noqa: F811
    _old_outputs(tmp_path)
    real_replace = os.replace
    mains = {str(tmp_path / "lulc.tif"), str(tmp_path / "ndvi.tif")}
    renamed_in = []

    def replace(src, dst):
        if src.endswith(".cog.tif") and str(dst) in mains:  # a new COG going in (not an undo)
            renamed_in.append(str(dst))
            if len(renamed_in) == 2:  # the first output's new file is in place by now
                raise OSError(errno.EIO, "injected rename failure", src, None, dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as raised:
        run_job(_generate(tmp_path))
    assert raised.value.strerror == "injected rename failure"  # the original error, not an undo's
    assert len(renamed_in) == 2
    assert _contents(tmp_path) == OLD                          # both old outputs and sidecars, byte-identical

    monkeypatch.setattr(os, "replace", real_replace)
    result = run_job(_generate(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["lulc.qml", "lulc.tif", "lulc.tif.aux.xml", "ndvi.qml", "ndvi.tif"]
    assert [o["path"] for o in result["outputs"]] == [str(tmp_path / "lulc.tif"), str(tmp_path / "ndvi.tif")]
    assert (tmp_path / "lulc.tif").read_bytes()[:4] in (b"II*\x00", b"II+\x00")  # the new COG replaced the old


def test_second_folder_turning_read_only_leaves_both_old_outputs(tmp_path, monkeypatch, fake_hub):  # noqa: F811
    """Tests run as root: the locked folder refuses every rename and removal the way a read-only one does."""
    first, locked = tmp_path / "first", tmp_path / "locked"
    first.mkdir()
    locked.mkdir()
    for folder in (first, locked):
        _old_outputs(folder)
    real_replace, real_remove = os.replace, os.remove
    refused = []

    def in_locked(path):
        return os.path.dirname(os.path.abspath(path)) == str(locked)

    def replace(src, dst):
        if in_locked(src):
            refused.append(src)
            raise PermissionError(errno.EACCES, "refused rename", src, dst)
        real_replace(src, dst)

    def remove(path):
        if refused and in_locked(path):
            raise PermissionError(errno.EACCES, "refused removal", path)
        real_remove(path)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "remove", remove)
    spec = _generate(first)
    spec["outputs"]["NDVI"] = str(locked / "ndvi.tif")
    with pytest.raises(PermissionError) as raised:
        run_job(spec)
    assert raised.value.strerror == "refused rename" and refused
    assert _contents(first) == OLD                            # its old files were moved aside, then restored
    assert {n: d for n, d in _contents(locked).items() if not leftovers.is_temp(n)} == OLD
    assert not any(".backup" in name for name in os.listdir(locked))
    # only the new temp files the read-only folder would not let go remain there, for the next job's sweep
    assert all(leftovers.is_temp(name) for name in set(os.listdir(locked)) - set(OLD))


def test_an_embeddings_pca_composite_is_published_with_its_embeddings(tmp_path, monkeypatch, fake_hub):  # noqa: F811
    old = {"emb.tif": b"old embeddings", "emb.qml": b"old style", "emb_pca.tif": b"old composite",
           "emb_pca.qml": b"old composite style"}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    real_replace = os.replace

    def replace(src, dst):
        if src.endswith(".cog.tif") and dst == str(tmp_path / "emb_pca.tif"):  # the last file to go in
            raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": str(sample("S2L2A"))}, "outputs": {"embeddings": str(tmp_path / "emb.tif")}}
    with pytest.raises(OSError, match="No space left"):
        run_job(spec)
    assert _contents(tmp_path) == old                          # the embeddings are not left newer than their picture


def _finished(folder, name, data):
    tmp = folder / f".{name}.{os.getpid():08x}.part.gpkg"
    tmp.write_bytes(data)
    return str(tmp), str(folder / name)


def test_undo_restores_every_file_moved_aside_or_put_in(tmp_path, monkeypatch):
    (tmp_path / "a.gpkg").write_bytes(b"old a")
    (tmp_path / "stale.aux.xml").write_bytes(b"old sidecar")
    moves = [_finished(tmp_path, "a.gpkg", b"new a"), _finished(tmp_path, "b.gpkg", b"new b"),
             (None, str(tmp_path / "stale.aux.xml")), _finished(tmp_path, "c.gpkg", b"new c")]
    real_replace = os.replace

    def replace(src, dst):
        if dst == str(tmp_path / "c.gpkg"):
            raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as raised:
        publish.publish(moves)
    assert raised.value.errno == errno.ENOSPC
    # what was put in is gone (b had no old file); c's temp file is left for its writer's abort
    assert sorted(os.listdir(tmp_path)) == sorted(["a.gpkg", "stale.aux.xml", os.path.basename(moves[3][0])])
    assert (tmp_path / "a.gpkg").read_bytes() == b"old a"
    assert (tmp_path / "stale.aux.xml").read_bytes() == b"old sidecar"


def test_success_replaces_removes_stale_sidecars_and_leaves_no_backup(tmp_path):
    (tmp_path / "a.gpkg").write_bytes(b"old a")
    (tmp_path / "stale.aux.xml").write_bytes(b"old sidecar")
    publish.publish([_finished(tmp_path, "a.gpkg", b"new a"), _finished(tmp_path, "b.gpkg", b"new b"),
                     (None, str(tmp_path / "stale.aux.xml")), (None, str(tmp_path / "never-there.qml"))])
    assert _contents(tmp_path) == {"a.gpkg": b"new a", "b.gpkg": b"new b"}


def test_a_failed_cleanup_never_hides_the_error(tmp_path, monkeypatch):
    (tmp_path / "a.gpkg").write_bytes(b"old a")
    moves = [_finished(tmp_path, "a.gpkg", b"new a"), _finished(tmp_path, "b.gpkg", b"new b")]
    real_replace = os.replace

    def replace(src, dst):
        if dst == str(tmp_path / "b.gpkg") or src.endswith(".backup"):
            raise OSError(errno.EROFS, "Read-only file system", src, None, dst)  # the new file and the restore refused
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as raised:
        publish.publish(moves)
    assert raised.value.filename2 == str(tmp_path / "b.gpkg")  # the publish's error, not the restore's
    assert not (tmp_path / "a.gpkg").exists()                  # the new file is out; the old one waits aside
    monkeypatch.setattr(os, "replace", real_replace)
    leftovers.sweep_stale(str(tmp_path / "a.gpkg"))            # the next job writing there
    assert (tmp_path / "a.gpkg").read_bytes() == b"old a"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".backup")]


def test_windows_file_open_in_qgis_is_named_and_nothing_changes(tmp_path, monkeypatch):
    (tmp_path / "a.tif").write_bytes(b"old a")
    (tmp_path / "b.tif").write_bytes(b"old b, open in QGIS")
    moves = [_finished(tmp_path, "a.tif", b"new a"), _finished(tmp_path, "b.tif", b"new b")]
    real_replace = os.replace

    def replace(src, dst):
        if src == str(tmp_path / "b.tif"):  # Windows refuses to move a file another program holds open
            raise PermissionError(errno.EACCES, "The process cannot access the file", src, dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(publish.os, "name", "nt")
    with pytest.raises(RuntimeError, match=r"Cannot replace .*b\.tif: .* Is it open in another program \(a QGIS "
                                           r"layer\)\?"):
        publish.publish(moves)
    monkeypatch.undo()
    assert (tmp_path / "a.tif").read_bytes() == b"old a"
    assert (tmp_path / "b.tif").read_bytes() == b"old b, open in QGIS"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".backup")]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_restores_a_dead_runs_backup_to_an_empty_destination_and_removes_a_superseded_one(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".lost.tif.{dead:08x}.backup").write_bytes(b"old, moved aside before the crash")
    (tmp_path / "kept.tif").write_bytes(b"new, renamed in before the crash")
    (tmp_path / f".kept.tif.{dead:08x}.backup").write_bytes(b"old, superseded")
    live = tmp_path / f".busy.tif.{os.getppid():08x}.backup"
    live.write_bytes(b"a live process is publishing")
    removed = leftovers.sweep_stale(str(tmp_path / "other.tif"))  # any job writing into the folder
    assert removed == [str(tmp_path / f".kept.tif.{dead:08x}.backup")]
    assert _contents(tmp_path) == {"kept.tif": b"new, renamed in before the crash",
                                   "lost.tif": b"old, moved aside before the crash",
                                   live.name: b"a live process is publishing"}
