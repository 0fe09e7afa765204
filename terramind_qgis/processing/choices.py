"""Processing parameters → the plugin's `JobChoices` pieces: text parameters (band mappings, value scaling)
parsed, raster layers turned into `InputChoice`s, builder problems turned into one exception message.

Parameter syntax errors are raised here as `QgsProcessingException`s naming the parameter; everything about
the job itself is checked once, by `jobspec_builder.check_job`, for the dialog and Processing alike.
"""
from __future__ import annotations

from qgis.core import QgsProcessingException

from ..jobspec_builder import InputChoice, Problem
from ..layer_sources import band_descriptions, layer_file
from ..modalities import MODALITIES, RasterFacts, default_band_mapping, mapping_from_names

# Files whose band count differs from the modality's but whose layout modalities.py knows
# (13-band L1C file used as S2L2A; RGB from a Sentinel-2 stack; RGB + alpha).
_KNOWN_LAYOUTS = {("S2L2A", 13), ("RGB", 12), ("RGB", 13), ("RGB", 4)}


def _per_modality(text: str, what: str, example: str) -> dict:
    """``"A=1,2; B=3"`` -> ``{"A": ["1", "2"], "B": ["3"]}``; ``what``/``example`` word the errors."""
    values = {}
    for part in (text or "").replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().upper()
        if not sep or not key:
            raise QgsProcessingException(f"{what} '{part}' should look like {example}.")
        if key in values:
            raise QgsProcessingException(f"{what} for {key} is given twice.")
        values[key] = [v for v in raw.replace(" ", "").split(",") if v]
    return values


def parse_band_mapping(text: str) -> dict:
    """``"S2L2A=1,2,3; S1GRD=2,1"`` -> ``{"S2L2A": [1, 2, 3], "S1GRD": [2, 1]}`` (1-based band indexes)."""
    mapping = {}
    for key, raw in _per_modality(text, "Band mapping", "MODALITY=1,2,3 (e.g. S1RTC=2,1)").items():
        try:
            numbers = [int(b) for b in raw]
        except ValueError:
            raise QgsProcessingException(
                f"Band mapping for {key}: '{','.join(raw)}' is not a list of band numbers.") from None
        if not numbers or min(numbers) < 1:
            raise QgsProcessingException(f"Band mapping for {key}: band numbers start at 1.")
        mapping[key] = numbers
    return mapping


def parse_scaling(text: str) -> dict:
    """``"S2L2A=10000; DEM=1,-100"`` -> ``{"S2L2A": (10000.0, None), "DEM": (1.0, -100.0)}`` (scale, offset)."""
    scaling = {}
    for key, raw in _per_modality(text, "Value scaling", "MODALITY=SCALE[,OFFSET] (e.g. S2L2A=10000)").items():
        try:
            numbers = [float(v) for v in raw]
        except ValueError:
            raise QgsProcessingException(f"Value scaling for {key}: '{','.join(raw)}' is not SCALE[,OFFSET].") from None
        if len(numbers) not in (1, 2) or numbers[0] == 0:
            raise QgsProcessingException(
                f"Value scaling for {key}: give a non-zero scale and optionally an offset, e.g. {key}=10000.")
        scaling[key] = (numbers[0], numbers[1] if len(numbers) == 2 else None)
    return scaling


def input_choice(modality: str, layer, bands=None, scaling=None) -> InputChoice:
    """One input: the layer's file and its bands in the model's order.

    Without an explicit mapping the bands are found as the dialog finds them (band descriptions, then
    the file's order when the count fits, then known layouts); anything else must be mapped by hand,
    since taking the first bands of an unknown stack would silently feed the model wrong data.
    """
    path = layer_file(layer)
    if path is None:
        raise QgsProcessingException(
            f"Layer '{layer.name()}' comes from the '{layer.providerType()}' provider; TerraMind reads raster "
            "files. Save it as a GeoTIFF first (Export > Save As…).")
    count = layer.bandCount()
    wanted = MODALITIES[modality].band_count
    if bands is None:
        descriptions = band_descriptions(path)
        if count != wanted and (modality, count) not in _KNOWN_LAYOUTS and \
                mapping_from_names(modality, descriptions) is None:
            raise QgsProcessingException(
                f"{modality} input '{layer.name()}' has {count} band(s) but {modality} needs {wanted} "
                f"({', '.join(MODALITIES[modality].bands)}). Choose the bands with a band mapping, e.g. "
                f"BANDS=\"{modality}={','.join(str(i) for i in range(1, wanted + 1))}\".")
        bands = default_band_mapping(modality, RasterFacts(band_count=count, descriptions=descriptions))
    scale, offset = scaling or (None, None)
    return InputChoice(modality=modality, path=path, band_count=count, bands=list(bands), scale=scale, offset=offset)


def problems_message(problems: list[Problem]) -> str:
    """Builder problems as one exception text; input problems say which modality they concern."""
    def one(problem: Problem) -> str:
        parts = problem.field.split(".")
        if parts[0] == "inputs" and len(parts) > 1 and not problem.message.startswith(parts[1]):
            return f"{parts[1]} input: {problem.message}."
        return f"{problem.message}."
    return " ".join(one(p) for p in problems)
