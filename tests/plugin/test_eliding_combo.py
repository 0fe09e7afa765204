"""Combo boxes that may be narrower than their longest item (`widgets/eliding_combo.py`): the text elides, the
tooltip shows it whole. Offscreen QGIS."""
from __future__ import annotations

from qgis.PyQt.QtCore import QEvent, QPoint
from qgis.PyQt.QtGui import QHelpEvent
from qgis.PyQt.QtWidgets import QToolTip

from terramind_qgis.vocabulary import PRECISION_HINT, PRECISIONS
from terramind_qgis.widgets.choice_combo import fill_combo
from terramind_qgis.widgets.eliding_combo import ElidingComboBox


def test_a_long_combo_text_elides_and_shows_whole_in_the_tooltip(qgis_app, qtbot):
    combo = ElidingComboBox()
    qtbot.addWidget(combo)
    fill_combo(combo, PRECISIONS)
    combo.setToolTip(PRECISION_HINT)
    label = combo.currentText()
    assert combo.minimumSizeHint().width() < combo.fontMetrics().horizontalAdvance(label)   # it may get narrow
    combo.show()
    combo.resize(combo.fontMetrics().horizontalAdvance(label) + 80, 30)
    qtbot.wait(20)
    assert not combo.is_elided()              # room enough: the whole label shows
    combo.resize(combo.minimumSizeHint().width(), 30)
    qtbot.wait(20)
    assert combo.is_elided()
    combo.grab()                              # paints the elided text
    where = QPoint(5, 5)
    combo.event(QHelpEvent(QEvent.Type.ToolTip, where, combo.mapToGlobal(where)))
    assert QToolTip.text() == f"{label}\n\n{PRECISION_HINT}"
    QToolTip.hideText()
