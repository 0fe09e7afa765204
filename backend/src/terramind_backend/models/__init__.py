"""Our lean, state-dict-compatible TerraMind 1.0 implementation (backbones, TiM, generation, tokenizers)."""
from .registry import available_models, build_model

__all__ = ["available_models", "build_model"]
