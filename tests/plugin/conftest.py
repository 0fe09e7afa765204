"""Fixtures of the plugin suite (QGIS's Python: no torch)."""
from contextlib import contextmanager

import pytest

from tests.conftest import BACKEND_PYTHON, fake_hub, module_fake_hub  # noqa: F401 (fixtures; the ini does not load tests/conftest.py)


@contextmanager
def clean_settings():
    """The plugin's Settings on a clean "terramind" QgsSettings group, removed again afterwards."""
    from qgis.core import QgsSettings

    from terramind_qgis.settings import Settings

    qs = QgsSettings()
    qs.remove("terramind")
    try:
        yield Settings(qs)
    finally:
        qs.remove("terramind")


@pytest.fixture
def settings(qgis_app):
    """The plugin's Settings on a clean "terramind" QgsSettings group, removed again afterwards."""
    with clean_settings() as clean:
        yield clean


@pytest.fixture
def backend_python(fake_hub, monkeypatch):  # noqa: F811
    """The real backend's interpreter (.venv-backend) as TERRAMIND_BACKEND_PYTHON, on the fake hub."""
    if not BACKEND_PYTHON.exists():
        pytest.fail(f"{BACKEND_PYTHON} missing: run scripts/setup.sh --test")
    monkeypatch.setenv("TERRAMIND_BACKEND_PYTHON", str(BACKEND_PYTHON))
    return BACKEND_PYTHON


@pytest.fixture(scope="module")
def backend_settings(qgis_app, module_fake_hub):  # noqa: F811
    """Settings pointing at the real backend on the fake hub, for a whole module: one warm process serves its
    tests and is stopped after them. QGIS's own PYTHONPATH is set, as in QGIS: it must not reach the backend."""
    from terramind_qgis.client import shutdown_client

    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.setenv("PYTHONPATH", "/usr/share/qgis/python")
    with clean_settings() as backend:
        backend.backend_python = str(BACKEND_PYTHON)
        yield backend
        shutdown_client()
    mp.undo()


@pytest.fixture(scope="module")
def stop_backend_after_module():
    """For modules whose tests share one warm backend (as the toolbox does): later modules expect none running."""
    yield
    from terramind_qgis.client import shutdown_client

    shutdown_client()


@pytest.fixture
def provider(qgis_processing):
    """The TerraMind Processing provider as the plugin registers it (kept referenced: PyQGIS would collect it)."""
    from qgis.core import QgsApplication

    from terramind_qgis.processing import TerraMindProvider

    registry = QgsApplication.processingRegistry()
    provider = TerraMindProvider()
    registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)
