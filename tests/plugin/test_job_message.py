"""One message per job on a real QgsMessageBar: ours, on top, title once, with the output folder and an
"Open folder" button; QGIS's generic "Task complete" notice for the task (QgisApp pushes it with the task's
description as text, job_message.py) is taken down, other messages stay."""
import shutil
import tempfile
import time

import pytest
from qgis.core import Qgis, QgsApplication, QgsRasterLayer
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton

from tests.conftest import sample
from terramind_qgis.client import BackendClient
from terramind_qgis.job_message import output_folder, where_text
from terramind_qgis.task import Done, Failed, TerraMindTask


class _Iface:
    def __init__(self):
        self.bar = QgsMessageBar()

    def messageBar(self):  # noqa: N802
        return self.bar


def _settle(ms=200):
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QgsApplication.processEvents()


@pytest.fixture
def out_dir():
    folder = tempfile.mkdtemp(prefix="terramind-msg-")
    yield folder
    shutil.rmtree(folder)


def _finish(task, outcome):
    task.outcome = outcome
    task.place_layers = lambda layers: layers   # keep the project out of it
    task.finished(isinstance(outcome, Done))


def test_one_message_on_top_with_the_folder(qgis_app, out_dir):
    iface = _Iface()
    bar = iface.bar
    task = TerraMindTask("TerraMind generate #1", {}, client=BackendClient(None), iface=iface)
    bar.pushMessage("Other plugin", "unrelated", Qgis.Info, 0)
    bar.pushMessage("Task complete", task.description(), Qgis.Info, 0)  # QGIS's notice, before ours
    layer = QgsRasterLayer(str(sample("S2L2A")), "LULC")
    result = {"outputs": [{"path": f"{out_dir}/lulc.tif"}], "elapsed_s": 42.0}
    _finish(task, Done(result, [layer]))
    bar.pushMessage("Task complete", task.description(), Qgis.Info, 0)  # ... or after it
    _settle()

    texts = [(item.title(), item.text()) for item in bar.items()]
    assert ("Other plugin", "unrelated") in texts and not [t for t in texts if t[0] == "Task complete"]
    ours = bar.currentItem()
    assert ours.title() == "TerraMind generate #1" and not ours.text().startswith("TerraMind")
    assert ours.text() == f"1 layer(s) added (LULC) in 42.0 s · temporary files in {out_dir}."
    assert [b.text() for b in ours.findChildren(QPushButton)] == ["Open folder"]


def test_a_failure_is_one_message_without_a_folder(qgis_app):
    iface = _Iface()
    task = TerraMindTask("TerraMind generate #2", {}, client=BackendClient(None), iface=iface)
    _finish(task, Failed("input", "S2L2A: file not found", "inputs.S2L2A"))
    iface.bar.pushMessage("Task failed", task.description(), Qgis.Info, 0)
    _settle()
    assert [(i.title(), i.text()) for i in iface.bar.items()] == [
        ("TerraMind generate #2", "failed (inputs.S2L2A): S2L2A: file not found")]
    assert iface.bar.currentItem().findChildren(QPushButton) == []


def test_output_folder_and_where():
    assert output_folder(["/data/run/a.tif", "/data/run/b.tif"]) == "/data/run"
    assert output_folder([]) is None
    assert where_text("/data/run") == "files in /data/run"
    assert where_text(tempfile.gettempdir() + "/x") == f"temporary files in {tempfile.gettempdir()}/x"
