"""The QGIS session the screenshot scripts share (screenshot_dialog.py, screenshot_train.py,
screenshot_processing.py).

QGIS starts as on a user's first run: a throwaway profile, no TerraMind settings, the Fusion style; GDAL
writes no .aux.xml beside the TerraMesh samples. ``CanvasIface`` stands in for QGIS's interface. Reads
../shared/data/terramesh-samples (a development checkout only; the plugin never does).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "terramesh-samples"
sys.path.insert(0, str(REPO))   # the plugin package, from this checkout


def start_qgis():
    """The running QgsApplication (GUI), initialised on a fresh profile with clean TerraMind settings."""
    from osgeo import gdal
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")   # never write .aux.xml files beside the samples

    from qgis.core import QgsApplication, QgsSettings
    from qgis.PyQt.QtCore import QCoreApplication

    QCoreApplication.setOrganizationName("TerraMindScreenshot")
    QCoreApplication.setApplicationName("TerraMindScreenshot")
    app = QgsApplication([], True, tempfile.mkdtemp(prefix="terramind-shot-"))
    app.initQgis()
    QgsSettings().remove("terramind")
    app.setStyle("Fusion")
    return app


class CanvasIface:
    """What the dialog asks of QGIS's interface: a map canvas on ``layer``'s CRS and extent, ``layer`` as the
    active layer, and a message bar (none here)."""

    def __init__(self, layer):
        from qgis.gui import QgsMapCanvas

        self.layer = layer
        self.canvas = QgsMapCanvas()
        self.canvas.setDestinationCrs(layer.crs())
        self.canvas.setExtent(layer.extent())

    def mapCanvas(self):
        return self.canvas

    def activeLayer(self):
        return self.layer

    def messageBar(self):
        return None


def settle(app, rounds: int = 20) -> None:
    """Let Qt lay out and paint what changed before a grab."""
    for _ in range(rounds):
        app.processEvents()


def exit_now() -> None:
    """Skip QGIS's teardown: nothing is left to save, and it can crash under Xvfb (a backend ends with our stdin)."""
    sys.stdout.flush()
    os._exit(0)
