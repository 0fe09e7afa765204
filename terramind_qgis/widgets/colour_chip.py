"""A colour chip for rich-text labels (class legends): a square in the class colour inside a dark outline, so a
white or grey class stays visible on the dialog's grey background."""
from __future__ import annotations

CHIP_OUTLINE = "#5f6b7a"


def colour_chip(colour: str) -> str:
    # Qt's rich text has no CSS borders on inline text: the outline is the span's background showing around the
    # square glyph, which never fills its whole line box.
    return f"<span style='background-color:{CHIP_OUTLINE}; color:{colour}'>■</span>"
