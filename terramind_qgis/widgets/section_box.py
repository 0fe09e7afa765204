"""The frame of the dialog's numbered sections: a titled group box whose widgets stack with the dialog's spacing."""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QGroupBox, QVBoxLayout


class SectionBox(QGroupBox):
    """A titled box; subclasses add their widgets to ``self.body``."""

    def __init__(self, title: str, parent=None):
        super().__init__(title, parent)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(10, 12, 10, 10)
        self.body.setSpacing(6)
