"""The dialog's sections in two columns that scroll vertically and are never cut off on the right.

Side by side when both columns' minimum widths fit the width there is; otherwise the right column goes under the
left one (one column, scrolling down) instead of a horizontal scroll bar hiding half of the right column. What
a column needs changes while the dialog is open (another "What to make" page, "Limit to an extent" unfolded, whose
QGIS coordinate row alone is about 600 px wide), so the arrangement is checked again whenever the content asks
for a new layout, as well as on every resize.
"""
from __future__ import annotations

from qgis.PyQt.QtCore import QEvent
from qgis.PyQt.QtWidgets import QBoxLayout, QScrollArea, QVBoxLayout, QWidget

_SIDE_BY_SIDE, _STACKED = QBoxLayout.Direction.LeftToRight, QBoxLayout.Direction.TopToBottom


def _column(sections, spacing: int) -> QWidget:
    column = QWidget()
    layout = QVBoxLayout(column)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(spacing)
    for section in sections:
        layout.addWidget(section)
    layout.addStretch(1)
    return column


class SectionColumns(QScrollArea):
    """A scroll area over ``left`` and ``right`` sections; the columns share extra width by ``stretch``."""

    def __init__(self, left, right, stretch: tuple[int, int] = (6, 5), spacing: int = 12, parent=None):
        super().__init__(parent)
        self.left_column = _column(left, spacing=10)
        self.right_column = _column(right, spacing=10)
        body = QWidget()
        self._columns = QBoxLayout(_SIDE_BY_SIDE, body)
        self._columns.setContentsMargins(0, 0, 0, 0)
        self._columns.setSpacing(spacing)
        self._columns.addWidget(self.left_column, stretch[0])
        self._columns.addWidget(self.right_column, stretch[1])
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setWidget(body)
        body.installEventFilter(self)

    def side_by_side(self) -> bool:
        return self._columns.direction() == _SIDE_BY_SIDE

    def _arrange(self) -> None:
        needed = (self.left_column.minimumSizeHint().width() + self._columns.spacing()
                  + self.right_column.minimumSizeHint().width())
        # Measured as if the vertical scroll bar were always there, so its coming and going cannot flip the layout.
        available = self.width() - 2 * self.frameWidth() - self.verticalScrollBar().sizeHint().width()
        direction = _SIDE_BY_SIDE if needed <= available else _STACKED
        if self._columns.direction() != direction:
            self._columns.setDirection(direction)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._arrange()
        return super().eventFilter(watched, event)
