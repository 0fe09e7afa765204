"""The TerraMind dialog: raster layers become modalities, choices become a JobSpec, Run queues a QgsTask.

This module only moves values between widgets and `jobspec_builder.JobChoices`. Guessing lives in
`modalities.py`, checks in `jobspec_builder.check_job` (plus the few that need QGIS geometry, here), and the
job itself runs in `task.TerraMindTask` on QGIS's task manager, so the UI thread never waits for the backend.
Every problem is shown under the widget that causes it; Run is enabled only when there are none.
The plain fields (model, device, tiling, sampling, precision, folder, …) are one table in
`widgets/dialog_fields.py`, which saves, restores and watches them; the choice lists come from `vocabulary.py`.

Size: this file is still over 500 lines because it builds its six sections itself (`_inputs_section` …
`_output_section`, about 300 lines of widget layout); they are the next candidates for `widgets/`.
"""
from __future__ import annotations

import json
import os
import time

from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry,
                       QgsMapLayerProxyModel, QgsProject, QgsRectangle, QgsSettings, QgsUnitTypes, QgsWkbTypes)
from qgis.gui import (QgsCollapsibleGroupBox, QgsDoubleSpinBox, QgsExtentGroupBox, QgsFileWidget,
                      QgsMapLayerComboBox, QgsProjectionSelectionWidget, QgsSpinBox)
from qgis.PyQt.QtCore import QSize, Qt, QTimer
from qgis.PyQt.QtGui import QColor, QFont, QIcon, QLinearGradient, QPainter, QPixmap
from qgis.PyQt.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QFrame,
                                 QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                                 QRadioButton, QScrollArea, QStackedWidget, QVBoxLayout, QWidget)

from .jobspec_builder import (InputChoice, JobChoices, Problem, build_jobspec, check_job, output_folder,
                              output_paths, tile_count)
from .layer_sources import crs_string
from .modalities import MODALITIES, OUTPUT_MODALITIES
from .paths import RESOURCES_DIR, icon_path
from .settings import PREFIX, Settings
from .vocabulary import (DEVICES, EMBED_MODES, LULC_CLASSES, MERGE_METHODS, MODEL_SIZES,
                         OUTPUT_MODALITY_LABELS, PRECISION_HINT, PRECISIONS)
from .widgets import dialog_fields
from .widgets.colour_chip import colour_chip
from .widgets.dialog_fields import DIALOG_KEY
from .widgets.input_row import InputList, caption, first_input_layer
from .widgets.messages import MessageLabel
from .widgets.train_panel import TrainPanel
from .widgets.uncertainty_row import UncertaintyRow

SETTINGS_PREFIX = PREFIX + DIALOG_KEY   # where the dialog remembers its choices

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


