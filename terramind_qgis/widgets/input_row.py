"""One input of the TerraMind dialog: a raster layer, its modality and its band mapping.

Picking a layer guesses the modality (`modalities.guess_modality`) and the band mapping; the user can
change both. The band mapping editor is a two-column table (model band → raster band) that folds away.
"""
from __future__ import annotations

import os

from qgis.core import (Qgis, QgsApplication, QgsMapLayerModel, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer,
                       QgsRectangle)
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QHeaderView, QLabel,
                                 QStyledItemDelegate, QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

from ..modalities import (BAND_CODES, INPUT_MODALITIES, MODALITIES, RasterFacts, default_band_mapping,
                          guess_modality, hints_from_path, mapping_problem)
from .eliding_combo import ElidingComboBox, ElidingLayerComboBox
from .messages import MessageLabel

_DATA_TYPES = {
    Qgis.Byte: "Byte", Qgis.UInt16: "UInt16", Qgis.Int16: "Int16", Qgis.UInt32: "UInt32", Qgis.Int32: "Int32",
    Qgis.Float32: "Float32", Qgis.Float64: "Float64",
}
_SAMPLE_PX = 64   # one-band rasters: the value range comes from a 64×64 px window
# Layers the backend cannot read as files.
_WEB_PROVIDERS = ["wms", "wcs", "arcgismapserver", "postgresraster", "mdal"]
_LAYER_TIP = "A raster layer backed by a local file (GeoTIFF or anything GDAL reads)"


def usable_raster(layer) -> bool:
    """A raster layer the input combo offers (backed by something the backend can read as a file)."""
    return isinstance(layer, QgsRasterLayer) and layer.providerType() not in _WEB_PROVIDERS


def first_input_layer(active=None) -> QgsRasterLayer | None:
    """The layer a new dialog starts from: the active layer if it can be an input, else the topmost in the legend."""
    if usable_raster(active):
        return active
    tree = QgsProject.instance().layerTreeRoot()
    return next((node.layer() for node in tree.findLayers() if usable_raster(node.layer())), None)


def source_tail(layer) -> str:
    """The file's folder and name ('S2L2A/tile.tif'): enough to tell apart layers that share a name."""
    path = layer.source().split("|", 1)[0]
    return "/".join(part for part in (os.path.basename(os.path.dirname(path)), os.path.basename(path)) if part)


def has_twin(layer) -> bool:
    """Another layer of the project has the same name."""
    return sum(1 for other in QgsProject.instance().mapLayers().values() if other.name() == layer.name()) > 1


def twin_aware_name(layer) -> str:
    """The layer's name, with its folder/file when another layer has the same name."""
    return f"{layer.name()} — {source_tail(layer)}" if has_twin(layer) else layer.name()


class _TwinAwareDelegate(QStyledItemDelegate):
    """Draws the layer list with twin_aware_name (the combo's own model and row bookkeeping stay QGIS's)."""

    def initStyleOption(self, option, index):
        super().initStyleOption(option, index)
        layer = index.data(QgsMapLayerModel.LayerRole)
        if layer is not None:
            option.text = twin_aware_name(layer)


def band_description(layer: QgsRasterLayer, band: int) -> str:
    """The GDAL band description ('' when none): QGIS shows it as 'Band 3: B03'."""
    name = layer.bandName(band)
    return name.split(":", 1)[1].strip() if ":" in name else ""


def _value_range(layer: QgsRasterLayer) -> tuple[float, float] | None:
    """Min/max of a 64×64 px window at the raster's centre, read at full resolution: cheap for any file
    size and leaves no statistics file behind (QGIS's band statistics would write .aux.xml)."""
    extent = layer.extent()
    half_w = min(extent.width(), _SAMPLE_PX * layer.rasterUnitsPerPixelX()) / 2
    half_h = min(extent.height(), _SAMPLE_PX * layer.rasterUnitsPerPixelY()) / 2
    centre = extent.center()
    window = QgsRectangle(centre.x() - half_w, centre.y() - half_h, centre.x() + half_w, centre.y() + half_h)
    columns = max(1, min(_SAMPLE_PX, layer.width()))
    rows = max(1, min(_SAMPLE_PX, layer.height()))
    block = layer.dataProvider().block(1, window, columns, rows)
    values = [block.value(r, c) for r in range(block.height()) for c in range(block.width())
              if not block.isNoData(r, c)]
    values = [v for v in values if v == v]
    return (min(values), max(values)) if values else None


def raster_facts(layer: QgsRasterLayer) -> RasterFacts:
    """What `guess_modality` needs to know about a QGIS raster layer."""
    count = layer.bandCount()
    data_type = _DATA_TYPES.get(layer.dataProvider().dataType(1), "unknown")
    is_float = data_type.startswith("Float")
    return RasterFacts(
        band_count=count,
        data_type=data_type,
        descriptions=tuple(band_description(layer, b) for b in range(1, count + 1)),
        hints=hints_from_path(layer.source(), layer.name()),
        value_range=_value_range(layer) if count == 1 and is_float else None,
    )


