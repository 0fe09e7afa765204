"""Plugin settings on real QGIS: typed QgsSettings values, the HF token in the auth manager, the
backend's clean environment and interpreter resolution."""
import os
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsSettings

from tests.conftest import fake_hub  # noqa: F401 (fixture; the plugin ini does not load tests/conftest.py)
from terramind_qgis import settings as settings_mod
from terramind_qgis.settings import Settings, Tiling, clean_environment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def master_password(qgis_app):
    manager = QgsApplication.authManager()
    assert not manager.isDisabled(), manager.disabledMessage()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("terramind-test-master", True)
    return manager


def test_defaults(settings):
    assert settings.device == "auto"
    assert settings.offline is False
    assert settings.cache_dir == ""
    assert settings.tiling == Tiling(224, 32, 8)
    assert settings.torch_pin == "torch==2.13.0"
    assert settings.dem_hillshade is True


def test_values_round_trip_with_types(settings):
    settings.device = "cuda:1"
    settings.offline = True
    settings.cache_dir = "/data/hf"
    settings.tiling = Tiling(256, 64, 4)
    settings.dem_hillshade = False
    again = Settings(QgsSettings())
    assert again.dem_hillshade is False  # a bool, not the string "false"
    assert (again.device, again.offline, again.cache_dir, again.tiling) == ("cuda:1", True, "/data/hf",
                                                                          Tiling(256, 64, 4))
    assert again.offline is True  # a bool, not the string "true"


def test_ray_address_round_trips_and_becomes_the_job_executor(settings):
    assert settings.ray_address == "" and settings.executor() is None
    settings.ray_address = " 10.0.0.5:6379 "
    again = Settings(QgsSettings())
    assert again.ray_address == "10.0.0.5:6379"
    assert again.executor() == {"kind": "ray", "address": "10.0.0.5:6379"}
    with pytest.raises(ValueError, match="HOST:PORT"):
        again.ray_address = "10.0.0.5"
    assert Settings(QgsSettings()).ray_address == "10.0.0.5:6379"


@pytest.mark.parametrize("bad", [Tiling(8, 0, 1), Tiling(224, 224, 1), Tiling(224, 32, 0)])
def test_bad_tiling_is_refused(settings, bad):
    with pytest.raises(ValueError):
        settings.tiling = bad


def test_bad_device_is_refused(settings):
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        settings.device = "tpu"


def test_hf_token_lives_in_the_auth_manager_not_in_settings(settings, master_password, tmp_path):
    token = "hf_TerraMindSecretToken123"
    settings.set_hf_token(token)
    assert settings.hf_token() == token
    config_id = settings.token_config_id
    assert config_id in master_password.configIds()
    # nothing in QgsSettings (ini on disk) holds the token
    qs = QgsSettings()
    qs.sync()
    values = [str(qs.value(k)) for k in qs.allKeys()]
    assert not any(token in v for v in values)
    ini_files = list(Path(QgsApplication.qgisSettingsDirPath()).rglob("*.ini"))
    assert ini_files and not any(token in f.read_text(errors="replace") for f in ini_files)
    # the auth database stores it encrypted
    assert token.encode() not in Path(master_password.authenticationDatabasePath()).read_bytes()
    # the backend gets it as HF_TOKEN
    assert settings.backend_environment(base={})["HF_TOKEN"] == token
    # replacing keeps one entry; clearing removes it
    settings.set_hf_token("hf_other")
    assert settings.token_config_id == config_id and settings.hf_token() == "hf_other"
    settings.set_hf_token("")
    assert settings.hf_token() is None and config_id not in master_password.configIds()
    assert "HF_TOKEN" not in settings.backend_environment(base={})


def test_backend_environment_drops_qgis_python_and_gdal_variables(settings):
    base = {"PATH": "/usr/bin", "HOME": "/home/u", "PYTHONPATH": "/usr/share/qgis/python",
            "PYTHONHOME": "/usr", "PROJ_LIB": "/usr/share/proj", "PROJ_DATA": "/usr/share/proj",
            "GDAL_DATA": "/usr/share/gdal", "GDAL_DRIVER_PATH": "/usr/lib/gdalplugins",
            "QGIS_PREFIX_PATH": "/usr", "VIRTUAL_ENV": "/qgis/venv", "HTTPS_PROXY": "http://proxy:3128",
            "HF_HUB_CACHE": "/inherited/hub"}
    settings.offline = True
    env = settings.backend_environment(base=base, token="")
    for gone in ("PYTHONPATH", "PYTHONHOME", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH",
                 "QGIS_PREFIX_PATH", "VIRTUAL_ENV"):
        assert gone not in env
    assert env["PATH"] == "/usr/bin" and env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HF_HUB_CACHE"] == "/inherited/hub"  # inherited when no cache dir is configured
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONIOENCODING"] == "utf-8"
    settings.cache_dir = "/mine/hub"
    assert settings.backend_environment(base=base, token="")["HF_HUB_CACHE"] == "/mine/hub"


def test_clean_environment_keeps_fake_hub_variables(fake_hub):
    env = clean_environment(os.environ)
    assert env["HF_HUB_CACHE"] == str(fake_hub) and env["HF_HUB_OFFLINE"] == "1"


def test_interpreter_resolution_order(settings, monkeypatch, tmp_path):
    configured = tmp_path / "configured-python"
    from_env = tmp_path / "env-python"
    for f in (configured, from_env):
        f.write_text("")
    installer = tmp_path / "profile" / "terramind" / "venv"
    monkeypatch.setattr(settings_mod, "installer_venv_dir", lambda: installer)
    monkeypatch.setenv("TERRAMIND_BACKEND_PYTHON", str(from_env))
    settings.backend_python = str(configured)
    assert settings.resolve_interpreter() == str(configured)
    settings.backend_python = ""
    assert settings.resolve_interpreter() == str(from_env)
    monkeypatch.delenv("TERRAMIND_BACKEND_PYTHON")
    (installer / "bin").mkdir(parents=True)
    (installer / "bin" / "python").write_text("")
    assert settings.resolve_interpreter() == str(installer / "bin" / "python")
    (installer / "bin" / "python").unlink()
    # a source checkout falls back to <repo>/.venv-backend
    assert settings.resolve_interpreter() == str(REPO / ".venv-backend" / "bin" / "python")
