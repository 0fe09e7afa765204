"""Section 2 of the TerraMind dialog, "What to make": generated layers, embeddings, or a model trained on labels.

Each mode has its own page: the output check boxes (with a swatch of the layer they make, the land-cover legend
and the uncertainty options), the embedding options, or the training panel (`train_panel.TrainPanel`).
"""
from __future__ import annotations

from qgis.gui import QgsSpinBox
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPixmap
from qgis.PyQt.QtWidgets import (QButtonGroup, QCheckBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                                 QRadioButton, QWidget)

from ..modalities import MODALITIES, OUTPUT_MODALITIES
from ..paths import RESOURCES_DIR
from ..vocabulary import EMBED_MODES, LULC_CLASSES, MERGE_METHODS, OUTPUT_MODALITY_LABELS
from .choice_combo import fill_combo
from .colour_chip import colour_chip
from .dialog_fields import DIALOG_KEY
from .eliding_combo import ElidingComboBox
from .messages import MessageLabel
from .page_stack import PageStack
from .section_box import SectionBox
from .train_panel import TrainPanel
from .uncertainty_row import UncertaintyRow

# A swatch gradient per output, so the checkboxes look like the layers they will produce.
_OUTPUT_SWATCHES = {
    "LULC": ("#3171AD", "#469C76", "#EAE159", "#C07CB8", "#C66526"),
    "NDVI": ("#a50026", "#f4f1a0", "#1a7a3a"),
    "DEM": ("#2b6d3a", "#d9c27a", "#8b5a2b", "#ffffff"),
    "S1GRD": ("#111111", "#888888", "#f2f2f2"),
    "S1RTC": ("#1b1b1b", "#9a9a9a", "#ffffff"),
    "S2L2A": ("#3b5a2e", "#8c8a5a", "#c9b79c", "#5b7fa8"),
    "Coordinates": ("#e31a1c", "#ffffff", "#e31a1c"),
}
_OUTPUT_TEXT = {choice.value: choice.label for choice in OUTPUT_MODALITY_LABELS}
_SWATCH_SIZE = QSize(28, 14)
_TIM_PER_ROW = 4   # "Think in" check boxes a row
_GENERATE_PAGE, _EMBED_PAGE, _TRAIN_PAGE = range(3)   # the pages of the output stack, in the order they are added


