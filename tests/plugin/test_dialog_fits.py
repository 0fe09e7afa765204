"""The dialog fits its window: no horizontal scroll bar and nothing cut off on the right, in every mode, at the
README screenshot's size and smaller (the two columns go one above the other when they do not fit side by side);
the "What to make" box is as tall as its shown page. On real headless QGIS (offscreen) with the README
screenshot's layers."""
from __future__ import annotations

import pytest
from qgis.PyQt.QtCore import QPoint
from qgis.PyQt.QtWidgets import QScrollArea

from test_dialog import dialog, layers  # noqa: F401  (fixtures)

MODES = ("generate_radio", "embed_radio", "train_radio")


def _as_in_the_screenshot(dlg, layers, size):  # noqa: F811
    """scripts/screenshot_dialog.py's dialog: S2L2A with its band table open, S1RTC, Advanced unfolded, the
    extent folded."""
    rows = dlg.input_list.rows
    rows[0].set_layer(layers["S2L2A"])
    dlg.input_list.add_row().set_layer(layers["S1RTC"])
    rows[0].bands_button.setChecked(True)
    dlg.advanced_box.setCollapsed(False)
    dlg.extent_box.setCollapsed(True)   # as on the screenshot's fresh profile (QGIS remembers the box's state)
    dlg.resize(*size)


def _settle(qtbot):
    qtbot.wait(50)   # layout requests and the scroll area's resize run from the event loop


def _clipped_on_the_right(dlg) -> list[str]:
    """Sections whose right edge lies beyond the scroll area's viewport, and a visible horizontal scroll bar."""
    scroll = dlg.findChild(QScrollArea)
    viewport = scroll.viewport()
    found = ["horizontal scroll bar"] if scroll.horizontalScrollBar().isVisible() else []
    if scroll.widget().minimumSizeHint().width() > viewport.width():
        found.append(f"content needs {scroll.widget().minimumSizeHint().width()} px of {viewport.width()}")
    for name in ("inputs_section", "model_section", "what_to_make", "area_section", "advanced_box", "output_box"):
        section = getattr(dlg, name)
        if section.isVisible():
            right = section.mapTo(viewport, QPoint(section.width(), 0)).x()
            if right > viewport.width():
                found.append(f"{name} ends at {right} px, the viewport at {viewport.width()}")
    return found


@pytest.mark.parametrize("mode", MODES)
def test_the_screenshot_dialog_fits_1240_by_1000_unclipped(dialog, layers, qtbot, mode):  # noqa: F811
    _as_in_the_screenshot(dialog, layers, (1240, 1000))
    getattr(dialog, mode).setChecked(True)
    _settle(qtbot)
    assert _clipped_on_the_right(dialog) == []
    assert dialog.sections.side_by_side()   # this size has room for both columns


@pytest.mark.parametrize("mode", MODES)
def test_a_smaller_dialog_scrolls_down_but_never_sideways(dialog, layers, qtbot, mode):  # noqa: F811
    _as_in_the_screenshot(dialog, layers, (1000, 800))
    getattr(dialog, mode).setChecked(True)
    _settle(qtbot)
    assert _clipped_on_the_right(dialog) == []
    dialog.extent_box.setChecked(True)        # QGIS's extent widget is about 600 px wide on its own
    dialog.extent_box.setCollapsed(False)
    _settle(qtbot)
    assert _clipped_on_the_right(dialog) == []


def test_the_columns_stack_while_they_do_not_fit_side_by_side(dialog, layers, qtbot):  # noqa: F811
    _as_in_the_screenshot(dialog, layers, (1240, 1000))
    _settle(qtbot)
    columns = dialog.sections
    folded = columns.right_column.minimumSizeHint().width()
    dialog.extent_box.setChecked(True)
    dialog.extent_box.setCollapsed(False)
    _settle(qtbot)
    unfolded = columns.right_column.minimumSizeHint().width()
    assert unfolded > folded + 40             # the extent widget widens the right column
    # a width with room for the folded right column but not the unfolded one (fonts differ between platforms)
    left = columns.left_column.minimumSizeHint().width() + columns.widget().layout().spacing()
    spare = columns.width() - left - columns.verticalScrollBar().sizeHint().width()
    dialog.resize(dialog.width() - spare + (folded + unfolded) // 2, 1000)
    _settle(qtbot)
    assert not columns.side_by_side() and _clipped_on_the_right(dialog) == []
    dialog.extent_box.setCollapsed(True)
    _settle(qtbot)
    assert columns.side_by_side() and _clipped_on_the_right(dialog) == []


@pytest.mark.parametrize("mode", MODES)
def test_what_to_make_is_as_tall_as_its_shown_page(dialog, layers, qtbot, mode):  # noqa: F811
    """A stacked widget sized by its tallest page left an empty gap under "Generate layers"' options."""
    _as_in_the_screenshot(dialog, layers, (1240, 1000))
    getattr(dialog, mode).setChecked(True)
    _settle(qtbot)
    stack = dialog.what_to_make.output_stack
    page = stack.currentWidget()
    needed = page.heightForWidth(page.width()) if page.hasHeightForWidth() else page.sizeHint().height()
    assert stack.height() - max(needed, page.minimumSizeHint().height()) < 20
