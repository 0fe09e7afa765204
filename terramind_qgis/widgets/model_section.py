"""Section 3 of the TerraMind dialog: model size and device."""
from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFormLayout

from ..vocabulary import DEVICES, MODEL_SIZES
from .choice_combo import fill_combo
from .eliding_combo import ElidingComboBox
from .input_row import caption
from .messages import MessageLabel
from .section_box import SectionBox


class ModelSection(SectionBox):
    """Size (with a speed hint under it) and device."""

    def __init__(self, parent=None):
        super().__init__("3 · Model", parent)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.size_combo = ElidingComboBox()
        self.size_combo.setObjectName("model_size")
        fill_combo(self.size_combo, MODEL_SIZES)
        self.size_hint = caption("")
        self.device_combo = ElidingComboBox()
        self.device_combo.setObjectName("device")
        fill_combo(self.device_combo, DEVICES)
        form.addRow("Size", self.size_combo)
        form.addRow("", self.size_hint)
        form.addRow("Device", self.device_combo)
        self.body.addLayout(form)
        self.model_error = MessageLabel("error")
        self.body.addWidget(self.model_error)

    def show_size_hint(self, task: str, outputs: list[str]) -> None:
        """The chosen size's speed hint; generation adds that each output brings its own tokenizer."""
        size = self.size_combo.currentData()
        hint = next(c.hint for c in MODEL_SIZES if c.value == size)
        if task == "generate" and outputs:
            hint += "; each generated output adds a ~0.3 B-parameter tokenizer"
        self.size_hint.setText(hint[:1].upper() + hint[1:])
