"""`build_model(name, **kwargs)`: TerraTorch's registry names and keyword arguments, our modules.

Names follow TerraTorch 1.1.1: ``terramind_v1_{tiny,small,base,large}`` (backbones),
``..._tim`` (Thinking-in-Modalities backbones), ``..._generate`` (any-to-any generation),
``terramind_v1_tokenizer_{s2l2a,s1rtc,s1grd,dem,lulc,ndvi}`` and ``terramind_v1_coords_tokenizer``; the names
and their weights are the rows of ``catalog.py``. Each family lives in its own module, imported only when
asked for.
"""
from __future__ import annotations

from ..catalog import Backbone, available_models, parse_model_name

__all__ = ["available_models", "build_model"]


def build_model(name: str, **kwargs):
    """Build a TerraMind model by its TerraTorch registry name (see module docstring)."""
    parsed = parse_model_name(name)  # ValueError listing every available name
    if not isinstance(parsed.weights, Backbone):
        from .tokenizers import build_tokenizer

        return build_tokenizer(parsed.name, **kwargs)
    if parsed.variant == "_tim":
        from .tim import build_tim

        return build_tim(parsed.size, **kwargs)
    if parsed.variant == "_generate":
        from .generation import build_generation

        return build_generation(parsed.size, **kwargs)
    from .vit import build_backbone

    return build_backbone(parsed.size, **kwargs)
