"""What the dialog knows about TerraMind's modalities, and how it guesses them from a raster.

Pure Python (no qgis import) so it is testable anywhere and reusable by the Processing algorithms.
The caller describes a raster with `RasterFacts` (band count, data type, band descriptions, name hints and,
for one-band rasters, an optional value range); `guess_modality` returns the most likely modality with a
reason, and `default_band_mapping` the 1-based raster bands in the model's pretrained band order.

Decisions worth knowing:
- Band count decides first, names refine: 12 → S2L2A, 13 → S2L1C, 3 (or 4 = RGB + alpha) → RGB,
  2 → Sentinel-1, 1 → DEM. Band descriptions such as "B04", "Red", "VV" reorder bands or break ties;
  file and layer names ("L2A", "grd", "ndvi") only choose between modalities the band count allows.
- Two-band rasters default to S1RTC: radiometrically terrain-corrected backscatter (gamma0, e.g. Planetary
  Computer `sentinel-1-rtc`, ASF/OPERA RTC, CDSE NRB) is what users usually hold as a map-projected GeoTIFF.
  "grd" or "sigma0" in a name or description switches to S1GRD.
- One-band rasters: 8-bit → LULC (a class map), float with values inside [-1, 1] or an "ndvi" hint → NDVI,
  everything else → DEM.
- A 13-band Sentinel-2 file used as S2L2A (e.g. a name says "L2A") drops B10 (cirrus), band 11 in the
  L1C layout, because S2L2A has no cirrus band.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# -- modality table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modality:
    name: str                      # canonical name used in the JobSpec, UI and CLI
    title: str                     # short human label
    bands: tuple[str, ...]         # model band names in pretrained order
    kind: str                      # optical | sar | elevation | classes | index
    description: str
    can_input: bool = True
    can_output: bool = False

    @property
    def band_count(self) -> int:
        return len(self.bands)


S2L2A_BANDS = ("COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
               "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "SWIR_1", "SWIR_2")
S2L1C_BANDS = S2L2A_BANDS[:10] + ("CIRRUS",) + S2L2A_BANDS[10:]

MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("S2L2A", "Sentinel-2 L2A", S2L2A_BANDS, "optical",
             "Sentinel-2 surface reflectance (×10000), 12 bands without B10", can_output=True),
    Modality("S2L1C", "Sentinel-2 L1C", S2L1C_BANDS, "optical",
             "Sentinel-2 top-of-atmosphere reflectance (×10000), 13 bands"),
    Modality("RGB", "RGB", ("RED", "GREEN", "BLUE"), "optical",
             "Sentinel-2 true colour, 8-bit (0–255)"),
    Modality("S1GRD", "Sentinel-1 GRD", ("VV", "VH"), "sar",
             "Sentinel-1 GRD backscatter sigma0 in dB", can_output=True),
    Modality("S1RTC", "Sentinel-1 RTC", ("VV", "VH"), "sar",
             "Sentinel-1 terrain-corrected backscatter gamma0 in dB", can_output=True),
    Modality("DEM", "Elevation", ("DEM",), "elevation", "Digital elevation model in metres", can_output=True),
    Modality("LULC", "Land cover", ("LULC",), "classes", "Land use / land cover classes 0–9 (ESRI LULC)",
             can_output=True),
    Modality("NDVI", "NDVI", ("NDVI",), "index", "Normalized difference vegetation index, −1 … 1",
             can_output=True),
    Modality("Coordinates", "Location", ("lon", "lat"), "location",
             "Where TerraMind places each window (lon, lat): a point layer with the true centre and the distance",
             can_input=False, can_output=True),
)}

INPUT_MODALITIES = tuple(name for name, m in MODALITIES.items() if m.can_input)
OUTPUT_MODALITIES = ("LULC", "NDVI", "DEM", "S1GRD", "S1RTC", "S2L2A", "Coordinates")
# Outputs that are not rasters: the file suffix the backend expects for them (docs/jobspec.md)
VECTOR_OUTPUT_SUFFIX = {"Coordinates": ".gpkg"}

# Sentinel-2 band codes, shown next to the model band names in the band-mapping editor.
BAND_CODES = {
    "COASTAL_AEROSOL": "B01", "BLUE": "B02", "GREEN": "B03", "RED": "B04", "RED_EDGE_1": "B05",
    "RED_EDGE_2": "B06", "RED_EDGE_3": "B07", "NIR_BROAD": "B08", "NIR_NARROW": "B8A", "WATER_VAPOR": "B09",
    "CIRRUS": "B10", "SWIR_1": "B11", "SWIR_2": "B12",
}

# Words (lower-case, non-alphanumerics removed) that name a model band in a band description.
# Covers Sentinel-2 codes with and without the zero, STAC common names and plain English.
_BAND_ALIASES = {
    "COASTAL_AEROSOL": ("b1", "b01", "coastal", "aerosol", "coastalaerosol", "ultrablue"),
    "BLUE": ("b2", "b02", "blue"),
    "GREEN": ("b3", "b03", "green"),
    "RED": ("b4", "b04", "red"),
    "RED_EDGE_1": ("b5", "b05", "rededge1", "re1", "vre1"),
    "RED_EDGE_2": ("b6", "b06", "rededge2", "re2", "vre2"),
    "RED_EDGE_3": ("b7", "b07", "rededge3", "re3", "vre3"),
    "NIR_BROAD": ("b8", "b08", "nir", "nirbroad", "nir08broad"),
    "NIR_NARROW": ("b8a", "nirnarrow", "nir08", "narrownir", "rededge4", "re4"),
    "WATER_VAPOR": ("b9", "b09", "watervapor", "watervapour", "nir09"),
    "CIRRUS": ("b10", "cirrus", "swircirrus"),
    "SWIR_1": ("b11", "swir1", "swir16"),
    "SWIR_2": ("b12", "swir2", "swir22"),
    "VV": ("vv", "sigma0vv", "gamma0vv", "vvdb"),
    "VH": ("vh", "sigma0vh", "gamma0vh", "vhdb"),
    "DEM": ("dem", "elevation", "height", "altitude", "dsm", "dtm"),
    "LULC": ("lulc", "landcover", "landuse", "classes", "class"),
    "NDVI": ("ndvi",),
}
_ALIAS_TO_BAND = {alias: band for band, aliases in _BAND_ALIASES.items() for alias in aliases}

# Words in file/layer names or descriptions that point to one modality.
_MODALITY_HINTS = {
    "S2L2A": ("s2l2a", "l2a", "msil2a", "boa", "sr", "surfacereflectance"),
    "S2L1C": ("s2l1c", "l1c", "msil1c", "toa"),
    "RGB": ("rgb", "s2rgb", "truecolor", "truecolour", "tci", "visual"),
    "S1GRD": ("s1grd", "grd", "sigma0", "iwgrdh"),
    "S1RTC": ("s1rtc", "rtc", "gamma0", "terraincorrected"),
    "DEM": ("dem", "elevation", "srtm", "copdem", "dsm", "dtm", "glo30", "height"),
    "LULC": ("lulc", "landcover", "landuse", "worldcover", "dynamicworld"),
    "NDVI": ("ndvi",),
}

_BYTE_TYPES = {"byte", "uint8"}
_FLOAT_TYPES = {"float16", "float32", "float64", "cfloat32", "cfloat64"}

# -- describing a raster ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RasterFacts:
    """What the guesser may know about a raster; the dialog fills it from a QgsRasterLayer."""

    band_count: int
    data_type: str = "unknown"                 # GDAL-ish name, any case: Byte, UInt16, Int16, Float32, …
    descriptions: tuple[str, ...] = ()         # one per band; empty strings for unnamed bands
    hints: tuple[str, ...] = ()                # layer name, file name, folder names
    value_range: tuple[float, float] | None = None   # only looked at for one-band rasters

    @property
    def is_byte(self) -> bool:
        return self.data_type.lower() in _BYTE_TYPES

    @property
    def is_float(self) -> bool:
        return self.data_type.lower() in _FLOAT_TYPES


@dataclass(frozen=True)
class Guess:
    modality: str | None                       # None: nothing fits, the user has to choose
    confidence: str                            # "high" (names agree), "medium" (band count), "low"
    reason: str
    alternatives: tuple[str, ...] = field(default=())   # other modalities the band count allows


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _candidates(text: str) -> list[str]:
    """Whole string, single words and neighbouring word pairs, compacted ("Red Edge 1" → "rededge1")."""
    words = _words(text)
    out = ["".join(words)] + words + [a + b for a, b in zip(words, words[1:])]
    out += ["".join(words[i:i + 3]) for i in range(len(words) - 2)]
    return [c for c in out if c]


def band_name_from_description(description: str) -> str | None:
    """The model band a description names ("B04", "Red", "B8A (865 nm)", "Sigma0_VV_db"), or None.

    The longest matching alias wins, so "Red Edge 1" is RED_EDGE_1 and not RED.
    """
    best, best_len = None, 0
    for candidate in _candidates(description or ""):
        band = _ALIAS_TO_BAND.get(candidate)
        if band is not None and len(candidate) > best_len:
            best, best_len = band, len(candidate)
    return best


def _hinted_modalities(texts) -> set[str]:
    found = set()
    for text in texts:
        tokens = set(_candidates(text))
        # File stems such as "S2L2A_2021" or "sentinel1_grd" split into words; check words and compacts.
        for modality, hints in _MODALITY_HINTS.items():
            if tokens.intersection(hints):
                found.add(modality)
    return found


def _named_bands(facts: RasterFacts) -> list[str | None]:
    return [band_name_from_description(d) for d in facts.descriptions]


# -- band mappings ----------------------------------------------------------------------------------


def mapping_from_names(modality: str, descriptions) -> list[int] | None:
    """1-based raster bands in the model's order, found by band descriptions; None unless all are named."""
    wanted = MODALITIES[modality].bands
    position = {}
    for index, description in enumerate(descriptions, start=1):
        band = band_name_from_description(description)
        if band is not None and band not in position:
            position[band] = index
    if all(b in position for b in wanted):
        return [position[b] for b in wanted]
    return None


