"""Model downloads are pinned to commits: catalog.py's table, its development override, and hub.py's use of it."""
from __future__ import annotations

import importlib.util
import json

import pytest

from terramind_backend import catalog, hub
from tests.conftest import DEV_REVISIONS, REPO, empty_hub, fake_hub  # noqa: F401 (fixtures)

TINY = "ibm-esa-geospatial/TerraMind-1.0-tiny"


def _cache_with_tiny_at(root, commit: str):
    """A cache holding a (dummy) tiny checkpoint at ``commit`` only, like an older download would."""
    folder = root / "models--ibm-esa-geospatial--TerraMind-1.0-tiny"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / "TerraMind_v1_tiny.pt").write_bytes(b"not used")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return root


def test_table_names_every_official_repository_once_with_commit_or_none():
    official = {w.repo_id for w in catalog.all_weights()}
    assert set(catalog.PINNED_REVISIONS) == official and len(official) == len(list(catalog.all_weights()))
    assert all(c is None or catalog.is_commit(c) for c in catalog.PINNED_REVISIONS.values())
    assert catalog.is_commit("0" * 40) and not catalog.is_commit("main") and not catalog.is_commit("abc1234")


def test_fake_hub_loads_at_its_pinned_commit(fake_hub):  # noqa: F811
    pins = json.loads((fake_hub / DEV_REVISIONS).read_text())
    path = hub.resolve_weights(TINY, "TerraMind_v1_tiny.pt")
    assert path.parent.name == pins[TINY] == hub.revision_for(TINY)
    cached = {c.name: c for c in hub.cached_official_weights()}
    assert cached["terramind_v1_tiny"].revision == pins[TINY]
    unpinned = [r for r, c in catalog.PINNED_REVISIONS.items() if c is None and r not in pins]
    assert hub.repos_without_commit() == sorted(unpinned)


def test_unpinned_repository_is_refused_before_any_download(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(catalog, "PINNED_REVISIONS", {**catalog.PINNED_REVISIONS, TINY: None})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(hub.WeightsNotAvailable, match="no pinned commit for ibm-esa-geospatial/TerraMind-1.0-tiny"):
        hub.resolve_weights(TINY, "TerraMind_v1_tiny.pt", offline=False)
    assert TINY in hub.repos_without_commit()
    assert "terramind_v1_tiny" not in {c.name for c in hub.cached_official_weights()}


def test_every_download_passes_the_pinned_commit(tmp_path, monkeypatch):
    import huggingface_hub

    commit = "1" * 40
    seen = {}

    def fake_download(repo_id, filename, *, revision, **kwargs):
        seen.update(repo_id=repo_id, revision=revision, offline=kwargs["local_files_only"])
        path = tmp_path / "snapshots" / revision / filename
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        return str(path)

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(catalog, "PINNED_REVISIONS", {**catalog.PINNED_REVISIONS, TINY: commit})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    hub.resolve_weights(TINY, "TerraMind_v1_tiny.pt", offline=False)
    assert seen == {"repo_id": TINY, "revision": commit, "offline": False}


def test_pinned_entry_wins_over_the_development_file(tmp_path, monkeypatch):
    (tmp_path / DEV_REVISIONS).write_text(json.dumps({TINY: "2" * 40}))
    assert catalog.pinned_revision(TINY, tmp_path) == "2" * 40
    monkeypatch.setattr(catalog, "PINNED_REVISIONS", {**catalog.PINNED_REVISIONS, TINY: "3" * 40})
    assert catalog.pinned_revision(TINY, tmp_path) == "3" * 40


@pytest.mark.parametrize("content", ['{"ibm-esa-geospatial/TerraMind-1.0-tiny": "main"}', "not json"])
def test_development_file_must_name_full_commits(tmp_path, content):
    (tmp_path / DEV_REVISIONS).write_text(content)
    with pytest.raises(catalog.RevisionNotPinned, match=DEV_REVISIONS):
        catalog.pinned_revision(TINY, tmp_path)


def test_cache_holding_another_commit_is_not_used(tmp_path, monkeypatch):
    _cache_with_tiny_at(tmp_path, "a" * 40)
    (tmp_path / DEV_REVISIONS).write_text(json.dumps({TINY: "b" * 40}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(hub.WeightsNotAvailable) as err:
        hub.resolve_weights(TINY, "TerraMind_v1_tiny.pt", offline=True)
    message = str(err.value)
    assert f"only at other commits ({'a' * 12})" in message and f"--revision {'b' * 40}" in message
    assert "terramind_v1_tiny" not in {c.name for c in hub.cached_official_weights()}
    assert hub.cached_commits(TINY, "TerraMind_v1_tiny.pt") == ["a" * 40]


def _pin_script(monkeypatch, table_copy):
    spec = importlib.util.spec_from_file_location("pin_revisions", REPO / "scripts" / "pin_revisions.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "TABLE", table_copy)
    monkeypatch.setattr(script, "ROOT", table_copy.parent)
    return script


def test_pin_script_fills_unpinned_entries_and_check_gates_a_release(tmp_path, monkeypatch, capsys):
    table = tmp_path / "catalog.py"
    source = (REPO / "backend/src/terramind_backend/catalog.py").read_text()
    assert source.count('repo="TerraMind-1.0-tiny", revision=None') == 1
    table.write_text(source.replace('repo="TerraMind-1.0-tiny", revision=None',
                                    'repo="TerraMind-1.0-tiny", revision="' + "c" * 40 + '"'))
    script = _pin_script(monkeypatch, table)
    assert script.check() == 1
    unreachable = "ibm-esa-geospatial/TerraMind-1.0-large"

    def head(api, repo, filename):
        if repo == unreachable:
            raise ConnectionError("no route to the Hub")
        return "d" * 40

    monkeypatch.setattr(script, "head_commit", head)
    assert script.fill(update=False) == 1  # one repository could not be reached
    pins = script.load_table().PINNED_REVISIONS
    assert pins[TINY] == "c" * 40  # already pinned: kept without --update
    assert pins[unreachable] is None
    assert all(c == "d" * 40 for r, c in pins.items() if r not in (TINY, unreachable))
    assert script.check() == 1 and unreachable in capsys.readouterr().err
    monkeypatch.setattr(script, "head_commit", lambda api, repo, filename: "e" * 40)
    assert script.fill(update=True) == 0 and script.check() == 0
    assert set(script.load_table().PINNED_REVISIONS.values()) == {"e" * 40}
