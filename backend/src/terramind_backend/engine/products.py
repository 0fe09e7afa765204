"""The product definitions (``product_styles.json`` beside this file), read once for the engine.

LULC class names and colours, the NDVI/terrain/score ramps, the SAR dB range and the true-colour bands:
``modalities.LULC_CLASSES`` and the ``.qml`` writer (``styles.py``) take them from here; the plugin reads the
same file (``terramind_qgis/vocabulary.py``), so a layer looks the same whichever side styled it.
Standard library only: the torch-free, rasterio-free JobSpec path imports it through ``modalities``.
"""
from __future__ import annotations

import json
from pathlib import Path

PRODUCTS = json.loads(Path(__file__).with_name("product_styles.json").read_text(encoding="utf-8"))
