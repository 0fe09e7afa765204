"""The "TerraMind" tab of QGIS's log panel. QgsMessageLog is safe to call from any thread."""
from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog

TAG = "TerraMind"
_LEVELS = {"debug": Qgis.Info, "info": Qgis.Info, "warning": Qgis.Warning, "error": Qgis.Critical,
           "success": Qgis.Success}


def log(message: str, level: str = "info") -> None:
    QgsMessageLog.logMessage(str(message), TAG, _LEVELS.get(level, Qgis.Info))
