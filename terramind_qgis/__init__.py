"""TerraMind for QGIS: the QGIS side (PyQGIS + PyQt5 only; torch lives in the backend process)."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import TerraMindPlugin

    return TerraMindPlugin(iface)
