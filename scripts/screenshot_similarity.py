"""Render docs/images/similarity-uncertainty.png: find-similar and uncertainty layers on a TerraMesh tile.

    QT_QPA_PLATFORM=offscreen HF_HUB_CACHE=.cache/fake-hub HF_HUB_OFFLINE=1 \
        .venv-qgis/bin/python scripts/screenshot_similarity.py [out.png]

Runs the real jobs with the backend CLI (.venv-backend; the fake hub's random tiny weights, so the
pictures show the mechanics, not what the official weights find), loads the outputs with the plugin's
styler and the map tool's job builder, and draws four map panels side by side.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "terramesh-samples"
PLACE = "282D_485L_3_3"
PANEL, CAPTION = 380, 54
sys.path.insert(0, str(REPO))


def backend(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": ""}
    subprocess.run([str(REPO / ".venv-backend" / "bin" / "python"), "-m", "terramind_backend", *args, "--quiet"],
                   check=True, env=env)


def main(out: Path) -> None:
    # TERRAMIND_SHOT_DIR: reuse the model outputs of an earlier run (the generation takes minutes on a CPU)
    work = Path(os.environ.get("TERRAMIND_SHOT_DIR") or tempfile.mkdtemp(prefix="terramind-similarity-shot-"))
    s2 = str(SAMPLES / "S2L2A" / f"{PLACE}.tif")
    if not (work / "emb.tif").exists():
        backend("embed", "--in", f"S2L2A={s2}", "--out", str(work / "emb.tif"), "--precision", "fp32",
                "--device", "cpu")
    if not (work / "dem_spread.tif").exists():
        backend("generate", "--in", f"S2L2A={s2}", "--out", f"LULC={work / 'lulc.tif'}", "--out",
                f"DEM={work / 'dem.tif'}", "--timesteps", "2", "--window", "224", "--overlap", "0", "--batch", "1",
                "--confidence", "--spread", "4", "--device", "cpu")

    from osgeo import gdal
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")   # never write .aux.xml files beside the samples
    from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings, QgsPointXY, QgsProject,
                           QgsRasterLayer)
    from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter, QPen

    app = QgsApplication([], False, tempfile.mkdtemp(prefix="terramind-shot-"))
    app.initQgis()
    from terramind_qgis.layers import load_output_layers
    from terramind_qgis.similarity_job import similarity_spec

    s2_layer = QgsRasterLayer(s2, "Sentinel-2")
    emb = QgsRasterLayer(str(work / "emb.tif"), "embeddings")
    ext = emb.extent()
    patch = ext.width() / emb.width()
    clicks = [(3, 4), (9, 10)]                         # (row, col) of the clicked patches
    negative = (12, 2)
    centre = lambda rc: (ext.xMinimum() + (rc[1] + 0.5) * patch, ext.yMaximum() - (rc[0] + 0.5) * patch)  # noqa: E731
    spec = similarity_spec(str(work / "emb.tif"), str(work / "sim.tif"), [centre(c) for c in clicks],
                           [centre(negative)], threshold=0.8, areas=str(work / "areas.gpkg"))
    import json
    (work / "sim.json").write_text(json.dumps(spec))
    backend("run", str(work / "sim.json"))

    def layer(path, name, kind):
        return load_output_layers({"outputs": [{"name": name, "path": str(path), "kind": kind}]}, hillshade=False)[0]

    sim = layer(work / "sim.tif", "similarity", "similarity")
    areas = layer(work / "areas.gpkg", "areas", "areas")
    confidence = layer(work / "lulc_confidence.tif", "LULC_confidence", "confidence")
    spread = layer(work / "dem_spread.tif", "DEM_spread", "spread")
    sim.renderer().setOpacity(0.8)
    for each in (s2_layer, sim, areas, confidence, spread):
        QgsProject.instance().addMapLayer(each, False)

    def render(layers):
        settings = QgsMapSettings()
        settings.setLayers(layers)
        settings.setDestinationCrs(s2_layer.crs())
        settings.setExtent(s2_layer.extent())
        settings.setOutputSize(QSize(PANEL, PANEL))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        return job.renderedImage(), settings

    panels = [("Sentinel-2 + clicks (green) and a Shift-click (red)", [s2_layer]),
              ("Similarity 0–1 and areas ≥ 0.8", [areas, sim, s2_layer]),
              ("LULC confidence (max class probability)", [confidence]),
              ("DEM spread over 4 samples (m)", [spread])]
    image = QImage(len(panels) * (PANEL + 10) + 10, PANEL + CAPTION + 10, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont("DejaVu Sans", 10)
    painter.setFont(font)
    for i, (caption, layers) in enumerate(panels):
        picture, settings = render(layers)
        x0 = 10 + i * (PANEL + 10)
        painter.drawImage(x0, 10, picture)
        if i == 0:
            to_pixel = settings.mapToPixel()
            for rc, colour in [(c, "#00c853") for c in clicks] + [(negative, "#d50000")]:
                p = to_pixel.transform(QgsPointXY(*centre(rc)))
                painter.setPen(QPen(QColor(colour), 3))
                painter.drawEllipse(QPointF(x0 + p.x(), 10 + p.y()), 7, 7)
        painter.setPen(QColor("black"))
        painter.drawText(QRectF(x0, PANEL + 14, PANEL, CAPTION - 8), Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap,
                         caption)
    painter.end()
    image.save(str(out))
    print(f"saved {out} ({image.width()}×{image.height()})")
    QgsProject.instance().clear()
    app.exitQgis()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images" / "similarity-uncertainty.png")
