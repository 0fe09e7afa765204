"""The plugin's vocabulary: every closed list a user picks from, as (value, label) pairs, defined once.

The dialog, the settings dialog and the Processing algorithms build their combo boxes and enum parameters
from these tables, and ``jobspec_builder`` checks values against them. Values are what the JobSpec carries
(docs/jobspec.md); the backend checks them again. Pure Python (no qgis import), like ``modalities.py``; the LULC classes are read from the product
definitions shared with the engine.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from .paths import PRODUCT_STYLES_FILE


class Choice(NamedTuple):
    value: str
    label: str
    hint: str = ""      # a tooltip: what choosing it means


def values(table) -> tuple:
    return tuple(choice.value for choice in table)


def labels(table) -> list:
    return [choice.label for choice in table]


def index_of(table, value) -> int:
    """Position of ``value`` in ``table`` (Processing enum parameters store positions)."""
    return values(table).index(value)


# Model sizes with the parameters of the full encoder-decoder (facts §1.4).
MODEL_SIZES = (
    Choice("tiny", "Tiny · 52 M parameters", "fastest; fine on a CPU"),
    Choice("small", "Small · 124 M parameters", "fast; a CPU works for small areas"),
    Choice("base", "Base · 376 M parameters", "better quality; a GPU is recommended"),
    Choice("large", "Large · 942 M parameters", "best quality; needs a GPU with ≥ 12 GB"),
)
# The dialog's and Processing's default: the only size that runs well on a CPU and the fake hub's size.
DEFAULT_MODEL_SIZE = "tiny"

DEVICES = (
    Choice("auto", "Automatic (GPU if available)"),
    Choice("cpu", "CPU"),
    Choice("cuda", "NVIDIA GPU (CUDA)"),
    Choice("mps", "Apple GPU (MPS)"),
)

PRECISIONS = (
    Choice("auto", "Automatic (bf16 where measured faster, fp32 otherwise)"),
    Choice("fp32", "Exact fp32 (matches TerraTorch, slower)"),
    Choice("bf16", "bf16"),
)
PRECISION_HINT = ("Arithmetic of the model. bf16 is 2-3x faster where the hardware supports it and changes values "
                  "by about 1 % (generation: same sampling, other random draws); fp32 reproduces TerraTorch "
                  "exactly, with a seed its samples too.")

EMBED_MODES = (
    Choice("embed", "TerraMind encoder", "The backbone's features of the inputs"),
    Choice("tim-embed", "Thinking-in-Modalities (TiM)",
           "TiM first generates the chosen modalities, then encodes inputs and generated tokens together"),
)

MERGE_METHODS = (
    Choice("mean", "Mean over modalities"),
    Choice("max", "Maximum over modalities"),
    Choice("concat", "Concatenate (bands = modalities × width)"),
)
# TiM merges its modalities with these only (the engine's task table says the same).
TIM_MERGE_METHODS = ("mean", "max")


class LulcClass(NamedTuple):
    value: int
    label: str
    colour: str


# The product definitions the engine styles its outputs with (engine/product_styles.json: LULC classes, ramps,
# ranges), read once for the plugin: the legend here and the styler (layers.py) take them from this.
PRODUCTS = json.loads(PRODUCT_STYLES_FILE.read_text(encoding="utf-8"))

# TerraMind v1 LULC classes, 0 = no data (the JSON file also says where the names come from).
LULC_CLASSES = tuple(LulcClass(value, label, colour) for value, (label, colour) in enumerate(PRODUCTS["lulc_classes"]))

# How a modality is named where it is picked: as an input (with its band layout) and as a generated output.
# Both in the Processing toolbox's order: enum positions (OUTPUTS, MODALITY, TIM_MODALITIES) are stored by
# saved models and scripts, so this order never changes.
INPUT_MODALITY_LABELS = (
    Choice("S2L2A", "Sentinel-2 L2A (12 bands: B1–B12 without B10)"),
    Choice("S2L1C", "Sentinel-2 L1C (13 bands: B1–B12)"),
    Choice("RGB", "RGB (3 bands: red, green, blue)"),
    Choice("S1GRD", "Sentinel-1 GRD (2 bands: VV, VH)"),
    Choice("S1RTC", "Sentinel-1 RTC (2 bands: VV, VH)"),
    Choice("DEM", "DEM (1 band, metres)"),
    Choice("LULC", "Land cover (1 band, ESRI LULC classes)"),
    Choice("NDVI", "NDVI (1 band, -1…1)"),
)
OUTPUT_MODALITY_LABELS = (
    Choice("S2L2A", "Sentinel-2 L2A"),
    Choice("S1GRD", "Sentinel-1 GRD (dB)"),
    Choice("S1RTC", "Sentinel-1 RTC (dB)"),
    Choice("DEM", "Elevation (DEM)"),
    Choice("LULC", "Land cover (10 classes)"),
    Choice("NDVI", "NDVI"),
    Choice("Coordinates", "Location (points)"),
)
