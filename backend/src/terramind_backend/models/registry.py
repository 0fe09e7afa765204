"""`build_model(name, **kwargs)`: TerraTorch's registry names and keyword arguments, our modules.

Names follow TerraTorch 1.1.1: ``terramind_v1_{tiny,small,base,large}`` (backbones),
``..._tim`` (Thinking-in-Modalities backbones), ``..._generate`` (any-to-any generation) and
``terramind_v1_tokenizer_{s2l2a,s1rtc,s1grd,dem,lulc,ndvi}``. Each family lives in its own module,
imported only when asked for.
"""
from __future__ import annotations

import re

SIZES = ("tiny", "small", "base", "large")
_PATTERN = re.compile(r"^terramind_v1_(?:(?P<size>tiny|small|base|large)(?P<variant>_tim|_generate)?|tokenizer_(?P<tok>s2l2a|s1rtc|s1grd|dem|lulc|ndvi))$")


def available_models() -> list:
    names = []
    for size in SIZES:
        names += [f"terramind_v1_{size}", f"terramind_v1_{size}_tim", f"terramind_v1_{size}_generate"]
    names += [f"terramind_v1_tokenizer_{t}" for t in ("s2l2a", "s1rtc", "s1grd", "dem", "lulc", "ndvi")]
    return names


def build_model(name: str, **kwargs):
    """Build a TerraMind model by its TerraTorch registry name (see module docstring)."""
    match = _PATTERN.match(str(name).strip())
    if not match:
        raise ValueError(f"Unknown TerraMind model {name!r}. Available: {', '.join(available_models())}")
    if match["tok"]:
        from .tokenizers import build_tokenizer

        return build_tokenizer(match["tok"], **kwargs)
    size, variant = match["size"], match["variant"]
    if variant == "_tim":
        from .tim import build_tim

        return build_tim(size, **kwargs)
    if variant == "_generate":
        from .generation import build_generation

        return build_generation(size, **kwargs)
    from .vit import build_backbone

    return build_backbone(size, **kwargs)
