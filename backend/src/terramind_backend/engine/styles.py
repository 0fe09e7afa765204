"""QGIS `.qml` styles written beside each output, so the plugin only calls `loadNamedStyle`.

One function per renderer (paletted, pseudocolour ramp, grey, RGB), chosen by the output's
product: LULC/classes paletted with class names, NDVI a fixed −1..1 ramp, DEM a terrain ramp over
the data range, SAR grey in dB, S2L2A true colour (bands 4, 3, 2), embeddings the first three
features as RGB stretched to mean ± 2σ (one band: grey); similarity, confidence and entropy a
fixed 0–1 ramp, spread the same ramp from 0 to its maximum.
"""
from __future__ import annotations

from html import escape
from typing import Dict, List, Optional, Sequence, Tuple

from .products import PRODUCTS as _PRODUCTS
from .writer import OutputSpec

_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.22.0\" styleCategories=\"AllStyleCategories\">\n  <pipe>\n"
_TAIL = ("    <brightnesscontrast brightness=\"0\" contrast=\"0\" gamma=\"1\"/>\n"
         "    <huesaturation saturation=\"0\" grayscaleMode=\"0\" colorizeOn=\"0\" colorizeStrength=\"100\" "
         "colorizeRed=\"255\" colorizeGreen=\"128\" colorizeBlue=\"128\"/>\n"
         "    <rasterresampler maxOversampling=\"2\"/>\n  </pipe>\n  <blendMode>0</blendMode>\n</qgis>\n")

# One definition per product, shared with the plugin's styler (product_styles.json).
NDVI_RAMP = [(float(v), c) for v, c in _PRODUCTS["ndvi_ramp"]]
# 0–1 scores: similarity and confidence light up where high (plasma-like), entropy and spread
# where the model is unsure (the same ramp: bright = "look here").
SCORE_RAMP = list(_PRODUCTS["score_ramp"])
TERRAIN = list(_PRODUCTS["terrain_ramp"])
SAR_DB_RANGE = tuple(_PRODUCTS["sar_db_range"])
TRUE_COLOUR = {k: (tuple(bands), tuple(span)) for k, (bands, span) in _PRODUCTS["true_colour"].items()}


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _enhance(tag: str, lo: float, hi: float) -> str:
    return (f"      <{tag}>\n        <minValue>{_fmt(lo)}</minValue>\n        <maxValue>{_fmt(hi)}</maxValue>\n"
            f"        <algorithm>StretchToMinimumMaximum</algorithm>\n      </{tag}>\n")


def paletted(class_names: Sequence[str], colors: Sequence[str]) -> str:
    entries = "".join(f"        <paletteEntry value=\"{i}\" color=\"{c.lower()}\" alpha=\"255\" "
                      f"label=\"{escape(n, quote=True)}\"/>\n" for i, (n, c) in enumerate(zip(class_names, colors)))
    return (_HEAD + "    <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n"
            "      <rasterTransparency/>\n      <colorPalette>\n" + entries + "      </colorPalette>\n"
            "    </rasterrenderer>\n" + _TAIL)


def pseudocolor(stops: List[Tuple[float, str]], band: int = 1) -> str:
    lo, hi = stops[0][0], stops[-1][0]
    items = "".join(f"          <item value=\"{_fmt(v)}\" color=\"{c}\" alpha=\"255\" label=\"{_fmt(v)}\"/>\n"
                    for v, c in stops)
    return (_HEAD + f"    <rasterrenderer type=\"singlebandpseudocolor\" band=\"{band}\" opacity=\"1\" alphaBand=\"-1\" "
            f"classificationMin=\"{_fmt(lo)}\" classificationMax=\"{_fmt(hi)}\" nodataColor=\"\">\n"
            "      <rasterTransparency/>\n      <rastershader>\n"
            f"        <colorrampshader colorRampType=\"INTERPOLATED\" classificationMode=\"1\" clip=\"0\" "
            f"minimumValue=\"{_fmt(lo)}\" maximumValue=\"{_fmt(hi)}\">\n" + items +
            "        </colorrampshader>\n      </rastershader>\n    </rasterrenderer>\n" + _TAIL)


def gray(lo: float, hi: float, band: int = 1) -> str:
    return (_HEAD + f"    <rasterrenderer type=\"singlebandgray\" grayBand=\"{band}\" gradient=\"BlackToWhite\" "
            "opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n      <rasterTransparency/>\n"
            + _enhance("contrastEnhancement", lo, hi) + "    </rasterrenderer>\n" + _TAIL)


def rgb(bands: Tuple[int, int, int], ranges: Sequence[Tuple[float, float]]) -> str:
    r, g, b = bands
    return (_HEAD + f"    <rasterrenderer type=\"multibandcolor\" redBand=\"{r}\" greenBand=\"{g}\" blueBand=\"{b}\" "
            "opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n      <rasterTransparency/>\n"
            + _enhance("redContrastEnhancement", *ranges[0]) + _enhance("greenContrastEnhancement", *ranges[1])
            + _enhance("blueContrastEnhancement", *ranges[2]) + "    </rasterrenderer>\n" + _TAIL)


def _ramp(colors: Sequence[str], lo: float, hi: float) -> List[Tuple[float, str]]:
    step = (hi - lo) / (len(colors) - 1)
    return [(lo + i * step, c) for i, c in enumerate(colors)]


def _stretch(stat: Dict[str, Optional[float]], default: Tuple[float, float]) -> Tuple[float, float]:
    """mean ± 2σ clipped to the data range; ``default`` when nothing valid was written."""
    if stat.get("mean") is None:
        return default
    lo = max(stat["min"], stat["mean"] - 2 * stat["std"])
    hi = min(stat["max"], stat["mean"] + 2 * stat["std"])
    return (lo, hi) if hi > lo else (stat["min"], stat["max"] + 1e-6)


def style_for(spec: OutputSpec, stats: Sequence[Dict[str, Optional[float]]]) -> str:
    """The QML text for one output, given the per-band statistics of what was written."""
    if spec.kind == "classes" and spec.class_names and spec.colors:
        return paletted(spec.class_names, spec.colors)
    if spec.kind == "probabilities":
        return gray(0.0, 1.0)
    if spec.kind in ("similarity", "confidence", "entropy"):
        return pseudocolor(_ramp(SCORE_RAMP, 0.0, 1.0))
    if spec.kind == "spread":
        hi = stats[0]["max"] if stats[0]["max"] is not None and stats[0]["max"] > 0 else 1.0
        return pseudocolor(_ramp(SCORE_RAMP, 0.0, hi))
    product = spec.product
    if product == "NDVI":
        return pseudocolor(NDVI_RAMP)
    if product == "DEM":
        lo, hi = (stats[0]["min"], stats[0]["max"]) if stats[0]["min"] is not None else (0.0, 1000.0)
        hi = hi if hi > lo else lo + 1.0
        step = (hi - lo) / (len(TERRAIN) - 1)
        return pseudocolor([(lo + i * step, c) for i, c in enumerate(TERRAIN)])
    if product in ("S1GRD", "S1RTC"):
        return gray(*_stretch(stats[0], SAR_DB_RANGE))
    if product == "S2L2A":
        bands, span = TRUE_COLOUR["S2L2A"]
        return rgb(bands, [span] * 3)
    if spec.count >= 3:
        return rgb((1, 2, 3), [_stretch(s, (-1.0, 1.0)) for s in stats[:3]])
    return gray(*_stretch(stats[0], (0.0, 1.0)))
