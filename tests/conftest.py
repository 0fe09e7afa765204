"""Fixtures shared by every suite. Pure Python: the plugin suite runs under QGIS's Python (no torch)."""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_SAMPLES = SHARED / "data" / "terramesh-samples"
FAKE_HUB = REPO / ".cache" / "fake-hub"            # tiny + six tokenizers, official layout, random
FAKE_HUB_SMALL = REPO / ".cache" / "fake-hub-small"
BACKEND_PYTHON = REPO / ".venv-backend" / "bin" / "python"   # the real backend the plugin suite starts
# catalog.py is pure standard library: loaded from its file so the plugin suite (no backend installed) reads it too.
_spec = importlib.util.spec_from_file_location("_catalog", REPO / "backend/src/terramind_backend/catalog.py")
CATALOG = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CATALOG)
DEV_REVISIONS = CATALOG.DEV_REVISIONS_FILE
PLACES = ["282D_485L_3_3", "38D_378R_2_3", "433D_629L_3_1", "609U_541L_3_0", "637U_59R_1_3"]


def _private_samples() -> Path:
    """A per-session copy of the TerraMesh samples: QGIS and GDAL write .aux.xml statistics beside rasters
    they open, and the shared originals must never change (in CI they are read-only)."""
    if not SHARED_SAMPLES.is_dir():
        return SHARED_SAMPLES
    root = tempfile.mkdtemp(prefix="terramesh-samples-")
    atexit.register(shutil.rmtree, root, True)
    copy = Path(root) / "terramesh-samples"
    for src in SHARED_SAMPLES.rglob("*.tif"):  # plain copies: writable, without the originals' modes
        dst = copy / src.relative_to(SHARED_SAMPLES)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return copy


SAMPLES = _private_samples()


def sample(modality: str, place: str = PLACES[0]) -> Path:
    path = SAMPLES / modality / f"{place}.tif"
    if not path.exists():
        pytest.skip(f"TerraMesh sample {path} not available (tests read ../shared)")
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/data/terramesh-samples not available")
    return SAMPLES


def _use_hub(monkeypatch, folder: Path) -> Path:
    if not (folder / ".complete").exists() or not (folder / DEV_REVISIONS).exists():
        pytest.fail(f"{folder} missing or without {DEV_REVISIONS}: run scripts/fake_hub.sh (scripts/test.sh does it)")
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@pytest.fixture
def fake_hub(monkeypatch) -> Path:
    """A local HF cache with random official-layout TerraMind tiny + tokenizer files; offline."""
    return _use_hub(monkeypatch, FAKE_HUB)


@pytest.fixture(scope="module")
def module_fake_hub() -> Iterator[Path]:
    """``fake_hub`` for a whole module: for module-scoped fixtures (one warm backend, one embedding run)."""
    mp = pytest.MonkeyPatch()
    yield _use_hub(mp, FAKE_HUB)
    mp.undo()


@pytest.fixture
def coords_hub(fake_hub) -> Path:
    """``fake_hub`` with the Coordinates files our own step adds (scripts/fake_hub_coords.py)."""
    if not (fake_hub / ".coords-complete").exists():
        pytest.fail(f"{fake_hub} has no Coordinates tokenizer/embeddings: run scripts/fake_hub.sh "
                    f"(scripts/test.sh does it)")
    return fake_hub


@pytest.fixture
def fake_hub_small(monkeypatch) -> Path:
    return _use_hub(monkeypatch, FAKE_HUB_SMALL)


@pytest.fixture
def empty_hub(monkeypatch, tmp_path) -> Path:
    """An empty HF cache in offline mode, every official repository pinned (development override) to a
    commit it does not hold: nothing can be loaded."""
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / DEV_REVISIONS).write_text(json.dumps({repo: "0" * 40 for repo in CATALOG.PINNED_REVISIONS}))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub
