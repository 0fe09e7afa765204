"""TerraMind 1.0 modalities: internal keys, name resolution, band lists and pretraining statistics.

The internal key strings (``untok_sen2l2a@224``, ``tok_lulc@224``, ``coords`` ...) are part of the
checkpoint contract: they name the state-dict entries (``encoder_embeddings.<key>.*``) and their
SHA-256 hash is the modality id the encoder-decoder uses for per-token masks. Never rename them.

Public API (imported by the backbone, TiM, generation, tokenizer and engine code):

- ``MODALITY_INFO[key] -> ModalityInfo``: kind ("image" raw pixels, "image_tokens" tokenized image,
  "sequence" text-like), channels, vocabulary size, tokenizer name, modality id.
- ``resolve_input_modality(name) -> key``: TerraTorch's ``build_modality_embeddings`` rule
  (``"S2L2A"``, ``"s2l2a"``, ``"S2L1C_L8"``, ``"Coordinates"``, ``"location"`` ... all resolve).
- ``resolve_output_modality(name) -> key``: the rule for generation outputs and TiM modalities
  (S2* outputs become ``tok_sen2l2a@224``; S1 defaults to GRD).
- ``PRETRAINED_BANDS[key]``: band order of the raw patch embeddings (for ``bands=``).
- ``PRETRAINING_MEAN[key]`` / ``PRETRAINING_STD[key]``: v1 standardization statistics.
- ``CANONICAL_NAMES``: our user-facing modality names -> internal input key.
- ``known_inputs(inputs, names)``: TerraTorch's input semantics, unknown input names dropped with a warning.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

__all__ = [
    "ModalityInfo", "MODALITY_INFO", "PRETRAINED_BANDS", "PRETRAINING_MEAN", "PRETRAINING_STD",
    "CANONICAL_NAMES", "UnknownModalityError", "modality_id", "resolve_input_modality",
    "resolve_output_modality", "known_input_names", "known_inputs",
]


class UnknownModalityError(ValueError):
    """A modality name that no TerraMind 1.0 rule resolves."""


def modality_id(key: str) -> int:
    """Id of a modality key as TerraMind computes it: sha256(key) mod 2**15 (used in token masks)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % (2 ** 15)


@dataclass(frozen=True)
class ModalityInfo:
    """One TerraMind 1.0 modality.

    kind: "image" (raw pixels through a linear patch embedding), "image_tokens" (ids of an image
    tokenizer, 16x16 pixels per token) or "sequence" (text-like ids, e.g. coordinates).
    tokenizer: name for ``models.tokenizers.build_tokenizer`` ("lulc", "coords", ...) or None.
    """

    key: str
    kind: str
    channels: Optional[int] = None        # raw image channels
    vocab_size: Optional[int] = None      # token vocabulary (image_tokens / sequence)
    max_length: Optional[int] = None      # sequence length of the encoder/decoder embedding
    tokenizer: Optional[str] = None
    patch_size: int = 16

    @property
    def id(self) -> int:
        return modality_id(self.key)

    @property
    def is_image(self) -> bool:
        return self.kind in ("image", "image_tokens")


_INFOS = [
    ModalityInfo("untok_sen2l2a@224", "image", channels=12),
    ModalityInfo("untok_sen2l1c@224", "image", channels=13),
    ModalityInfo("untok_sen2rgb@224", "image", channels=3),
    ModalityInfo("untok_sen1grd@224", "image", channels=2),
    ModalityInfo("untok_sen1rtc@224", "image", channels=2),
    ModalityInfo("untok_dem@224", "image", channels=1),
    ModalityInfo("tok_sen2l2a@224", "image_tokens", vocab_size=15360, tokenizer="s2l2a"),
    ModalityInfo("tok_sen1grd@224", "image_tokens", vocab_size=15360, tokenizer="s1grd"),
    ModalityInfo("tok_sen1rtc@224", "image_tokens", vocab_size=15360, tokenizer="s1rtc"),
    ModalityInfo("tok_dem@224", "image_tokens", vocab_size=15360, tokenizer="dem"),
    ModalityInfo("tok_lulc@224", "image_tokens", vocab_size=4375, tokenizer="lulc"),
    ModalityInfo("tok_ndvi@224", "image_tokens", vocab_size=15360, tokenizer="ndvi"),
    ModalityInfo("coords", "sequence", vocab_size=30000, max_length=4, tokenizer="coords"),
]
MODALITY_INFO: Dict[str, ModalityInfo] = {m.key: m for m in _INFOS}

# Our canonical user-facing names (JobSpec, UI, CLI) and the input key each one resolves to.
CANONICAL_NAMES: Dict[str, str] = {
    "S2L2A": "untok_sen2l2a@224", "S2L1C": "untok_sen2l1c@224", "RGB": "untok_sen2rgb@224",
    "S1GRD": "untok_sen1grd@224", "S1RTC": "untok_sen1rtc@224", "DEM": "untok_dem@224",
    "LULC": "tok_lulc@224", "NDVI": "tok_ndvi@224", "Coordinates": "coords",
}


def _normalise(name: str) -> str:
    """TerraTorch's spelling normalisation: lower case, s2->sen2, s1->sen1, text->caption, location->coords."""
    return (name.lower().replace("s2", "sen2").replace("s1", "sen1")
            .replace("text", "caption").replace("location", "coords"))


