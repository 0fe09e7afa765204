"""The dialog's "how sure is the model" options for generation (docs/uncertainty.md): confidence and
entropy of LULC, and the spread of continuous outputs over N seeded samples."""
from __future__ import annotations

from qgis.gui import QgsSpinBox
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QWidget

DEFAULT_SAMPLES, MAX_SAMPLES = 4, 64


class UncertaintyRow(QWidget):
    """Two check boxes and N; ``options()`` is the JobSpec ``options.uncertainty`` ({} when off)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.confidence_check = QCheckBox("Confidence + entropy (LULC)")
        self.confidence_check.setObjectName("uncertainty_confidence")
        self.confidence_check.setToolTip("Also write the largest class probability and the normalized entropy of "
                                         "the class probabilities: where the land-cover map is a guess. Costs "
                                         "almost nothing.")
        self.spread_check = QCheckBox("Spread over")
        self.spread_check.setObjectName("uncertainty_spread")
        self.spread_check.setToolTip("Also write the per-pixel standard deviation of S1, S2, DEM and NDVI outputs "
                                     "over N generations with seeds seed, seed+1, … (in the output's units). "
                                     "Costs N times the generation; the main output does not change.")
        self.samples_spin = QgsSpinBox()
        self.samples_spin.setObjectName("uncertainty_samples")
        self.samples_spin.setRange(2, MAX_SAMPLES)
        self.samples_spin.setValue(DEFAULT_SAMPLES)
        self.samples_spin.setClearValue(DEFAULT_SAMPLES)
        self.samples_spin.setSuffix(" samples")
        self.samples_spin.setEnabled(False)
        self.spread_check.toggled.connect(self.samples_spin.setEnabled)
        layout.addWidget(self.confidence_check)
        layout.addSpacing(12)
        layout.addWidget(self.spread_check)
        layout.addWidget(self.samples_spin)
        layout.addStretch(1)

    def options(self) -> dict:
        if not (self.confidence_check.isChecked() or self.spread_check.isChecked()):
            return {}
        return {"confidence": self.confidence_check.isChecked(), "spread": self.spread_check.isChecked(),
                "samples": self.samples_spin.value()}

    def save(self, settings, prefix: str) -> None:
        """Remember the options in ``settings`` (a `settings.Settings`) under ``prefix`` + their names."""
        settings.set_value(prefix + "uncertainty_confidence", self.confidence_check.isChecked())
        settings.set_value(prefix + "uncertainty_spread", self.spread_check.isChecked())
        settings.set_value(prefix + "uncertainty_samples", self.samples_spin.value())

    def restore(self, settings, prefix: str) -> None:
        self.confidence_check.setChecked(settings.value(prefix + "uncertainty_confidence", False, bool))
        self.spread_check.setChecked(settings.value(prefix + "uncertainty_spread", False, bool))
        self.samples_spin.setValue(settings.value(prefix + "uncertainty_samples", DEFAULT_SAMPLES, int))
