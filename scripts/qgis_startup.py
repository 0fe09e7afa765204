"""Run by `qgis --code` from scripts/run_qgis.sh: check that TerraMind is loaded and its backend answers,
then (under Xvfb) save a screenshot. Runs inside QGIS's own Python, so: no torch here either."""
import os
import sys

import qgis.utils
from qgis.core import QgsApplication, QgsMessageLog, QgsProject, Qgis
from qgis.PyQt.QtCore import QTimer

RUN_DIR = os.environ.get("TERRAMIND_RUN_DIR", os.getcwd())
STATUS = os.path.join(RUN_DIR, "startup-status.txt")


def _report(lines):
    with open(STATUS, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for line in lines:
        QgsMessageLog.logMessage(line, "TerraMind", Qgis.Info)
        print(line, file=sys.stderr)


def _check():
    qgis.utils.iface.mainWindow().showMaximized()
    lines = []
    plugin = qgis.utils.plugins.get("terramind_qgis")
    lines.append(f"plugin loaded: {plugin is not None}")
    if plugin is not None:
        try:
            from terramind_qgis.client import get_client

            hello = get_client().hello()
            lines.append(f"backend: terramind {hello.get('backend')} on {hello.get('device')} (torch {hello.get('torch')})")
        except Exception as exc:  # shown to the user, never fatal for QGIS
            lines.append(f"backend: not ready ({exc}); open TerraMind > Settings and backend… to install it")
        try:
            plugin.show_dialog()
            lines.append("dialog: shown")
        except Exception as exc:
            lines.append(f"dialog: failed ({exc!r})")
    _report(lines)
    QTimer.singleShot(2500, _shoot)


def _shoot():
    # the whole screen: the TerraMind dialog is a window of its own
    QgsApplication.primaryScreen().grabWindow(0).save(os.path.join(RUN_DIR, "screenshot.png"), "PNG")
    exit_after = os.environ.get("TERRAMIND_EXIT_AFTER")
    if exit_after:
        QTimer.singleShot(int(float(exit_after) * 1000), _quit)


def _quit():
    QgsProject.instance().setDirty(False)
    QgsApplication.instance().quit()


QTimer.singleShot(3000, _check)
