"""Fixtures shared by every suite. Pure Python: the plugin suite runs under QGIS's Python (no torch)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_SAMPLES = SHARED / "data" / "terramesh-samples"
FAKE_HUB = REPO / ".cache" / "fake-hub"            # tiny + six tokenizers, official layout, random
FAKE_HUB_SMALL = REPO / ".cache" / "fake-hub-small"
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
    if not (folder / ".complete").exists():
        pytest.fail(f"{folder} missing: run scripts/fake_hub.sh (scripts/test.sh does it)")
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@pytest.fixture
def fake_hub(monkeypatch) -> Path:
    """A local HF cache with random official-layout TerraMind tiny + tokenizer files; offline."""
    return _use_hub(monkeypatch, FAKE_HUB)


@pytest.fixture
def fake_hub_small(monkeypatch) -> Path:
    return _use_hub(monkeypatch, FAKE_HUB_SMALL)


@pytest.fixture
def empty_hub(monkeypatch, tmp_path) -> Path:
    """An empty HF cache in offline mode: nothing can be loaded."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"
