"""The top of the TerraMind dialog: logo, title and what the tool does, and the rule under them."""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFont, QIcon
from qgis.PyQt.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout

from ..paths import icon_path
from .input_row import caption


def dialog_header() -> QHBoxLayout:
    header = QHBoxLayout()
    header.setSpacing(12)
    logo = QLabel()
    logo.setPixmap(QIcon(icon_path()).pixmap(48, 48))
    logo.setFixedSize(52, 52)
    header.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
    titles = QVBoxLayout()
    titles.setSpacing(0)
    title = QLabel("TerraMind")
    font = QFont(title.font())
    font.setPointSizeF(font.pointSizeF() * 1.6)
    font.setBold(True)
    title.setFont(font)
    subtitle = caption("Turn the rasters you have into the ones you need — land cover, NDVI, elevation, "
                       "radar or optical — or into embeddings, with IBM & ESA's TerraMind 1.0 foundation "
                       "model. Jobs run in the background; QGIS stays usable.")
    titles.addWidget(title)
    titles.addWidget(subtitle)
    header.addLayout(titles, 1)
    return header


def header_rule() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setStyleSheet("color: #d5dae1;")
    return line