def default_band_mapping(modality: str, facts: RasterFacts) -> list[int | None]:
    """The band mapping the editor starts from: one entry per model band, None where unknown.

    Order of preference: band descriptions; the file's own order when the band count matches; known
    layouts (13-band L1C → S2L2A without B10; 12/13-band Sentinel-2 → RGB from B04, B03, B02; RGB + alpha).
    """
    wanted = MODALITIES[modality].bands
    named = mapping_from_names(modality, facts.descriptions)
    if named is not None:
        return named
    n = facts.band_count
    if n == len(wanted):
        return list(range(1, n + 1))
    if modality == "S2L2A" and n == 13:
        return [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]     # L1C layout: band 11 is B10 (cirrus)
    if modality == "RGB" and n in (12, 13):
        return [4, 3, 2]                                   # B04, B03, B02 in either Sentinel-2 layout
    if modality == "RGB" and n == 4:
        return [1, 2, 3]                                   # RGBA
    mapping: list[int | None] = [None] * len(wanted)
    for i in range(min(n, len(wanted))):
        mapping[i] = i + 1
    return mapping


def mapping_problem(modality: str, mapping, band_count: int) -> str | None:
    """A message when a band mapping cannot be used, else None."""
    wanted = MODALITIES[modality].bands
    if len(mapping) != len(wanted):
        return f"{modality} needs {len(wanted)} bands, the mapping has {len(mapping)}"
    missing = [name for name, band in zip(wanted, mapping) if band is None]
    if missing:
        return f"Choose a raster band for {', '.join(missing)}"
    out_of_range = [b for b in mapping if not 1 <= b <= band_count]
    if out_of_range:
        return f"Band {out_of_range[0]} does not exist (the raster has {band_count})"
    repeated = sorted({b for b in mapping if mapping.count(b) > 1})
    if repeated and len(wanted) > 1:
        return f"Raster band {repeated[0]} is used for more than one model band"
    return None


