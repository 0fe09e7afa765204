"""Fixtures of the plugin suite (QGIS's Python: no torch)."""
import pytest


@pytest.fixture
def settings(qgis_app):
    """The plugin's Settings on a clean "terramind" QgsSettings group, removed again afterwards."""
    from qgis.core import QgsSettings

    from terramind_qgis.settings import Settings

    qs = QgsSettings()
    qs.remove("terramind")
    yield Settings(qs)
    qs.remove("terramind")
