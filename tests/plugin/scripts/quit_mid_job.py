"""QGIS desktop `--code` script (tests/plugin/test_quit_mid_job.py): start a TerraMind job through the plugin,
then quit QGIS while it runs. Everything it learns goes to $TERRAMIND_QUIT_REPORT as JSON lines."""
import json
import os
import time

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, loadPlugin, startPlugin

REPORT = os.environ["TERRAMIND_QUIT_REPORT"]
SPEC = json.loads(os.environ["TERRAMIND_QUIT_SPEC"])


def note(**fields):
    fields["t"] = round(time.monotonic(), 2)
    with open(REPORT, "a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


assert loadPlugin("terramind_qgis") and startPlugin("terramind_qgis"), "plugin did not start"
from terramind_qgis.settings import Settings  # noqa: E402  (the plugin's package is importable now)
from terramind_qgis.task import TerraMindTask  # noqa: E402

settings = Settings()
settings.backend_python = os.environ["TERRAMIND_QUIT_BACKEND"]
settings.cache_dir = os.environ["TERRAMIND_QUIT_HUB"]
settings.offline = True


def quit_qgis():
    note(quit_called=True)
    QgsProject.instance().setDirty(False)
    QgsApplication.instance().quit()


def finished(outcome):  # must not be called once QGIS is quitting
    note(on_finished=type(outcome).__name__, message=getattr(outcome, "message", None))
    QTimer.singleShot(0, quit_qgis)


task = TerraMindTask("quit test", SPEC, on_finished=finished, iface=iface)
progress = []


def user():
    """A user who wants out: the first "cancel the active tasks?" question gets No, later ones Yes; while no
    question is up, quit (again). Runs until QGIS is gone."""
    from qgis.PyQt.QtWidgets import QApplication, QMessageBox

    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        answers.append(box.text())
        note(question=box.text())
        button = box.button(QMessageBox.No if len(answers) == 1 else QMessageBox.Yes)
        button.click() if button is not None else box.reject()
    elif answers:
        quit_qgis()
    QTimer.singleShot(300, user)


answers = []


def on_progress(value):
    if value > 25 and not progress:  # windows are being predicted: close the main window, then quit
        progress.append(value)
        note(quitting=True, progress=value, backend_pid=task.client.pid)
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(100, user)
        QTimer.singleShot(0, iface.mainWindow().close)


task.progressChanged.connect(on_progress)
QgsApplication.instance().aboutToQuit.connect(lambda: note(about_to_quit=True))
QgsApplication.taskManager().addTask(task)
QTimer.singleShot(90000, quit_qgis)  # safety net: the test fails on the report, it does not hang
note(started=True)