def is_identity(mapping, band_count: int) -> bool:
    """True when the mapping is 'all bands in file order', written as null in the JobSpec."""
    return list(mapping) == list(range(1, band_count + 1))


# -- guessing ---------------------------------------------------------------------------------------


def _by_band_count(facts: RasterFacts) -> tuple[str | None, tuple[str, ...], str]:
    """(default modality, modalities this band count allows, reason) from band count and data type."""
    n = facts.band_count
    if n == 12:
        return "S2L2A", ("S2L2A",), "12 bands: Sentinel-2 L2A layout"
    if n == 13:
        return "S2L1C", ("S2L1C", "S2L2A"), "13 bands: Sentinel-2 L1C layout"
    if n in (3, 4):
        what = "3 bands" if n == 3 else "4 bands (RGB + alpha)"
        if facts.is_byte:
            return "RGB", ("RGB",), f"{what}, 8-bit: true colour"
        return "RGB", ("RGB",), f"{what} but not 8-bit: RGB expects values 0–255"
    if n == 2:
        return "S1RTC", ("S1RTC", "S1GRD"), "2 bands: Sentinel-1 VV, VH (RTC unless named GRD)"
    if n == 1:
        if facts.is_byte:
            return "LULC", ("LULC", "DEM"), "1 band, 8-bit: a class map"
        low_high = facts.value_range
        if facts.is_float and low_high is not None and -1.0 <= low_high[0] and low_high[1] <= 1.0:
            return "NDVI", ("NDVI", "DEM"), "1 band, float values within −1 … 1: NDVI"
        return "DEM", ("DEM", "NDVI", "LULC"), "1 band: elevation"
    return None, (), f"{n} bands match no TerraMind modality"


