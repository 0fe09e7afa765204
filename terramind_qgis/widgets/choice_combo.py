"""Combo boxes filled from a vocabulary table (`vocabulary.Choice`s)."""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox


def fill_combo(combo: QComboBox, table) -> None:
    """One item per vocabulary choice: its label shown, its value as the item data, its hint as tooltip."""
    for choice in table:
        combo.addItem(choice.label, choice.value)
        if choice.hint:
            combo.setItemData(combo.count() - 1, choice.hint, Qt.ItemDataRole.ToolTipRole)