# (substring, key): the first substring found in the normalised name wins (order matters).
_INPUT_RULES: Tuple[Tuple[str, str], ...] = (
    ("sen2l2a", "untok_sen2l2a@224"), ("sen2l1c", "untok_sen2l1c@224"), ("sen1rtc", "untok_sen1rtc@224"),
    ("sen1grd", "untok_sen1grd@224"), ("rgb", "untok_sen2rgb@224"), ("dem", "untok_dem@224"),
    ("lulc", "tok_lulc@224"), ("ndvi", "tok_ndvi@224"), ("coord", "coords"),
)
_OUTPUT_RULES: Tuple[Tuple[str, str], ...] = (
    ("sen2", "tok_sen2l2a@224"), ("sen1rtc", "tok_sen1rtc@224"), ("sen1", "tok_sen1grd@224"),
    ("dem", "tok_dem@224"), ("lulc", "tok_lulc@224"), ("ndvi", "tok_ndvi@224"), ("coord", "coords"),
)


def known_input_names() -> str:
    return "S2L2A, S2L1C, RGB, S1GRD, S1RTC, DEM, LULC, NDVI, Coordinates"


def _resolve(name, rules, what: str, known: str) -> str:
    if not isinstance(name, str):
        raise UnknownModalityError(f"Modality names must be strings, got {name!r} ({type(name).__name__})")
    if name in MODALITY_INFO:
        return name
    lowered = _normalise(name)
    if "caption" in lowered:
        raise UnknownModalityError(f"{what} {name!r}: captions are a TerraMind 0.1 modality; "
                                   f"TerraMind 1.0 knows {known}")
    for needle, key in rules:
        if needle in lowered:
            return key
    raise UnknownModalityError(f"Unknown {what.lower()} {name!r}. TerraMind 1.0 knows {known} "
                               f"(case-insensitive, e.g. 's2l2a', 'S1GRD'), or add a new modality as "
                               f"{{'NAME': number_of_channels}}.")


def known_inputs(d: Mapping[str, object], known) -> Dict[str, object]:
    """The inputs whose names are among ``known`` (a model's modalities); others are dropped with a warning,
    as TerraTorch does, so whole batch dicts (with masks, file names ...) can be passed. A new dict."""
    for name in d:
        if name not in known:
            warnings.warn(f"Unknown input modality {name!r}: ignoring it (this model's modalities are "
                          f"{list(known)})", stacklevel=2)
    return {name: value for name, value in d.items() if name in known}


def resolve_input_modality(name: str) -> str:
    """Internal key of an input modality name, by TerraTorch's rules (first matching rule wins)."""
    return _resolve(name, _INPUT_RULES, "Input modality", known_input_names())


def resolve_output_modality(name: str) -> str:
    """Internal key of a generation output / TiM modality name (S2* -> tok_sen2l2a, S1 -> GRD)."""
    return _resolve(name, _OUTPUT_RULES, "Output modality", "S2L2A, S1GRD, S1RTC, DEM, LULC, NDVI, Coordinates")


_S2L2A_BANDS = ["COASTAL_AEROSOL", "BLUE", "GREEN", "RED", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3",
                "NIR_BROAD", "NIR_NARROW", "WATER_VAPOR", "SWIR_1", "SWIR_2"]
PRETRAINED_BANDS: Dict[str, list] = {
    "untok_sen2l2a@224": list(_S2L2A_BANDS),
    "untok_sen2l1c@224": _S2L2A_BANDS[:10] + ["CIRRUS"] + _S2L2A_BANDS[10:],
    "untok_sen2rgb@224": ["RED", "GREEN", "BLUE"],  # the code's order (the docs say BLUE, GREEN, RED)
    "untok_sen1grd@224": ["VV", "VH"],
    "untok_sen1rtc@224": ["VV", "VH"],
    "untok_dem@224": ["DEM"],
}

_S2L2A_MEAN = [1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234, 3132.22,
               3162.988, 2424.884, 1857.648]
_S2L2A_STD = [2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918, 1753.829,
              1797.379, 1434.261, 1334.311]
# v1 pretraining statistics: x_std = (x - mean[c]) / std[c]. Backbones never standardize by themselves.
PRETRAINING_MEAN: Dict[str, list] = {
    "untok_sen2l2a@224": _S2L2A_MEAN,
    "untok_sen2l1c@224": [2357.089, 2137.385, 2018.788, 2082.986, 2295.651, 2854.537, 3122.849, 3040.56,
                          3306.481, 1473.847, 506.07, 2472.825, 1838.929],
    "untok_sen2rgb@224": [87.271, 80.931, 66.667],
    "untok_sen1grd@224": [-12.599, -20.293],
    "untok_sen1rtc@224": [-10.93, -17.329],
    "untok_dem@224": [670.665],
    "tok_sen2l2a@224": _S2L2A_MEAN,
    "tok_sen1grd@224": [-12.599, -20.293],
    "tok_sen1rtc@224": [-10.93, -17.329],
    "tok_dem@224": [670.665],
    "tok_lulc@224": [0.0],
    "tok_ndvi@224": [0.327],
}
PRETRAINING_STD: Dict[str, list] = {
    "untok_sen2l2a@224": _S2L2A_STD,
    "untok_sen2l1c@224": [1624.683, 1675.806, 1557.708, 1833.702, 1823.738, 1733.977, 1732.131, 1679.732,
                          1727.26, 1024.687, 442.165, 1331.411, 1160.419],
    "untok_sen2rgb@224": [58.767, 47.663, 42.631],
    "untok_sen1grd@224": [5.195, 5.890],
    "untok_sen1rtc@224": [4.391, 4.459],
    "untok_dem@224": [951.272],
    "tok_sen2l2a@224": _S2L2A_STD,
    "tok_sen1grd@224": [5.195, 5.890],
    "tok_sen1rtc@224": [4.391, 4.459],
    "tok_dem@224": [951.272],
    "tok_lulc@224": [1.0],
    "tok_ndvi@224": [0.322],
}
