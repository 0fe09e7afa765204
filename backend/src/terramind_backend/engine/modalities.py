"""What the engine needs to know per modality: channels, how to resample, and how outputs are stored.

Canonical names only (S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM, LULC, NDVI); the band orders are
TerraMind's pretraining orders (facts §2.2). Kept separate from the model package on purpose: the
engine and the validator run without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .products import PRODUCTS

_S2L2A_BANDS = ("B01 coastal aerosol", "B02 blue", "B03 green", "B04 red", "B05 red edge 1",
                "B06 red edge 2", "B07 red edge 3", "B08 NIR", "B8A narrow NIR", "B09 water vapour",
                "B11 SWIR 1", "B12 SWIR 2")
_S2L1C_BANDS = _S2L2A_BANDS[:10] + ("B10 cirrus",) + _S2L2A_BANDS[10:]


@dataclass(frozen=True)
class Modality:
    name: str
    channels: int
    band_names: Tuple[str, ...]
    resampling: str                 # rasterio Resampling name used when aligning onto the target grid
    optical: bool = False           # the default target grid follows the first optical input
    output: Optional[str] = None    # storage kind when generated: "classes" or "continuous"
    dtype: Optional[str] = None     # output dtype
    unit: str = ""


MODALITIES = {m.name: m for m in (
    Modality("S2L2A", 12, _S2L2A_BANDS, "bilinear", optical=True, output="continuous", dtype="uint16",
             unit="reflectance x 10000"),
    Modality("S2L1C", 13, _S2L1C_BANDS, "bilinear", optical=True, unit="reflectance x 10000"),
    Modality("RGB", 3, ("red", "green", "blue"), "bilinear", optical=True, unit="0-255"),
    Modality("S1GRD", 2, ("VV", "VH"), "bilinear", output="continuous", dtype="float32", unit="dB"),
    Modality("S1RTC", 2, ("VV", "VH"), "bilinear", output="continuous", dtype="float32", unit="dB"),
    Modality("DEM", 1, ("elevation",), "bilinear", output="continuous", dtype="float32", unit="m"),
    Modality("LULC", 1, ("land cover class",), "nearest", output="classes", dtype="uint8"),
    Modality("NDVI", 1, ("NDVI",), "bilinear", output="continuous", dtype="float32", unit="NDVI -1..1"),
)}

INPUT_MODALITIES = tuple(MODALITIES)
# TerraMind's sequence modality: a window's centre (lon, lat). Never read from a raster: options.use_location
# feeds it (engine.locations) and as an output it is a point layer (engine.points), not a GeoTIFF.
COORDINATES = "Coordinates"
_COORDINATE_NAMES = ("COORDINATES", "COORDS", "LOCATION")
GENERATION_OUTPUTS = ("S2L2A", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI", COORDINATES)
# Modalities with a tokenizer, i.e. what `reconstruct` can round-trip.
TOKENIZED = ("S2L2A", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI")

# LULC: the 10 classes (name, colour) of the v1 LULC tokenizer, index = class value. One definition, shared with
# the plugin (legend, styler) and the .qml writer: product_styles.json, where the caveat on the names is kept.
LULC_CLASSES = tuple((name, colour) for name, colour in PRODUCTS["lulc_classes"])


def resolve(name: str) -> Optional[str]:
    """Canonical spelling of a raster modality name (case-insensitive), or None if unknown."""
    key = str(name).strip().upper()
    return key if key in MODALITIES else None


def resolve_output(name: str) -> Optional[str]:
    """``resolve`` plus Coordinates (also spelled coords or location): what a generate output or TiM modality
    may be."""
    return COORDINATES if str(name).strip().upper() in _COORDINATE_NAMES else resolve(name)
