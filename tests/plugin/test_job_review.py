"""job_review.ReviewTask in QGIS's task manager: the backend's verdict reaches the dialog's callback on the GUI
thread, asked from a worker thread; a backend that cannot be asked gives no verdict (the job reports it)."""
from __future__ import annotations

import threading

from qgis.core import QgsApplication

from terramind_qgis.client import BackendError
from terramind_qgis.job_review import ReviewTask


class Client:
    def __init__(self, answer):
        self.answer, self.threads = answer, []

    def review(self, spec):
        self.threads.append(threading.current_thread())
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _review(qtbot, client):
    got = []
    task = ReviewTask({"version": 1}, lambda verdict: got.append((verdict, threading.current_thread())),
                      client=client)
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    return got[0]


def test_the_verdict_is_asked_off_the_gui_thread_and_delivered_on_it(qgis_app, qtbot):
    verdict = {"problems": [], "confirm": ["more than 20,000 windows"]}
    client = Client(verdict)
    got, thread = _review(qtbot, client)
    assert got == verdict and thread is threading.main_thread()
    assert client.threads and client.threads[0] is not threading.main_thread()


def test_no_backend_means_no_verdict(qgis_app, qtbot):
    got, _ = _review(qtbot, Client(BackendError("The backend is not installed", kind="setup")))
    assert got is None
