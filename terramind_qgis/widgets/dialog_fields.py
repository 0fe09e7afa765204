"""The dialog's plain fields as one table: which widget, which remembered-settings key, which default.

`recall` restores them and `remember` saves them (through `settings.Settings`, under ``terramind/dialog/``);
`connect` re-checks the job whenever one of them changes. Fields with their own logic (the task radios,
the output and TiM check boxes, the uncertainty row, temporary vs folder) are saved and restored by their
sections (`what_to_make_section.py`, `output_files_section.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox

from ..vocabulary import DEFAULT_MODEL_SIZE

DIALOG_KEY = "dialog/"   # below the plugin's settings prefix


@dataclass(frozen=True)
class Field:
    key: str                                  # settings key below terramind/dialog/
    widget: str                               # the dialog attribute holding the widget
    kind: type                                # str, int or bool: how the remembered value is read back
    default: Union[Any, Callable[[Any], Any]]  # a value, or settings -> value (the plugin-wide settings decide)


FIELDS = (
    Field("model_size", "size_combo", str, DEFAULT_MODEL_SIZE),
    Field("device", "device_combo", str, lambda s: s.device),
    Field("merge_method", "merge_combo", str, "mean"),
    Field("layer", "layer_spin", int, -1),
    Field("window", "window_spin", int, lambda s: s.tiling.window),
    Field("overlap", "overlap_spin", int, lambda s: s.tiling.overlap),
    Field("batch_size", "batch_spin", int, lambda s: s.tiling.batch_size),
    Field("timesteps", "steps_spin", int, 10),
    Field("seed", "seed_spin", int, 0),
    Field("standardize", "standardize_check", bool, True),
    Field("precision", "precision_combo", str, "auto"),
    Field("use_location", "location_check", bool, False),
    Field("output_dir", "folder_widget", str, ""),
)


def read(widget):
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QgsFileWidget):
        return widget.filePath()
    return widget.value()


def write(widget, value) -> None:
    if isinstance(widget, QComboBox):
        widget.setCurrentIndex(max(0, widget.findData(value)))
    elif isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QgsFileWidget):
        widget.setFilePath(value)
    else:
        widget.setValue(value)


def changed(widget):
    """The widget's signal for "the user changed the value"."""
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QCheckBox):
        return widget.toggled
    if isinstance(widget, QgsFileWidget):
        return widget.fileChanged
    if isinstance(widget, QAbstractSpinBox):
        return widget.valueChanged
    raise TypeError(f"dialog_fields has no rule for {type(widget).__name__} widgets")


def recall(dialog, settings) -> None:
    for field in FIELDS:
        default = field.default(settings) if callable(field.default) else field.default
        write(getattr(dialog, field.widget), settings.value(DIALOG_KEY + field.key, default, field.kind))


def remember(dialog, settings) -> None:
    for field in FIELDS:
        settings.set_value(DIALOG_KEY + field.key, read(getattr(dialog, field.widget)))


def connect(dialog, slot) -> None:
    for field in FIELDS:
        changed(getattr(dialog, field.widget)).connect(slot)
