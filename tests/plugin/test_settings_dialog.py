"""The settings dialog on real QGIS: values to QgsSettings, the token to the auth manager, doctor report."""
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings

from terramind_qgis.settings import Settings, Tiling
from terramind_qgis.settings_dialog import STORED_IN_AUTH_DB_HINT, SettingsDialog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(qgis_app):
    qs = QgsSettings()
    qs.remove("terramind")
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("terramind-test-master", True)
    yield Settings(qs)
    Settings(qs).set_hf_token(None)
    qs.remove("terramind")


def test_dialog_saves_values_and_keeps_the_token_out_of_settings(settings, qtbot):
    dialog = SettingsDialog(settings=settings)
    qtbot.addWidget(dialog)
    assert dialog.token.text() == "" and dialog.device.currentData() == "auto"
    dialog.interpreter.setText(str(REPO / ".venv-backend" / "bin" / "python"))
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.cache_dir.setText("/data/hf-cache")
    dialog.offline.setChecked(True)
    dialog.ray_address.setText("ray-head:6379")
    dialog.window.setValue(256)
    dialog.overlap.setValue(48)
    dialog.batch.setValue(2)
    assert dialog.dem_hillshade.isChecked()  # on by default
    dialog.dem_hillshade.setChecked(False)
    dialog.token.setText("hf_DialogSecret42")
    dialog.accept()
    again = Settings(QgsSettings())
    assert again.dem_hillshade is False and again.ray_address == "ray-head:6379"
    assert (again.device, again.cache_dir, again.offline, again.tiling) == ("cpu", "/data/hf-cache", True,
                                                                          Tiling(256, 48, 2))
    assert again.hf_token() == "hf_DialogSecret42"
    qs = QgsSettings()
    assert not any("hf_DialogSecret42" in str(qs.value(k)) for k in qs.allKeys())
    reopened = SettingsDialog(settings=again)
    qtbot.addWidget(reopened)
    assert reopened.token.text() == "" and reopened.token.placeholderText() == STORED_IN_AUTH_DB_HINT


def test_invalid_tiling_is_not_saved(settings, qtbot):
    dialog = SettingsDialog(settings=settings)
    qtbot.addWidget(dialog)
    dialog.window.setValue(64)
    dialog.overlap.setValue(64)
    dialog.accept()
    assert "Not saved" in dialog.report.toPlainText()
    assert Settings(QgsSettings()).tiling == Tiling()


def test_check_backend_shows_the_doctor_report(settings, qtbot, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings.backend_python = str(REPO / ".venv-backend" / "bin" / "python")
    dialog = SettingsDialog(settings=settings)
    qtbot.addWidget(dialog)
    dialog.check_backend()
    qtbot.waitUntil(lambda: dialog.check_button.isEnabled(), timeout=120_000)
    text = dialog.report.toPlainText()
    assert "torch 2." in text and "Device: CPU only" in text and "Cached weights" in text, text


def test_check_backend_reports_a_broken_interpreter(settings, qtbot, tmp_path):
    settings.backend_python = str(tmp_path / "missing-python")
    dialog = SettingsDialog(settings=settings)
    qtbot.addWidget(dialog)
    dialog.check_backend()
    qtbot.waitUntil(lambda: dialog.check_button.isEnabled(), timeout=30_000)
    assert "The backend check failed" in dialog.report.toPlainText()


def test_empty_cache_and_offline_fields_show_what_the_environment_puts_in_effect(settings, qtbot, monkeypatch,
                                                                              tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dialog = SettingsDialog(settings=settings)
    qtbot.addWidget(dialog)
    assert dialog.cache_dir.text() == "" and str(tmp_path / "hub") in dialog.cache_dir.placeholderText()
    assert "HF_HUB_CACHE" in dialog.cache_dir.placeholderText()
    assert dialog.offline.isChecked() and not dialog.offline.isEnabled()
    dialog.save()
    assert settings.offline is False   # the environment decides; the stored choice is left as it was
    env = settings.backend_environment(token="")
    assert env["HF_HUB_CACHE"] == str(tmp_path / "hub") and env["HF_HUB_OFFLINE"] == "1"   # what the fields show

    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    plain = SettingsDialog(settings=settings)
    qtbot.addWidget(plain)
    assert str(tmp_path / "home" / "hub") in plain.cache_dir.placeholderText() and plain.offline.isEnabled()
    assert not plain.offline.isChecked()