def guess_modality(facts: RasterFacts) -> Guess:
    """The most likely modality for a raster, with the reason shown to the user as a tooltip."""
    default, allowed, reason = _by_band_count(facts)
    names = [b for b in _named_bands(facts) if b is not None]
    hinted = _hinted_modalities(tuple(facts.hints) + tuple(facts.descriptions))

    # Descriptions that name every band of a modality settle it, whatever the band count.
    for modality in ("S2L1C", "S2L2A", "RGB"):
        if mapping_from_names(modality, facts.descriptions) is None:
            continue
        if modality == "S2L1C" and "S2L2A" in hinted and "S2L1C" not in hinted:
            return Guess("S2L2A", "high", "bands named like Sentinel-2 and 'L2A' in the name;"
                         " B10 (cirrus) is left out", ("S2L1C",))
        if modality == "RGB" and not facts.is_byte:
            return Guess("RGB", "low", "band descriptions name red, green and blue, but the values are not "
                         "8-bit: RGB expects 0–255", tuple(a for a in allowed if a != modality))
        return Guess(modality, "high", f"band descriptions name all {modality} bands",
                     tuple(a for a in allowed if a != modality))

    if default is None:
        return Guess(None, "low", reason + "; choose the modality and map the bands by hand")

    chosen, confidence = default, "medium"
    if facts.band_count == 2 and {"VV", "VH"} <= set(names):
        confidence = "high"
        reason = "bands named VV and VH: Sentinel-1"
    if facts.band_count == 1 and names and names[0] in allowed:
        chosen, confidence, reason = names[0], "high", f"band named like {names[0]}"
    preferred = [m for m in allowed if m in hinted]
    if len(preferred) == 1 and preferred[0] != chosen:
        chosen, confidence = preferred[0], "high"
        reason = f"{reason}; the name says {chosen}"
        if chosen == "S2L2A" and facts.band_count == 13:
            reason += ", so B10 (cirrus) is left out"
    elif len(preferred) == 1:
        confidence = "high"
    return Guess(chosen, confidence, reason, tuple(a for a in allowed if a != chosen))


def hints_from_path(path: str, layer_name: str = "") -> tuple[str, ...]:
    """Name hints: the layer name, the file stem and the two folders above it."""
    parts = re.split(r"[\\/]", path.split("|")[0])
    stem = parts[-1].rsplit(".", 1)[0] if parts else ""
    return tuple(x for x in (layer_name, stem, *parts[-3:-1]) if x)
