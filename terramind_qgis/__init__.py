"""TerraMind for QGIS: the QGIS side (PyQGIS + qgis.PyQt only, Qt5 or Qt6; torch lives in the backend process)."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import TerraMindPlugin

    return TerraMindPlugin(iface)
