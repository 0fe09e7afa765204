"""Small labels that show a problem, a warning or a hint right under the widget they are about."""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QLabel

ERROR_COLOUR = "#c62828"
WARNING_COLOUR = "#a15c00"
HINT_COLOUR = "#5f6b7a"

_STYLES = {
    "error": f"color: {ERROR_COLOUR}; font-weight: 600;",
    "warning": f"color: {WARNING_COLOUR};",
    "hint": f"color: {HINT_COLOUR};",
}
_MARKS = {"error": "⚠ ", "warning": "● ", "hint": ""}


class MessageLabel(QLabel):
    """A word-wrapped label, hidden while it has nothing to say."""

    def __init__(self, level: str = "error", parent=None):
        super().__init__(parent)
        self.level = level
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(_STYLES[level])
        self.setVisible(False)
        self._message = ""

    def show_message(self, message: str | None, level: str | None = None) -> None:
        """Show (or hide, with None) a message; `level` switches the look, e.g. a hint that needs care."""
        if level is not None and level != self.level:
            self.level = level
            self.setStyleSheet(_STYLES[level])
        self._message = message or ""
        self.setText(_MARKS[self.level] + self._message if self._message else "")
        self.setVisible(bool(self._message))

    def message(self) -> str:
        """The text without its leading mark (what tests compare)."""
        return self._message
