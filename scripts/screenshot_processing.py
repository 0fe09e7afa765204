"""Render docs/images/processing-generate.png: QGIS's own Processing dialog for terramind:generate.

Run on a real X screen (the offscreen platform draws no native look):
    xvfb-run -a -s "-screen 0 1400x1100x24" .venv-qgis/bin/python scripts/screenshot_processing.py [out.png]
The dialog as the toolbox opens it on a fresh profile: the provider registered as the plugin does, every
parameter at its default, no layers loaded. Nothing runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from screenshot_session import REPO, exit_now, settle, start_qgis

ALGORITHM = "terramind:generate"
SIZE = (1000, 900)


class ProcessingIface:
    """What Processing's algorithm dialog asks of QGIS's interface (`qgis.utils.iface`): no active layer, a map
    canvas, a browser model and no main window."""

    def __init__(self):
        from qgis.gui import QgsBrowserGuiModel, QgsMapCanvas

        self.canvas = QgsMapCanvas()
        self.browser = QgsBrowserGuiModel()

    def activeLayer(self):
        return None

    def mapCanvas(self):
        return self.canvas

    def browserModel(self):
        return self.browser

    def mainWindow(self):
        return None


def main(out: Path) -> None:
    app = start_qgis()
    sys.path.append(str(Path(app.pkgDataPath()) / "python" / "plugins"))   # QGIS's processing package
    import qgis.utils
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication

    Processing.initialize()
    from terramind_qgis.processing import TerraMindProvider

    provider = TerraMindProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    iface = ProcessingIface()
    qgis.utils.iface = iface
    import processing.gui.AlgorithmDialog as algorithm_dialog
    import processing.gui.ParametersPanel as parameters_panel

    algorithm_dialog.iface = parameters_panel.iface = iface   # both bound the name at import
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
    assert algorithm is not None, ALGORITHM
    dialog = algorithm_dialog.AlgorithmDialog(algorithm)
    dialog.resize(*SIZE)
    dialog.show()
    settle(app)
    dialog.grab().save(str(out))
    print(f"saved {out} ({dialog.width()}×{dialog.height()})")
    exit_now()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images" / "processing-generate.png")