def band_title(name: str) -> str:
    """COASTAL_AEROSOL → 'Coastal aerosol', SWIR_1 → 'SWIR 1', VV stays VV."""
    if name in ("VV", "VH", "DEM", "LULC", "NDVI"):
        return name
    text = name.replace("_", " ").capitalize()
    return text.replace("Nir", "NIR").replace("Swir", "SWIR")


def modality_label(name: str) -> str:
    return f"{name} — {MODALITIES[name].title}"


class BandMappingTable(QTableWidget):
    """Model band (rows, pretrained order) → raster band (a combo per row)."""

    mappingChanged = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["Model band", "Raster band"])
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAlternatingRowColors(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._combos: list[QComboBox] = []

    def set_mapping(self, model_bands, raster_bands: list[str], mapping) -> None:
        self.setRowCount(len(model_bands))
        self._combos = []
        for row, (name, band) in enumerate(zip(model_bands, mapping)):
            code = BAND_CODES.get(name)
            item = QTableWidgetItem(band_title(name) + (f"  ({code})" if code else ""))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.setItem(row, 0, item)
            combo = QComboBox()
            combo.setObjectName(f"band_{name}")
            combo.addItem("— choose —", None)
            for index, label in enumerate(raster_bands, start=1):
                combo.addItem(label, index)
            combo.setCurrentIndex(band if band is not None and band <= len(raster_bands) else 0)
            combo.currentIndexChanged.connect(lambda _index: self.mappingChanged.emit())
            self.setCellWidget(row, 1, combo)
            self._combos.append(combo)
        self.resizeRowsToContents()
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        self.setFixedHeight(self.horizontalHeader().height() + rows + 2 * self.frameWidth() + 6)

    def mapping(self) -> list[int | None]:
        return [combo.currentData() for combo in self._combos]

    def set_band(self, model_row: int, raster_band: int | None) -> None:
        combo = self._combos[model_row]
        combo.setCurrentIndex(0 if raster_band is None else combo.findData(raster_band))


class InputRow(QFrame):
    """Modality combo + layer combo + band-mapping toggle + remove button, with messages underneath."""

    changed = pyqtSignal()
    removeRequested = pyqtSignal(object)

    def __init__(self, row_id: str, parent=None):
        super().__init__(parent)
        self.row_id = row_id
        self.setObjectName(f"input_{row_id}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._facts: RasterFacts | None = None
        self._layer_id: str | None = None     # the layer the guess and the band table were made for
        self._user_modality = False

        self.layer_combo = ElidingLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setExcludedProviders(_WEB_PROVIDERS)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        self.layer_combo.setToolTip(_LAYER_TIP)
        self.layer_combo.setItemDelegate(_TwinAwareDelegate(self.layer_combo))

        self.modality_combo = ElidingComboBox()
        self.modality_combo.addItem("Modality…", None)
        for name in INPUT_MODALITIES:
            self.modality_combo.addItem(modality_label(name), name)
            self.modality_combo.setItemData(self.modality_combo.count() - 1, MODALITIES[name].description,
                                            Qt.ItemDataRole.ToolTipRole)
        self.modality_combo.setToolTip("What this layer shows; guessed from its bands, change it if the guess is wrong")

        self.bands_button = QToolButton()
        self.bands_button.setCheckable(True)
        self.bands_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.bands_button.setArrowType(Qt.ArrowType.RightArrow)
        self.bands_button.setText("Bands")
        self.bands_button.setToolTip("Show which raster band feeds each model band")
        self.bands_button.setEnabled(False)

        self.remove_button = QToolButton()
        self.remove_button.setIcon(QgsApplication.getThemeIcon("/symbologyRemove.svg"))
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip("Remove this input")

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.layer_combo, 1)
        top.addWidget(self.modality_combo, 1)
        top.addWidget(self.bands_button)
        top.addWidget(self.remove_button)

        self.guess_label = MessageLabel("hint")
        self.error_label = MessageLabel("error")
        self.table = BandMappingTable()
        self.table.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.guess_label)
        layout.addWidget(self.table)
        layout.addWidget(self.error_label)

        self.layer_combo.layerChanged.connect(self._layer_changed)
        self.modality_combo.activated.connect(self._modality_picked)
        self.bands_button.toggled.connect(self._toggle_table)
        self.table.mappingChanged.connect(self._mapping_edited)
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(self))
        # When its layer leaves the project the combo silently selects another one; empty the row instead.
        QgsProject.instance().layersWillBeRemoved.connect(self._layers_leaving)

    # -- values --------------------------------------------------------------------------
    def layer(self) -> QgsRasterLayer | None:
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def modality(self) -> str | None:
        return self.modality_combo.currentData()

    def mapping(self) -> list[int | None] | None:
        return self.table.mapping() if self.modality() and self.layer() else None

    def band_count(self) -> int:
        layer = self.layer()
        return layer.bandCount() if layer else 0

    def ensure_current(self) -> None:
        """Redo the guess if the combo changed its layer without telling (e.g. while layers were removed)."""
        layer = self.layer()
        if (layer.id() if layer else None) != self._layer_id:
            self._layer_changed()

    def set_layer(self, layer) -> None:
        self.layer_combo.setLayer(layer)

    def set_modality(self, name: str | None) -> None:
        """Choose the modality as the user would (it is no longer re-guessed)."""
        self.modality_combo.setCurrentIndex(max(0, self.modality_combo.findData(name)))
        self._modality_picked()

    def extent(self) -> QgsRectangle | None:
        layer = self.layer()
        return layer.extent() if layer else None

    def show_problem(self, message: str | None) -> None:
        self.error_label.show_message(message)
        if message and ("band" in message.lower()) and self.table.rowCount():
            self.bands_button.setChecked(True)

    # -- reactions -----------------------------------------------------------------------
    def _layers_leaving(self, layer_ids) -> None:
        if self._layer_id is not None and self._layer_id in layer_ids:
            self.layer_combo.setLayer(None)
            self._layer_changed()

    def _layer_changed(self, _layer=None) -> None:
        layer = self.layer()
        self._layer_id = layer.id() if layer else None
        self._facts = raster_facts(layer) if layer else None
        self.layer_combo.setToolTip(layer.source() if layer else _LAYER_TIP)
        if self._facts is None:
            self.guess_label.show_message(None)
        elif not self._user_modality:
            guess = guess_modality(self._facts)
            self.modality_combo.setCurrentIndex(max(0, self.modality_combo.findData(guess.modality)))
            note = f"Guessed {guess.modality}: {guess.reason}" if guess.modality else guess.reason
            if has_twin(layer):   # the closed combo shows only the name: say which of the twins this is
                note = f"{source_tail(layer)} · {note}"
            sure = guess.modality is not None and guess.confidence != "low"
            self.guess_label.show_message(note, "hint" if sure else "warning")
        else:
            self.guess_label.show_message(f"{self._facts.band_count} bands, {self._facts.data_type}", "hint")
        self._reset_mapping()

    def _modality_picked(self, _index=None) -> None:
        self._user_modality = self.modality() is not None
        if self._facts is not None:
            self.guess_label.show_message(f"{self._facts.band_count} bands, {self._facts.data_type}", "hint")
        self._reset_mapping()

    def _reset_mapping(self) -> None:
        modality, layer = self.modality(), self.layer()
        if modality is None or layer is None or self._facts is None:
            self.table.set_mapping((), [], [])
            self.table.setVisible(False)
            self.bands_button.setEnabled(False)
            self.bands_button.setChecked(False)
            self._update_button()
            self.changed.emit()
            return
        model_bands = MODALITIES[modality].bands
        labels = [layer.bandName(b) for b in range(1, layer.bandCount() + 1)]
        self.table.set_mapping(model_bands, labels, default_band_mapping(modality, self._facts))
        self.bands_button.setEnabled(True)
        self._update_button()
        self.changed.emit()

    def _mapping_edited(self) -> None:
        self._update_button()
        self.changed.emit()

    def _update_button(self) -> None:
        mapping, modality = self.table.mapping(), self.modality()
        if not mapping or modality is None:
            self.bands_button.setText("Bands")
            return
        ok = mapping_problem(modality, mapping, self.band_count()) is None
        done = sum(b is not None for b in mapping)
        self.bands_button.setText(f"{done}/{len(mapping)} bands" + ("" if ok else " ⚠"))

    def _toggle_table(self, shown: bool) -> None:
        self.table.setVisible(shown)
        self.bands_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


class InputList(QWidget):
    """The stack of input rows; always at least one."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[InputRow] = []
        self._next = 1
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self.add_row()

    def add_row(self) -> InputRow:
        row = InputRow(str(self._next))
        self._next += 1
        row.changed.connect(self.changed)
        row.removeRequested.connect(self.remove_row)
        self.rows.append(row)
        self._layout.addWidget(row)
        self._update_remove_buttons()
        self.changed.emit()
        return row

    def remove_row(self, row: InputRow) -> None:
        if len(self.rows) <= 1:
            row.set_layer(None)
            return
        self.rows.remove(row)
        self._layout.removeWidget(row)
        row.deleteLater()
        self._update_remove_buttons()
        self.changed.emit()

    def row(self, row_id: str) -> InputRow | None:
        return next((r for r in self.rows if r.row_id == row_id), None)

    def _update_remove_buttons(self) -> None:
        for row in self.rows:
            row.remove_button.setEnabled(len(self.rows) > 1 or row.layer() is not None)


def hline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color: #5f6b7a;")
    label.setWordWrap(True)
    return label
