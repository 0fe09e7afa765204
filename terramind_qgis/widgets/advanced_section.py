"""The folded "Advanced" section of the TerraMind dialog: tiling, sampling, precision and input options."""
from __future__ import annotations

from qgis.gui import QgsCollapsibleGroupBox, QgsSpinBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout

from ..vocabulary import PRECISION_HINT, PRECISIONS
from .choice_combo import fill_combo
from .eliding_combo import ElidingComboBox
from .messages import MessageLabel


def _spin(name: str, lo: int, hi: int, value: int, step: int, suffix: str, tip: str) -> QgsSpinBox:
    widget = QgsSpinBox()
    widget.setObjectName(name)
    widget.setRange(lo, hi)
    widget.setSingleStep(step)
    widget.setValue(value)
    widget.setClearValue(value)
    widget.setSuffix(suffix)
    widget.setToolTip(tip)
    return widget


class AdvancedSection(QgsCollapsibleGroupBox):
    """Window, overlap, batch size, diffusion steps, seed, precision, standardization and location input."""

    def __init__(self, parent=None):
        super().__init__("Advanced", parent)
        self.setObjectName("advanced")
        self.setCollapsed(True)
        self.setSaveCollapsedState(False)
        form = QFormLayout(self)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.window_spin = _spin("window", 16, 4096, 224, 16, " px", "Tile size fed to the model; TerraMind was "
                                 "trained on 224 px")
        self.overlap_spin = _spin("overlap", 0, 2048, 32, 16, " px", "Overlap between tiles; blended smoothly "
                                  "to hide seams")
        self.batch_spin = _spin("batch", 1, 1024, 8, 1, "", "Tiles per model call; lower it if memory runs out")
        self.steps_spin = _spin("timesteps", 1, 1000, 10, 1, "", "Diffusion steps for image outputs "
                                "(S2, S1, DEM, NDVI): more is slower and a little sharper")
        self.seed_spin = _spin("seed", 0, 2**31 - 1, 0, 1, "", "Same seed and inputs give the same result")
        self.standardize_check = QCheckBox("Standardize inputs with the pre-training statistics")
        self.standardize_check.setChecked(True)
        self.precision_combo = ElidingComboBox()
        fill_combo(self.precision_combo, PRECISIONS)
        self.precision_combo.setToolTip(PRECISION_HINT)
        form.addRow("Window", self.window_spin)
        form.addRow("Overlap", self.overlap_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Diffusion steps", self.steps_spin)
        form.addRow("Seed", self.seed_spin)
        self.location_check = QCheckBox("Use location (each tile's centre, lon/lat)")
        self.location_check.setObjectName("use_location")
        self.location_check.setToolTip("Feed each tile's centre in WGS 84 to TerraMind as its Coordinates input "
                                       "(generation and embeddings). A Location output is still generated from "
                                       "the images alone.")
        form.addRow("Precision", self.precision_combo)
        form.addRow(self.standardize_check)
        form.addRow(self.location_check)
        self.advanced_error = MessageLabel("error")
        form.addRow(self.advanced_error)
