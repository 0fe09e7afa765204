"""Combo boxes that may be narrower than their longest item: the shown text ends in "…", the tooltip gives it whole.

Qt's default (AdjustToContentsOnFirstShow) makes a combo's minimum width that of its longest item, so one long
label, e.g. the precision "Automatic (bf16 where measured faster, fp32 otherwise)", sets the minimum width of the
dialog's whole column. These combos still ask for their longest item's width (their size hint), but need only
`MIN_CHARACTERS` (their minimum), so a layout short of room narrows them instead of overflowing.
"""
from __future__ import annotations

from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QEvent, QSize, Qt
from qgis.PyQt.QtWidgets import QComboBox, QStyle, QStyleOptionComboBox, QStylePainter, QToolTip

MIN_CHARACTERS = 10   # what a combo shows at the least before its text is elided
_ICON_GAP = 4         # px between the item's icon and its text (as QCommonStyle draws the label)


class ElideCurrentText:
    """Mix into a QComboBox (first among the bases): elide the shown text, and show it whole in the tooltip."""

    def _init_eliding(self) -> None:
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(MIN_CHARACTERS)

    def sizeHint(self) -> QSize:
        """Wide enough for the longest item, as Qt's default; the minimum stays `MIN_CHARACTERS` wide."""
        hint = super().sizeHint()   # for MIN_CHARACTERS "X"s, as Qt measures it
        metrics = self.fontMetrics()
        longest = max((metrics.horizontalAdvance(self.itemText(i)) for i in range(self.count())), default=0)
        return QSize(hint.width() + max(0, longest - MIN_CHARACTERS * metrics.horizontalAdvance("X")), hint.height())

    def _text_width(self, option: QStyleOptionComboBox) -> int:
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        icon = option.iconSize.width() + _ICON_GAP if not option.currentIcon.isNull() else 0
        return field.width() - icon

    def is_elided(self) -> bool:
        """The current text is too long for the combo's width."""
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        return option.fontMetrics.horizontalAdvance(option.currentText) > self._text_width(option)

    def paintEvent(self, _event) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = option.fontMetrics.elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           self._text_width(option))
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip and self.is_elided():
            tip = "\n\n".join(text for text in (self.currentText(), self.toolTip()) if text)
            QToolTip.showText(event.globalPos(), tip, self)
            return True
        return super().event(event)


class ElidingComboBox(ElideCurrentText, QComboBox):
    """A QComboBox that elides its shown text instead of widening the layout."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._init_eliding()


class ElidingLayerComboBox(ElideCurrentText, QgsMapLayerComboBox):
    """A QgsMapLayerComboBox that elides the layer name instead of widening the layout."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._init_eliding()
