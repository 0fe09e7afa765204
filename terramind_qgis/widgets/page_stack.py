"""Pages of which one shows, sized by the page that shows.

QStackedWidget is not that: its QStackedLayout takes the size hint, minimum size and height-for-width of the
largest page, shown or not (QWidgetItem asks the layout for height-for-width, so overriding the widget's hints does
not help). A tall hidden page left an empty gap under the dialog's short "Generate layers" page, and the widest page
set the width of the whole column. Here the pages sit in a plain box layout and all but the current one are
hidden, and a layout leaves hidden widgets out of every size it computes.
"""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QVBoxLayout, QWidget


class PageStack(QWidget):
    """``addWidget`` pages, then ``setCurrentIndex`` shows one of them and hides the others."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._pages: list[QWidget] = []
        self._current = -1

    def addWidget(self, page: QWidget) -> int:
        self._pages.append(page)
        self._layout.addWidget(page)
        if self._current < 0:
            self._current = 0
        page.setVisible(len(self._pages) - 1 == self._current)
        return len(self._pages) - 1

    def setCurrentIndex(self, index: int) -> None:
        self._current = index
        for i, page in enumerate(self._pages):
            page.setVisible(i == index)

    def currentIndex(self) -> int:
        return self._current

    def currentWidget(self) -> QWidget | None:
        return self._pages[self._current] if 0 <= self._current < len(self._pages) else None
