"""Processing toolbox provider: TerraMind algorithms for the toolbox, graphical models, batch mode and qgis_process.

Every algorithm only turns its Processing parameters into a JobSpec (``jobspec.py``) and runs it
through the same backend client as the dialog (``base.py``); no torch or numpy on this side.
"""
from .provider import TerraMindProvider

__all__ = ["TerraMindProvider"]