def _swatch(colours) -> QIcon:
    pixmap = QPixmap(_SWATCH_SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    gradient = QLinearGradient(0, 0, _SWATCH_SIZE.width(), 0)
    for i, colour in enumerate(colours):
        gradient.setColorAt(i / max(1, len(colours) - 1), QColor(colour))
    painter.setPen(QColor("#8a94a0"))
    painter.setBrush(gradient)
    painter.drawRoundedRect(0, 0, _SWATCH_SIZE.width() - 1, _SWATCH_SIZE.height() - 1, 3, 3)
    painter.end()
    return QIcon(pixmap)


def _lulc_legend_html() -> str:
    # lines break between classes only, never inside "Built area"
    chips = " ".join(f"{colour_chip(c.colour)}&nbsp;{c.label.replace(' ', '&nbsp;')}" for c in LULC_CLASSES if c.value)
    return f"<span style='color:#5f6b7a'>Land cover classes:</span> {chips}"


class WhatToMakeSection(SectionBox):
    """The task radios and one page of options per task; ``task()`` is the JobSpec task they choose."""

    def __init__(self, iface=None, parent=None):
        super().__init__("2 · What to make", parent)
        modes = QHBoxLayout()
        self.generate_radio = QRadioButton("Generate layers")
        self.generate_radio.setToolTip("Generate new modalities from the inputs (any-to-any generation)")
        self.embed_radio = QRadioButton("Embeddings")
        self.embed_radio.setToolTip("Write the encoder's features, one vector per 16×16 px patch, for "
                                    "clustering, similarity search or your own classifier")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.generate_radio)
        self.mode_group.addButton(self.embed_radio)
        self.train_radio = QRadioButton("Train a model")
        self.train_radio.setToolTip("Fine-tune TerraMind on your own labels (polygons or a class raster), then "
                                    "apply the new model to the map")
        self.mode_group.addButton(self.train_radio)
        self.generate_radio.setChecked(True)
        modes.addWidget(self.generate_radio)
        modes.addWidget(self.embed_radio)
        modes.addWidget(self.train_radio)
        modes.addStretch(1)
        self.body.addLayout(modes)

        self.output_stack = PageStack()   # as tall and wide as the shown page, not the largest
        self.output_stack.addWidget(self._generate_page())
        self.output_stack.addWidget(self._embed_page())
        self.train_panel = TrainPanel(iface)
        self.output_stack.addWidget(self.train_panel)
        self.body.addWidget(self.output_stack)
        self.outputs_error = MessageLabel("error")
        self.body.addWidget(self.outputs_error)
        self.output_checks["LULC"].toggled.connect(self.lulc_legend.setVisible)
        self.layer_spin.valueChanged.connect(self._layer_suffix)

    def _generate_page(self) -> QWidget:
        page = QWidget()
        grid = QGridLayout(page)
        grid.setContentsMargins(0, 4, 0, 0)
        grid.setHorizontalSpacing(18)
        self.output_checks: dict[str, QCheckBox] = {}
        legend = (RESOURCES_DIR / "legends" / "lulc.svg").as_posix()
        for i, name in enumerate(OUTPUT_MODALITIES):
            check = QCheckBox(_OUTPUT_TEXT[name])
            check.setObjectName(f"output_{name}")
            check.setIcon(_swatch(_OUTPUT_SWATCHES[name]))
            check.setIconSize(_SWATCH_SIZE)
            tip = MODALITIES[name].description
            if name == "LULC":
                tip = f"<p>{tip}</p><img src='{legend}'>"
            check.setToolTip(tip)
            grid.addWidget(check, i // 2, i % 2)
            self.output_checks[name] = check
        self.lulc_legend = QLabel(_lulc_legend_html())
        self.lulc_legend.setWordWrap(True)
        self.lulc_legend.setToolTip("The 10 land-cover classes of TerraMind v1 (names: our reading of ESRI 10 m "
                                    "land cover, see docs/jobspec.md)")
        legend_row = (len(OUTPUT_MODALITIES) + 1) // 2
        grid.addWidget(self.lulc_legend, legend_row, 0, 1, 2)
        self.uncertainty_row = UncertaintyRow()
        grid.addWidget(self.uncertainty_row, legend_row + 1, 0, 1, 2)
        return page

    def _embed_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setContentsMargins(0, 4, 0, 0)
        self.embed_mode_combo = ElidingComboBox()
        fill_combo(self.embed_mode_combo, EMBED_MODES)
        self.embed_mode_combo.setToolTip(EMBED_MODES[-1].hint)
        self.layer_spin = QgsSpinBox()
        self.layer_spin.setRange(-24, 23)
        self.layer_spin.setValue(-1)
        self.layer_spin.setClearValue(-1)
        self.layer_spin.setSuffix("  (last block)")
        self.layer_spin.setToolTip("Which encoder block's output to write: -1 is the last block, 0 the first")
        self.merge_combo = ElidingComboBox()
        fill_combo(self.merge_combo, MERGE_METHODS)
        self.merge_combo.setToolTip("How the tokens of several modalities at one patch become one vector")
        self.tim_widget = QWidget()
        tim_grid = QGridLayout(self.tim_widget)   # 4 a row: all 7 in one row would set the column's width
        tim_grid.setContentsMargins(0, 0, 0, 0)
        self.tim_checks: dict[str, QCheckBox] = {}
        for i, name in enumerate(OUTPUT_MODALITIES):
            check = QCheckBox(name)
            check.setObjectName(f"tim_{name}")
            check.setToolTip(f"Let TiM think in {MODALITIES[name].title}")
            tim_grid.addWidget(check, i // _TIM_PER_ROW, i % _TIM_PER_ROW)
            self.tim_checks[name] = check
        tim_grid.setColumnStretch(_TIM_PER_ROW, 1)
        form.addRow("Encoder", self.embed_mode_combo)
        form.addRow("Layer", self.layer_spin)
        form.addRow("Merge", self.merge_combo)
        form.addRow("Think in", self.tim_widget)
        self.embed_error = MessageLabel("error")
        form.addRow(self.embed_error)
        return page

    def _layer_suffix(self, value: int) -> None:
        self.layer_spin.setSuffix("  (last block)" if value == -1 else "")

    # -- values -----------------------------------------------------------------------------------
    def task(self) -> str:
        """generate, finetune, or the chosen embedding mode (embed, tim-embed)."""
        if self.train_radio.isChecked():
            return "finetune"
        return "generate" if self.generate_radio.isChecked() else self.embed_mode_combo.currentData()

    def outputs(self) -> list[str]:
        return [name for name, check in self.output_checks.items() if check.isChecked()]

    def tim_modalities(self) -> list[str]:
        return [name for name, check in self.tim_checks.items() if check.isChecked()]

    def show_mode(self) -> None:
        """Show the chosen task's page and what applies to it."""
        page = _GENERATE_PAGE if self.generate_radio.isChecked() else \
            _TRAIN_PAGE if self.train_radio.isChecked() else _EMBED_PAGE
        self.output_stack.setCurrentIndex(page)
        self.tim_widget.setEnabled(self.embed_mode_combo.currentData() == "tim-embed")
        self.lulc_legend.setVisible(self.output_checks["LULC"].isChecked())

    # -- remembered choices (the plain fields, e.g. layer and merge, are `dialog_fields`') ----------
    def save(self, settings) -> None:
        settings.set_value(DIALOG_KEY + "task", self.task())
        settings.set_value(DIALOG_KEY + "outputs", ",".join(self.outputs()))
        settings.set_value(DIALOG_KEY + "tim_modalities", ",".join(self.tim_modalities()))
        self.uncertainty_row.save(settings, DIALOG_KEY)

    def restore(self, settings) -> None:
        task = settings.value(DIALOG_KEY + "task", "generate")
        self.generate_radio.setChecked(task == "generate")
        self.train_radio.setChecked(task == "finetune")
        self.embed_radio.setChecked(task not in ("generate", "finetune"))
        self.embed_mode_combo.setCurrentIndex(max(0, self.embed_mode_combo.findData(task)))
        outputs = settings.value(DIALOG_KEY + "outputs", "LULC,NDVI").split(",")
        for name, check in self.output_checks.items():
            check.setChecked(name in outputs)
        tim = settings.value(DIALOG_KEY + "tim_modalities", "LULC").split(",")
        for name, check in self.tim_checks.items():
            check.setChecked(name in tim)
        self.uncertainty_row.restore(settings, DIALOG_KEY)
