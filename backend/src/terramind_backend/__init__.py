"""TerraMind for QGIS inference backend: TerraMind 1.0 runtime + geospatial job engine."""

__version__ = "0.1.0"


def build_model(name: str, **kwargs):
    """Build a TerraMind model by TerraTorch registry name (lazy: importing the package stays light)."""
    from .models.registry import build_model as _build

    return _build(name, **kwargs)
