"""Render the TerraMind dialog with real TerraMesh layers and save docs/images/dialog.png.

Run on a real X screen (the offscreen platform draws no native look):
    xvfb-run -a -s "-screen 0 1400x1100x24" .venv-qgis/bin/python scripts/screenshot_dialog.py [out.png]
Reads ../shared/data/terramesh-samples (a development checkout only; the plugin never does).
"""
from __future__ import annotations

import sys
from pathlib import Path

from screenshot_session import REPO, SAMPLES, CanvasIface, exit_now, settle, start_qgis

PLACE = "282D_485L_3_3"
SIZE = (1240, 1060)   # room for every section without scrolling (tests/plugin/test_dialog_fits.py checks 1240×1000)


def main(out: Path) -> None:
    app = start_qgis()
    from qgis.core import QgsProject, QgsRasterLayer

    layers = {}
    for folder, name in (("S2L2A", "Sentinel-2 L2A 2021-07-23"), ("S1RTC", "Sentinel-1 RTC 2021-07-21"),
                         ("DEM", "Copernicus DEM")):
        layer = QgsRasterLayer(str(SAMPLES / folder / f"{PLACE}.tif"), name)
        assert layer.isValid(), folder
        QgsProject.instance().addMapLayer(layer)
        layers[folder] = layer

    from terramind_qgis.dialog import TerraMindDialog

    dialog = TerraMindDialog(CanvasIface(layers["S2L2A"]))
    rows = dialog.input_list.rows
    rows[0].set_layer(layers["S2L2A"])
    dialog.input_list.add_row().set_layer(layers["S1RTC"])
    rows[0].bands_button.setChecked(True)
    dialog.advanced_box.setCollapsed(False)
    dialog.resize(*SIZE)
    dialog.show()
    settle(app)
    dialog.refresh()
    app.processEvents()
    dialog.grab().save(str(out))
    print(f"saved {out} ({dialog.width()}×{dialog.height()}), problems: {dialog.problems}")

    # The same dialog with problems: each is shown under the widget that causes it, and Run is disabled.
    rows[0].bands_button.setChecked(False)
    dialog.advanced_box.setCollapsed(True)
    dialog.input_list.rows[1].table.set_band(1, None)
    dialog.output_checks["S1RTC"].setChecked(True)
    dialog.folder_radio.setChecked(True)
    settle(app)
    dialog.refresh()
    app.processEvents()
    problems = out.with_name(out.stem + "-problems.png")
    dialog.grab().save(str(problems))
    print(f"saved {problems}, problems: {dialog.problems}")
    exit_now()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images" / "dialog.png")