def _swatch(colours, size=QSize(28, 14)) -> QIcon:
    pixmap = QPixmap(size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    gradient = QLinearGradient(0, 0, size.width(), 0)
    for i, colour in enumerate(colours):
        gradient.setColorAt(i / max(1, len(colours) - 1), QColor(colour))
    painter.setPen(QColor("#8a94a0"))
    painter.setBrush(gradient)
    painter.drawRoundedRect(0, 0, size.width() - 1, size.height() - 1, 3, 3)
    painter.end()
    return QIcon(pixmap)


def _lulc_legend_html() -> str:
    chips = " ".join(f"{colour_chip(c.colour)}&nbsp;{c.label}" for c in LULC_CLASSES if c.value)
    return f"<span style='color:#5f6b7a'>Land cover classes:</span> {chips}"


def _section(title: str) -> tuple[QGroupBox, QVBoxLayout]:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(10, 12, 10, 10)
    layout.setSpacing(6)
    return box, layout


class TerraMindDialog(QDialog):
    """Pick layers and outputs, check them, and queue a TerraMind job without blocking QGIS."""

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.setObjectName("TerraMindDialog")
        self.setWindowTitle("TerraMind")
        self.setWindowIcon(QIcon(icon_path()))
        self.task_factory = None          # tests replace it; None → task.TerraMindTask
        self.review_factory = None        # tests replace it; None → job_review.ReviewTask
        self.confirm_box = None           # the open "Run anyway?" question, if any
        self.tasks = []                   # queued tasks stay referenced until they finish
        self.problems: list[Problem] = []
        self._resolution_touched = False
        self._refreshing = False
        self._polygon_cache = (None, (None, None, None))
        self._backend_problem: Problem | None = None   # the backend's last validation error, until a change
        self._job_name = self._new_job_name()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self._inputs_timer = QTimer(self)
        self._inputs_timer.setSingleShot(True)
        self._inputs_timer.setInterval(0)
        self._inputs_timer.timeout.connect(self._inputs_changed)

        self._build()
        self._restore_settings()
        self._preselect_input()
        self._connect()
        self.refresh()

    # -- construction -----------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(14, 12, 14, 12)
        root.setSpacing(10)
        root.addLayout(self._header())
        root.addWidget(self._rule())

        columns = QHBoxLayout()
        columns.setSpacing(12)
        left, right = QVBoxLayout(), QVBoxLayout()
        left.setSpacing(10)
        right.setSpacing(10)
        left.addWidget(self._inputs_section())
        left.addWidget(self._model_section())
        left.addStretch(1)
        right.addWidget(self._outputs_section())
        right.addWidget(self._area_section())
        right.addWidget(self._advanced_section())
        right.addWidget(self._output_section())
        right.addStretch(1)
        left_widget, right_widget = QWidget(), QWidget()
        left_widget.setLayout(left)
        right_widget.setLayout(right)
        left.setContentsMargins(0, 0, 0, 0)
        right.setContentsMargins(0, 0, 0, 0)
        columns.addWidget(left_widget, 11)
        columns.addWidget(right_widget, 10)

        body = QWidget()
        body.setLayout(columns)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        root.addWidget(scroll, 1)

        footer = QHBoxLayout()
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setObjectName("summary")
        footer.addWidget(self.summary_label, 1)
        self.buttons = QDialogButtonBox()
        self.run_button = QPushButton(QIcon(icon_path()), "Run")
        self.run_button.setObjectName("run")
        self.run_button.setDefault(True)
        self.run_button.setMinimumWidth(110)
        self.run_button.setStyleSheet(
            "QPushButton#run { background: #1d6f8f; color: white; font-weight: 600; border: 1px solid #155a75;"
            " border-radius: 4px; padding: 5px 18px; }"
            "QPushButton#run:hover { background: #237fa3; }"
            "QPushButton#run:disabled { background: #c3ccd5; color: #f4f6f8; border-color: #b3bdc7; }")
        self.run_button.setToolTip("Queue the job in QGIS's task manager; QGIS stays usable while it runs")
        self.buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        footer.addWidget(self.buttons)
        root.addLayout(footer)
        self.resize(1200, 900)

    def _header(self) -> QHBoxLayout:
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

    @staticmethod
    def _rule() -> QFrame:
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #d5dae1;")
        return line

    def _inputs_section(self) -> QGroupBox:
        box, layout = _section("1 · Inputs")
        layout.addWidget(caption("One raster layer per modality. The modality and band order are guessed "
                                 "from the bands; check them, then add more inputs for better results."))
        self.input_list = InputList()
        layout.addWidget(self.input_list)
        self.inputs_error = MessageLabel("error")
        layout.addWidget(self.inputs_error)
        self.add_input_button = QPushButton(QgsApplication.getThemeIcon("/symbologyAdd.svg"), "Add input")
        self.add_input_button.setToolTip("Use another raster as an additional modality "
                                         "(e.g. Sentinel-1 beside Sentinel-2)")
        row = QHBoxLayout()
        row.addWidget(self.add_input_button)
        row.addStretch(1)
        layout.addLayout(row)
        return box

    def _outputs_section(self) -> QGroupBox:
        box, layout = _section("2 · What to make")
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
        layout.addLayout(modes)

        self.output_stack = QStackedWidget()
        generate_page = QWidget()
        grid = QGridLayout(generate_page)
        grid.setContentsMargins(0, 4, 0, 0)
        grid.setHorizontalSpacing(18)
        self.output_checks: dict[str, QCheckBox] = {}
        legend = (RESOURCES_DIR / "legends" / "lulc.svg").as_posix()
        for i, name in enumerate(OUTPUT_MODALITIES):
            check = QCheckBox(_OUTPUT_TEXT[name])
            check.setObjectName(f"output_{name}")
            check.setIcon(_swatch(_OUTPUT_SWATCHES[name]))
            check.setIconSize(QSize(28, 14))
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
        self.output_stack.addWidget(generate_page)

        embed_page = QWidget()
        form = QFormLayout(embed_page)
        form.setContentsMargins(0, 4, 0, 0)
        self.embed_mode_combo = QComboBox()
        _fill_combo(self.embed_mode_combo, EMBED_MODES)
        self.embed_mode_combo.setToolTip(EMBED_MODES[-1].hint)
        self.layer_spin = QgsSpinBox()
        self.layer_spin.setRange(-24, 23)
        self.layer_spin.setValue(-1)
        self.layer_spin.setClearValue(-1)
        self.layer_spin.setSuffix("  (last block)")
        self.layer_spin.setToolTip("Which encoder block's output to write: -1 is the last block, 0 the first")
        self.merge_combo = QComboBox()
        _fill_combo(self.merge_combo, MERGE_METHODS)
        self.merge_combo.setToolTip("How the tokens of several modalities at one patch become one vector")
        tim_row = QHBoxLayout()
        self.tim_checks: dict[str, QCheckBox] = {}
        for name in OUTPUT_MODALITIES:
            check = QCheckBox(name)
            check.setObjectName(f"tim_{name}")
            check.setToolTip(f"Let TiM think in {MODALITIES[name].title}")
            tim_row.addWidget(check)
            self.tim_checks[name] = check
        tim_row.addStretch(1)
        self.tim_widget = QWidget()
        self.tim_widget.setLayout(tim_row)
        tim_row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Encoder", self.embed_mode_combo)
        form.addRow("Layer", self.layer_spin)
        form.addRow("Merge", self.merge_combo)
        form.addRow("Think in", self.tim_widget)
        self.embed_error = MessageLabel("error")
        form.addRow(self.embed_error)
        self.output_stack.addWidget(embed_page)
        self.train_panel = TrainPanel(self.iface)
        self.output_stack.addWidget(self.train_panel)
        layout.addWidget(self.output_stack)
        self.outputs_error = MessageLabel("error")
        layout.addWidget(self.outputs_error)
        return box

    def _model_section(self) -> QGroupBox:
        box, layout = _section("3 · Model")
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.size_combo = QComboBox()
        self.size_combo.setObjectName("model_size")
        _fill_combo(self.size_combo, MODEL_SIZES)
        self.size_hint = caption("")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device")
        _fill_combo(self.device_combo, DEVICES)
        form.addRow("Size", self.size_combo)
        form.addRow("", self.size_hint)
        form.addRow("Device", self.device_combo)
        layout.addLayout(form)
        self.model_error = MessageLabel("error")
        layout.addWidget(self.model_error)
        return box

    def _area_section(self) -> QGroupBox:
        box, layout = _section("4 · Area and pixel grid")
        self.extent_box = QgsExtentGroupBox()
        self.extent_box.setObjectName("extent")
        self.extent_box.setTitleBase("Limit to an extent")
        self.extent_box.setCheckable(True)
        self.extent_box.setChecked(False)
        self.extent_box.setCollapsed(True)
        self.extent_box.setToolTip("Unchecked: the whole first input. Checked: the canvas, a layer's extent "
                                   "or a rectangle you draw")
        if self.iface is not None and self.iface.mapCanvas() is not None:
            self.extent_box.setMapCanvas(self.iface.mapCanvas())
        layout.addWidget(self.extent_box)
        self.extent_error = MessageLabel("error")
        layout.addWidget(self.extent_error)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.polygon_combo = QgsMapLayerComboBox()
        self.polygon_combo.setObjectName("polygon")
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygon_combo.setAllowEmptyLayer(True)
        self.polygon_combo.setLayer(None)
        self.polygon_combo.setToolTip("Optional: only process inside these polygons (selected features if any "
                                      "are selected, else all)")
        self.crs_widget = QgsProjectionSelectionWidget()
        self.crs_widget.setObjectName("crs")
        self.crs_widget.setOptionVisible(QgsProjectionSelectionWidget.CrsNotSet, True)
        self.crs_widget.setNotSetText("Same as the first input")
        self.crs_widget.setCrs(QgsCoordinateReferenceSystem())
        self.crs_widget.setToolTip("The CRS of the outputs; inputs are reprojected onto it")
        self.resolution_spin = QgsDoubleSpinBox()
        self.resolution_spin.setObjectName("resolution")
        self.resolution_spin.setRange(0.0, 1e7)
        self.resolution_spin.setDecimals(2)
        self.resolution_spin.setValue(10.0)
        self.resolution_spin.setClearValue(10.0)
        self.resolution_spin.setToolTip("Output pixel size in the target CRS's units. TerraMind was trained on "
                                        "10 m Sentinel pixels")
        form.addRow("Clip to polygons", self.polygon_combo)
        form.addRow("Target CRS", self.crs_widget)
        form.addRow("Pixel size", self.resolution_spin)
        layout.addLayout(form)
        self.grid_error = MessageLabel("error")
        self.grid_hint = MessageLabel("warning")
        layout.addWidget(self.grid_error)
        layout.addWidget(self.grid_hint)
        return box

    def _advanced_section(self) -> QgsCollapsibleGroupBox:
        box = QgsCollapsibleGroupBox("Advanced")
        box.setObjectName("advanced")
        box.setCollapsed(True)
        box.setSaveCollapsedState(False)
        form = QFormLayout(box)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        def spin(name, lo, hi, value, step, suffix, tip):
            widget = QgsSpinBox()
            widget.setObjectName(name)
            widget.setRange(lo, hi)
            widget.setSingleStep(step)
            widget.setValue(value)
            widget.setClearValue(value)
            widget.setSuffix(suffix)
            widget.setToolTip(tip)
            return widget

        self.window_spin = spin("window", 16, 4096, 224, 16, " px", "Tile size fed to the model; TerraMind was "
                                "trained on 224 px")
        self.overlap_spin = spin("overlap", 0, 2048, 32, 16, " px", "Overlap between tiles; blended smoothly "
                                 "to hide seams")
        self.batch_spin = spin("batch", 1, 1024, 8, 1, "", "Tiles per model call; lower it if memory runs out")
        self.steps_spin = spin("timesteps", 1, 1000, 10, 1, "", "Diffusion steps for image outputs "
                               "(S2, S1, DEM, NDVI): more is slower and a little sharper")
        self.seed_spin = spin("seed", 0, 2**31 - 1, 0, 1, "", "Same seed and inputs give the same result")
        self.standardize_check = QCheckBox("Standardize inputs with the pre-training statistics")
        self.standardize_check.setChecked(True)
        self.precision_combo = QComboBox()
        _fill_combo(self.precision_combo, PRECISIONS)
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
        self.advanced_box = box
        return box

    def _output_section(self) -> QGroupBox:
        box, layout = _section("5 · Output")
        self.output_box = box
        row = QHBoxLayout()
        self.temporary_radio = QRadioButton("Temporary files")
        self.temporary_radio.setToolTip("Written to the system's temp folder; save the layers if you keep them")
        self.folder_radio = QRadioButton("Save to folder")
        self.output_group = QButtonGroup(self)
        self.output_group.addButton(self.temporary_radio)
        self.output_group.addButton(self.folder_radio)
        self.temporary_radio.setChecked(True)
        row.addWidget(self.temporary_radio)
        row.addWidget(self.folder_radio)
        row.addStretch(1)
        layout.addLayout(row)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.folder_widget = QgsFileWidget()
        self.folder_widget.setObjectName("output_dir")
        self.folder_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder_widget.setDialogTitle("Folder for the TerraMind outputs")
        self.name_edit = QLineEdit(self._job_name)
        self.name_edit.setObjectName("job_name")
        self.name_edit.setToolTip("File names start with this: <name>_lulc.tif, <name>_ndvi.tif, …")
        form.addRow("Folder", self.folder_widget)
        form.addRow("Name", self.name_edit)
        layout.addLayout(form)
        self.output_error = MessageLabel("error")
        self.output_hint = MessageLabel("hint")
        layout.addWidget(self.output_error)
        layout.addWidget(self.output_hint)
        return box

    def _connect(self) -> None:
        refresh = self.schedule_refresh
        self.input_list.changed.connect(self._inputs_timer.start)
        self.add_input_button.clicked.connect(self.input_list.add_row)
        self.train_radio.toggled.connect(self._mode_changed)
        self.train_panel.changed.connect(refresh)
        self.train_panel.backendProblem.connect(self.show_backend_problem)
        self.train_panel.choices_source = self.choices
        self.generate_radio.toggled.connect(self._mode_changed)
        for check in list(self.output_checks.values()) + list(self.tim_checks.values()):
            check.toggled.connect(refresh)
        self.output_checks["LULC"].toggled.connect(self.lulc_legend.setVisible)
        dialog_fields.connect(self, refresh)   # model, device, tiling, sampling, precision, folder, …
        self.embed_mode_combo.currentIndexChanged.connect(refresh)
        self.embed_mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.layer_spin.valueChanged.connect(self._layer_suffix)
        self._layer_suffix(self.layer_spin.value())
        self.extent_box.extentChanged.connect(refresh)
        self.extent_box.toggled.connect(refresh)
        self.polygon_combo.layerChanged.connect(refresh)
        self.crs_widget.crsChanged.connect(self._crs_changed)
        self.resolution_spin.valueChanged.connect(self._resolution_edited)
        self.temporary_radio.toggled.connect(self._output_mode_changed)
        self.name_edit.textChanged.connect(refresh)
        self.run_button.clicked.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        self._mode_changed()
        self._output_mode_changed()

    def schedule_refresh(self, *_):
        """Widgets changed: check again once the event loop is idle (coalesces bursts of signals, and runs
        after QGIS has finished removing a layer that a combo still pointed to)."""
        self._backend_problem = None
        self._refresh_timer.start()

    # -- reactions --------------------------------------------------------------------------------
    def _mode_changed(self, *_):
        generate = self.generate_radio.isChecked()
        self.output_stack.setCurrentIndex(0 if generate else 2 if self.train_radio.isChecked() else 1)
        self.output_box.setVisible(not self.train_radio.isChecked())   # the model file is chosen on the page
        self.run_button.setText("Train" if self.train_radio.isChecked() else "Run")
        self.tim_widget.setEnabled(self.embed_mode_combo.currentData() == "tim-embed")
        self.lulc_legend.setVisible(self.output_checks["LULC"].isChecked())
        self.steps_spin.setEnabled(self.task() != "embed")
        self.schedule_refresh()

    def _layer_suffix(self, value: int) -> None:
        self.layer_spin.setSuffix("  (last block)" if value == -1 else "")

    def _output_mode_changed(self, *_):
        self.folder_widget.setEnabled(self.folder_radio.isChecked())
        self.schedule_refresh()

    def _resolution_edited(self, *_):
        if not self._refreshing:
            self._resolution_touched = True
        self.schedule_refresh()

    def _crs_changed(self, *_):
        self._resolution_touched = False
        self.extent_box.setOutputCrs(self.target_crs())   # reprojects a chosen extent into the new CRS
        self.schedule_refresh()

    def _inputs_changed(self):
        self._backend_problem = None
        self._sync_inputs()
        self.refresh()

    def _sync_inputs(self):
        """The first input decides the default area and pixel size."""
        first = self._first_layer()
        if first is None:
            return
        self.extent_box.setOriginalExtent(first.extent(), first.crs())
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is not None:
            self.extent_box.setCurrentExtent(canvas.extent(), canvas.mapSettings().destinationCrs())
        else:
            self.extent_box.setCurrentExtent(first.extent(), first.crs())
        self.extent_box.setOutputCrs(self.target_crs())
        if not self._resolution_touched and not self.crs_widget.crs().isValid():
            self._refreshing = True
            self.resolution_spin.setValue(first.rasterUnitsPerPixelX())
            self._refreshing = False

    def _preselect_input(self) -> None:
        """Start from the layer the user is looking at (the active raster, else the topmost one)."""
        active = self.iface.activeLayer() if self.iface is not None else None
        layer = first_input_layer(active)
        if layer is not None and self.input_list.rows[0].layer() is None:
            self.input_list.rows[0].set_layer(layer)
            self._sync_inputs()

    # -- values -----------------------------------------------------------------------------------
    def task(self) -> str:
        if self.train_radio.isChecked():
            return "finetune"
        return "generate" if self.generate_radio.isChecked() else self.embed_mode_combo.currentData()

    def _input_layers(self) -> list:
        return [row.layer() for row in self.input_list.rows if row.layer() is not None]

    def _first_layer(self):
        return next((row.layer() for row in self.input_list.rows if row.layer() is not None), None)

    def target_crs(self) -> QgsCoordinateReferenceSystem:
        crs = self.crs_widget.crs()
        if crs.isValid():
            return crs
        first = self._first_layer()
        return first.crs() if first is not None else QgsProject.instance().crs()

    def _clip_polygon(self):
        """(GeoJSON geometry, CRS, bounding box) of the clip polygons ({} and an empty box when the layer has
        none), or (None, None, None) without a layer. The union is cached per layer and selection, since checks
        run on every widget change."""
        layer = self.polygon_combo.currentLayer()
        if layer is None:
            return None, None, None
        selected = tuple(sorted(layer.selectedFeatureIds()))
        key = (layer.id(), selected, layer.featureCount(), layer.crs().toWkt())
        if self._polygon_cache[0] != key:
            features = layer.getSelectedFeatures() if selected else layer.getFeatures()
            geometries = [f.geometry() for f in features if f.hasGeometry()]
            geometry = QgsGeometry.unaryUnion(geometries) if geometries else QgsGeometry()
            usable = not (geometry.isNull() or geometry.isEmpty()) and \
                geometry.type() == QgsWkbTypes.PolygonGeometry
            self._polygon_cache = (key, (json.loads(geometry.asJson()) if usable else {}, crs_string(layer.crs()),
                                         geometry.boundingBox() if usable else QgsRectangle()))
        return self._polygon_cache[1]

    def choices(self) -> JobChoices:
        """Everything the widgets say, as plain values."""
        inputs = []
        for row in self.input_list.rows:
            layer = row.layer()
            if layer is None:
                continue
            inputs.append(InputChoice(modality=row.modality(), path=layer.source(), band_count=layer.bandCount(),
                                      bands=row.mapping(), row=row.row_id))
        choices = JobChoices(
            task=self.task(), model_size=self.size_combo.currentData(), inputs=inputs,
            outputs=[name for name, check in self.output_checks.items() if check.isChecked()],
            job_name=self.name_edit.text().strip() or self._job_name,
            output_dir=self.folder_widget.filePath().strip() or None,
            temporary=self.temporary_radio.isChecked(),
            crs=crs_string(self.crs_widget.crs()) if self.crs_widget.crs().isValid() else None,
            resolution=self.resolution_spin.value(), window=self.window_spin.value(),
            overlap=self.overlap_spin.value(), batch_size=self.batch_spin.value(),
            device=self.device_combo.currentData(), timesteps=self.steps_spin.value(), seed=self.seed_spin.value(),
            layer=self.layer_spin.value(), merge_method=self.merge_combo.currentData(),
            tim_modalities=[name for name, check in self.tim_checks.items() if check.isChecked()],
            standardize=self.standardize_check.isChecked(),
            precision=self.precision_combo.currentData(),
            uncertainty=self.uncertainty_row.options(),
            use_location=self.location_check.isChecked(),
        )
        polygon, crs, _ = self._clip_polygon()
        if polygon is not None:
            choices.extent_polygon, choices.extent_crs = polygon, crs
        elif self.extent_box.isChecked():
            rect = self.extent_box.outputExtent()
            choices.extent_bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            choices.extent_crs = crs_string(self.extent_box.outputCrs())
        return choices

    def jobspec(self) -> dict:
        """The JobSpec for the current widgets; raises jobspec_builder.JobSpecError when something is wrong."""
        return build_jobspec(self.choices())

    # -- checks -----------------------------------------------------------------------------------
    def _area_in_target(self, choices: JobChoices) -> QgsRectangle | None:
        """The processed area in the target CRS: the chosen extent or polygon, else the first input."""
        target = self.target_crs()
        if choices.extent_polygon:
            rect = self._clip_polygon()[2]
            source = QgsCoordinateReferenceSystem(choices.extent_crs)
        elif choices.extent_bounds is not None:
            rect = QgsRectangle(*choices.extent_bounds)
            source = QgsCoordinateReferenceSystem(choices.extent_crs)
        else:
            first = self._first_layer()
            if first is None:
                return None
            rect, source = first.extent(), first.crs()
        if source.isValid() and target.isValid() and source != target:
            try:
                rect = QgsCoordinateTransform(source, target, QgsProject.instance()).transformBoundingBox(rect)
            except Exception:  # noqa: BLE001 (QgsCsException: area outside the target CRS)
                return None
        return rect

    def _qgis_problems(self, choices: JobChoices) -> list[Problem]:
        """Checks that need QGIS geometry: the area must overlap the inputs."""
        if not choices.inputs or (choices.extent_bounds is None and not choices.extent_polygon):
            return []
        area = self._area_in_target(choices)
        if area is None or area.isEmpty():
            return []
        target = self.target_crs()
        for row in self.input_list.rows:
            layer = row.layer()
            if layer is None:
                continue
            extent = layer.extent()
            if layer.crs() != target:
                try:
                    extent = QgsCoordinateTransform(layer.crs(), target, QgsProject.instance()) \
                        .transformBoundingBox(extent)
                except Exception:  # noqa: BLE001 # nosec B112: no transform, no overlap check; the backend validates
                    continue
            if not extent.intersects(area):
                return [Problem("extent", f"The area does not overlap the input layer '{layer.name()}'")]
        return []

    def refresh(self) -> list[Problem]:
        """Check the job, show each problem next to its widget, and enable Run when there are none."""
        if self._refreshing:
            return self.problems
        self._refreshing = True
        try:
            for row in self.input_list.rows:
                row.ensure_current()
        finally:
            self._refreshing = False
        if self._inputs_timer.isActive():
            self._inputs_timer.stop()
            self._sync_inputs()
        self._refresh_timer.stop()
        choices = self.choices()
        if choices.task == "finetune":
            problems = self.train_panel.problems(choices, self._input_layers())
        else:
            problems = check_job(choices)
        problems += self._qgis_problems(choices)
        if self._backend_problem is not None:
            problems.append(self._backend_problem)
        self.problems = problems
        self._show_problems(problems)
        self._show_hints(choices)
        self.run_button.setEnabled(not problems)
        self._show_summary(choices, problems)
        return problems

    def _label_for(self, field: str):
        if self.task() == "finetune" and self.train_panel.label_for(field) is not None:
            return self.train_panel.label_for(field)
        if field.startswith("inputs."):
            row = self.input_list.row(field.split(".")[1])
            if row is not None:
                return row
        head = field.split(".")[0]
        return {
            "inputs": self.inputs_error, "outputs": self.outputs_error, "options": self.embed_error,
            "extent": self.extent_error, "crs": self.grid_error, "resolution": self.grid_error,
            "output_dir": self.output_error, "tiling": self.advanced_error, "timesteps": self.advanced_error,
            "model": self.model_error, "device": self.model_error, "task": self.outputs_error,
        }.get(head, self.outputs_error)

    def _show_problems(self, problems: list[Problem]) -> None:
        messages: dict[int, tuple[object, list[str]]] = {}
        for problem in problems:
            target = self._label_for(problem.field)
            messages.setdefault(id(target), (target, []))[1].append(problem.message)
        targets = [self.inputs_error, self.outputs_error, self.embed_error, self.extent_error, self.grid_error,
                   self.output_error, self.advanced_error, self.model_error] + list(self.input_list.rows) + \
            self.train_panel.message_labels()
        for target in targets:
            found = messages.get(id(target))
            text = "\n".join(dict.fromkeys(found[1])) if found else None
            if hasattr(target, "show_problem"):
                target.show_problem(text)
            else:
                target.show_message(text)
        if messages.get(id(self.advanced_error)):
            self.advanced_box.setCollapsed(False)
        if messages.get(id(self.extent_error)) and self.extent_box.isChecked():
            self.extent_box.setCollapsed(False)

    def _show_hints(self, choices: JobChoices) -> None:
        size = self.size_combo.currentData()
        hint = next(c.hint for c in MODEL_SIZES if c.value == size)
        if choices.task == "generate" and choices.outputs:
            hint += "; each generated output adds a ~0.3 B-parameter tokenizer"
        self.size_hint.setText(hint[:1].upper() + hint[1:])
        units = self.target_crs().mapUnits()
        grid_hint = None
        if self._first_layer() is None and not self.crs_widget.crs().isValid():
            pass   # no input and no CRS chosen yet: the project's CRS is nobody's choice, nothing to warn about
        elif units == QgsUnitTypes.DistanceMeters and choices.resolution > 0 and not 5 <= choices.resolution <= 30:
            grid_hint = f"TerraMind was trained on 10 m pixels; {choices.resolution:g} m may give poor results"
        elif units == QgsUnitTypes.DistanceDegrees:
            grid_hint = "The target CRS is in degrees: choose a projected CRS (e.g. UTM) for 10 m pixels"
        self.grid_hint.show_message(grid_hint)
        self.resolution_spin.setSuffix(f" {QgsUnitTypes.toAbbreviatedString(units)}")
        self.resolution_spin.setDecimals(8 if units == QgsUnitTypes.DistanceDegrees else 2)
        paths = output_paths(choices)
        if paths:
            names = ", ".join(p.replace("\\", "/").rsplit("/", 1)[-1] for p in paths.values())
            self.output_hint.show_message(f"Writes {names}")
        else:
            self.output_hint.show_message(None)

    def _show_summary(self, choices: JobChoices, problems: list[Problem]) -> None:
        if problems:
            count = len(problems)
            self.summary_label.setText(f"<span style='color:#c62828'>Fix {count} problem{'s' * (count > 1)} "
                                       f"marked above to run.</span>")
            return
        area = self._area_in_target(choices)
        what = {"generate": ", ".join(choices.outputs), "finetune": "a model trained on your labels"}.get(
            choices.task, "embeddings")
        ins = " + ".join(i.modality for i in choices.inputs)
        text = f"<b>Ready:</b> {ins} → {what}"
        if area is not None and choices.resolution > 0 and choices.task != "finetune":
            width, height = area.width() / choices.resolution, area.height() / choices.resolution
            tiles = tile_count(width, height, choices.window, choices.overlap)
            text += (f" · {int(round(width)):,} × {int(round(height)):,} px · {tiles:,} tile{'s' * (tiles > 1)}"
                     f" · {choices.model_size} model")
        self.summary_label.setText(text)

    # -- run --------------------------------------------------------------------------------------
    def _make_task(self, description: str, spec: dict):
        if self.task_factory is not None:
            return self.task_factory(description, spec, on_finished=self._job_finished)
        from .task import TerraMindTask

        return TerraMindTask(description, spec, on_finished=self._job_finished, iface=self.iface)

    def run(self) -> None:
        if self.refresh():
            return
        if self.task() == "finetune":   # the dialog stays open: its page shows the live curve
            choices = self.choices()
            self.train_panel.start(choices, self._input_layers())
            self._save_settings()
            return
        spec = self.jobspec()
        choices = self.choices()
        folder = output_folder(choices)
        try:
            os.makedirs(folder, exist_ok=True)   # the backend writes into existing folders only
        except OSError as exc:
            self.output_error.show_message(f"Cannot create {folder}: {exc.strerror}")
            self.run_button.setEnabled(False)
            return
        self._review(spec, lambda: self._queue(spec, choices))

    def _review(self, spec: dict, proceed) -> None:
        """Ask the backend about the job in the background; queue it, show its problem, or ask first."""
        def decide(verdict):
            self.tasks = [t for t in self.tasks if not _task_done(t)]
            self.run_button.setEnabled(not self.problems)
            if verdict and verdict.get("problems"):
                problem = verdict["problems"][0]
                self.show_backend_problem(problem.get("field"), problem.get("message", ""))
            elif verdict and verdict.get("confirm"):
                from .job_review import ask_run_anyway

                self.confirm_box = ask_run_anyway(self, verdict["confirm"], proceed)
            else:
                proceed()
        if self.review_factory is not None:
            review = self.review_factory(spec, decide)
        else:
            from .job_review import ReviewTask

            review = ReviewTask(spec, decide)
        self.run_button.setEnabled(False)   # one review at a time; decide() re-enables it
        self.tasks.append(review)
        QgsApplication.taskManager().addTask(review)

    def _queue(self, spec: dict, choices: JobChoices) -> None:
        what = ", ".join(choices.outputs) if choices.task == "generate" else "embeddings"
        task = self._make_task(f"TerraMind: {what} ({choices.job_name})", spec)
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        self._save_settings()
        if self.iface is not None and self.iface.messageBar() is not None:
            self.iface.messageBar().pushMessage("TerraMind", f"Job '{choices.job_name}' started; the layers "
                                                "appear when it is done.", Qgis.Info, 5)
        self._job_name = self._new_job_name()
        self.name_edit.setText(self._job_name)
        self.hide()

    def _job_finished(self, outcome=None, *_) -> None:
        self.tasks = [t for t in self.tasks if not _task_done(t)]
        if getattr(outcome, "kind", None) == "validation":
            self.show_backend_problem(getattr(outcome, "field", None), outcome.message)

    def show_backend_problem(self, field: str | None, message: str) -> None:
        """The backend refused the job: reopen the dialog with its message next to the widget at fault.
        It stays until the user changes something."""
        self._backend_problem = Problem(self._dialog_field(field, message), message)
        self.refresh()
        self.show()
        self.raise_()

    def _dialog_field(self, field: str | None, message: str = "") -> str:
        """Backend fields name inputs by modality ('inputs.S1RTC.bands'); the dialog's by row."""
        if not field:
            return "outputs"
        parts = field.split(".")
        if parts[0] == "inputs" and len(parts) > 1:
            row = next((r for r in self.input_list.rows if r.modality() == parts[1]), None)
            return ".".join(["inputs", row.row_id] + parts[2:]) if row is not None else "inputs"
        if parts[0] == "outputs" and self.task() != "finetune":
            return "output_dir" if "folder" in message.lower() else "outputs"
        return field

    # -- remembered choices -----------------------------------------------------------------------
    @staticmethod
    def _new_job_name() -> str:
        return time.strftime("terramind_%Y%m%d_%H%M%S")

    def _save_settings(self) -> None:
        settings = Settings()
        settings.set_value(DIALOG_KEY + "task", self.task())
        for key, checks in (("outputs", self.output_checks), ("tim_modalities", self.tim_checks)):
            settings.set_value(DIALOG_KEY + key, ",".join(n for n, c in checks.items() if c.isChecked()))
        dialog_fields.remember(self, settings)
        self.uncertainty_row.save(QgsSettings(), SETTINGS_PREFIX)
        settings.set_value(DIALOG_KEY + "temporary", self.temporary_radio.isChecked())

    def _restore_settings(self) -> None:
        settings = Settings()

        def get(key, default, kind=str):
            return settings.value(DIALOG_KEY + key, default, kind)

        task = get("task", "generate")
        self.generate_radio.setChecked(task == "generate")
        self.train_radio.setChecked(task == "finetune")
        self.embed_radio.setChecked(task not in ("generate", "finetune"))
        self.embed_mode_combo.setCurrentIndex(max(0, self.embed_mode_combo.findData(task)))
        outputs = get("outputs", "LULC,NDVI").split(",")
        for name, check in self.output_checks.items():
            check.setChecked(name in outputs)
        tim = get("tim_modalities", "LULC").split(",")
        for name, check in self.tim_checks.items():
            check.setChecked(name in tim)
        dialog_fields.recall(self, settings)
        self.uncertainty_row.restore(get)
        temporary = get("temporary", True, bool)
        self.temporary_radio.setChecked(temporary)
        self.folder_radio.setChecked(not temporary)

    def done(self, result: int) -> None:  # noqa: D401 (Qt override): remember choices on close too
        self._save_settings()
        super().done(result)


def _fill_combo(combo: QComboBox, table) -> None:
    """One item per vocabulary choice: its label shown, its value as the item data, its hint as tooltip."""
    for choice in table:
        combo.addItem(choice.label, choice.value)
        if choice.hint:
            combo.setItemData(combo.count() - 1, choice.hint, Qt.ItemDataRole.ToolTipRole)


def _task_done(task) -> bool:
    try:
        return task.status() in (task.Complete, task.Terminated)
    except RuntimeError:  # the C++ task is already deleted
        return True
