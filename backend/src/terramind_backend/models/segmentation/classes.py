"""Class names and colours of a segmentation model, and the user-editable sidecar file.

Sidecar: ``<checkpoint>.classes.json`` beside the checkpoint (e.g. ``flood.ckpt.classes.json``)::

    {"classes": [{"value": 0, "name": "Not water", "color": "#000000"},
                 {"value": 1, "name": "Water",     "color": "#3171AD"}]}

``value`` is the class index the model predicts (the pixel value written to the class raster);
``name`` and ``color`` (``#RRGGBB``) are optional. A plain list of names is accepted too.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
# A qualitative palette (Tableau 10 + 10 lighter tones) for classes without a given colour.
_PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22",
            "#17BECF", "#AEC7E8", "#FFBB78", "#98DF8A", "#FF9896", "#C5B0D5", "#C49C94", "#F7B6D2", "#C7C7C7",
            "#DBDB8D", "#9EDAE5"]


class ClassTableError(ValueError):
    """The class names/colours given by a checkpoint, config or sidecar are malformed."""


@dataclass(frozen=True)
class SegmentationClass:
    value: int
    name: str
    color: str  # "#RRGGBB"

    @property
    def rgb(self) -> tuple:
        return tuple(int(self.color[i:i + 2], 16) for i in (1, 3, 5))

    def to_dict(self) -> dict:
        return {"value": self.value, "name": self.name, "color": self.color}


def sidecar_path(checkpoint) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.name + ".classes.json")


def default_color(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def _color(value, where: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) in (3, 4) and all(isinstance(v, int) for v in value):
        if not all(0 <= v <= 255 for v in value[:3]):
            raise ClassTableError(f"{where}: colour components must be 0..255, got {list(value)}")
        return "#{:02X}{:02X}{:02X}".format(*value[:3])
    match = _HEX.match(str(value).strip())
    if not match:
        raise ClassTableError(f"{where}: colour {value!r} is not '#RRGGBB' or [r, g, b]")
    return "#" + match.group(1).upper()


def build_class_table(num_classes: int, names: Optional[Sequence] = None, colors: Optional[Sequence] = None
                      ) -> List[SegmentationClass]:
    """One entry per class index; missing names become ``class <i>``, missing colours the palette."""
    names = list(names or [])
    colors = list(colors or [])
    table = []
    for i in range(num_classes):
        name = str(names[i]) if i < len(names) and names[i] is not None else f"class {i}"
        color = _color(colors[i], f"class {i}") if i < len(colors) else None
        table.append(SegmentationClass(i, name, color or default_color(i)))
    return table


def read_sidecar(path, num_classes: int) -> List[SegmentationClass]:
    """Parse a sidecar (see module docstring) into a full table of ``num_classes`` entries."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassTableError(f"Cannot read class sidecar {path}: {exc}") from None
    entries = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ClassTableError(f"{path}: expected {{\"classes\": [...]}} or a list of class names")
    names: List[Optional[str]] = [None] * num_classes
    colors: List[Optional[str]] = [None] * num_classes
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"value": i, "name": entry}
        if not isinstance(entry, dict):
            raise ClassTableError(f"{path}: class entry {i} must be an object or a name, got {entry!r}")
        value = entry.get("value", i)
        if not isinstance(value, int) or not 0 <= value < num_classes:
            raise ClassTableError(f"{path}: class value {value!r} is outside 0..{num_classes - 1} "
                                  f"(the model predicts {num_classes} classes)")
        names[value] = entry.get("name")
        colors[value] = _color(entry.get("color"), f"{path}: class {value}")
    return build_class_table(num_classes, names, colors)


def write_sidecar(path, classes: Sequence[SegmentationClass]) -> Path:
    """Write a sidecar the user can edit (used to offer a template for a checkpoint)."""
    path = Path(path)
    text = json.dumps({"classes": [c.to_dict() for c in classes]}, indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path
