"""Reusable widgets of the TerraMind dialog."""
