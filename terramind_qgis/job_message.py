"""One message per job in QGIS's message bar, ours, on top: what was made, where the files are, how long.

QGIS 3.22 announces every task that ran at least ``minTaskLengthForSystemNotification`` seconds (5 by
default) as "Task complete"/"Task failed" with the task's description as text; without a desktop
notification service that lands in the message bar, above ours, and pushes ours under "1 more".
QgsTask has no flag to opt out before QGIS 3.26 (``QgsTask.Silent``), so we take that notice down: its
text is exactly our task's description, so no one else's message is touched.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterable, Optional

from qgis.PyQt.QtCore import QTimer, QUrl
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QPushButton

NOTICE_WINDOW_MS = 5000   # how long after our message QGIS's own notice is still taken down
MESSAGE_SECONDS = 15


def output_folder(paths: Iterable[str]) -> Optional[str]:
    """The folder holding all output files (their common parent), or None when there are none."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths if p]
    if not folders:
        return None
    return os.path.commonpath(folders)


def is_temporary(folder: str) -> bool:
    temp = os.path.realpath(tempfile.gettempdir())
    return os.path.realpath(folder).startswith(temp + os.sep) or os.path.realpath(folder) == temp


def where_text(folder: Optional[str]) -> str:
    if not folder:
        return ""
    return f"temporary files in {folder}" if is_temporary(folder) else f"files in {folder}"


def push_job_message(bar, title: str, text: str, level, folder: Optional[str] = None):
    """Our one message: ``title`` once (never "TerraMind: TerraMind …"), ``text``, and an "Open folder"
    button when the job wrote files. Returns the bar item (None on a bar without items, e.g. a test mock)."""
    if not hasattr(bar, "pushItem"):
        bar.pushMessage(title, text, level, MESSAGE_SECONDS)
        return None
    from qgis.gui import QgsMessageBarItem

    item = QgsMessageBarItem(title, text, level, MESSAGE_SECONDS)
    if folder:
        # parented to the item, so Qt owns it (a parentless button would be freed by Python under the item)
        button = QPushButton("Open folder", item)
        button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        item.layout().addWidget(button)
    bar.pushItem(item)
    return item


def take_down_qgis_notice(bar, description: str) -> None:
    """Remove QGIS's generic "Task complete/failed" notice for the task ``description``, now or when it
    arrives within ``NOTICE_WINDOW_MS``."""
    if not hasattr(bar, "items") or not hasattr(bar, "widgetAdded"):
        return

    def take_down() -> None:
        for item in list(bar.items()):
            try:
                if item.text() == description:
                    bar.popWidget(item)
            except RuntimeError:   # the item was deleted meanwhile
                pass

    take_down()
    # widgetAdded hands a plain QWidget: look at the bar's items once the push is over
    on_added = lambda _widget: QTimer.singleShot(0, take_down)  # noqa: E731
    bar.widgetAdded.connect(on_added)

    def stop() -> None:
        try:
            bar.widgetAdded.disconnect(on_added)
        except (TypeError, RuntimeError):
            pass
    QTimer.singleShot(NOTICE_WINDOW_MS, stop)
