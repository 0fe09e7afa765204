"""Section 1 of the TerraMind dialog: the input rasters, one row per modality (`input_row.InputList`)."""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QHBoxLayout, QPushButton

from .input_row import InputList, caption
from .messages import MessageLabel
from .section_box import SectionBox


class InputsSection(SectionBox):
    """The input rows, their shared problem line and the "Add input" button."""

    def __init__(self, parent=None):
        super().__init__("1 · Inputs", parent)
        self.body.addWidget(caption("One raster layer per modality. The modality and band order are guessed "
                                    "from the bands; check them, then add more inputs for better results."))
        self.input_list = InputList()
        self.body.addWidget(self.input_list)
        self.inputs_error = MessageLabel("error")
        self.body.addWidget(self.inputs_error)
        self.add_input_button = QPushButton(QgsApplication.getThemeIcon("/symbologyAdd.svg"), "Add input")
        self.add_input_button.setToolTip("Use another raster as an additional modality "
                                         "(e.g. Sentinel-1 beside Sentinel-2)")
        self.add_input_button.clicked.connect(self.input_list.add_row)
        row = QHBoxLayout()
        row.addWidget(self.add_input_button)
        row.addStretch(1)
        self.body.addLayout(row)

    def layers(self) -> list:
        """The rows' layers, in row order, skipping rows without one."""
        return [row.layer() for row in self.input_list.rows if row.layer() is not None]

    def first_layer(self):
        """The first row's layer that is set: it decides the default area, CRS and pixel size."""
        return next(iter(self.layers()), None)
