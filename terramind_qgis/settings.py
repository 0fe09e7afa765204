"""Plugin settings: QgsSettings for plain values, QGIS's authentication manager for the HF token.

Everything the backend process needs from them is turned into its environment by
``backend_environment()``: the QGIS process's own PYTHON*/GDAL/PROJ variables are dropped there,
because they point at QGIS's Python and libraries, not the backend venv's.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsSettings

from .vocabulary import DEVICES, values

PREFIX = "terramind/"
HF_AUTH_CONFIG_NAME = "TerraMind: Hugging Face token"
_RAY_ADDRESS = re.compile(r"^[A-Za-z0-9.\-_]+:\d{1,5}$")

# Variables of the QGIS process that would break another Python or another GDAL/PROJ build.
_DROP_EXACT = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE",
               "VIRTUAL_ENV", "CONDA_PREFIX", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH",
               "GDAL_FILENAME_IS_UTF8", "GDAL_PAM_PROXY_DIR", "CPL_ZIP_ENCODING", "QT_PLUGIN_PATH",
               "QGIS_PREFIX_PATH", "QGIS_CUSTOM_CONFIG_PATH", "O4W_QT_PREFIX", "O4W_QT_BINARIES",
               "O4W_QT_PLUGINS", "O4W_QT_LIBRARIES", "O4W_QT_TRANSLATIONS", "O4W_QT_HEADERS", "O4W_QT_DOC"}
_DROP_PREFIXES = ("PYTHON", "GDAL_", "PROJ_", "QGIS_", "__PYVENV")
_KEEP = {"PYTHONIOENCODING", "PYTHONUTF8"}


@dataclass(frozen=True)
class Tiling:
    window: int = 224
    overlap: int = 32
    batch_size: int = 8

    def as_dict(self) -> dict:
        return {"window": self.window, "overlap": self.overlap, "batch_size": self.batch_size}


def installer_venv_dir() -> Path:
    """The backend venv the one-click installer creates: in the QGIS profile, outside the plugin."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "terramind" / "venv"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def checkout_venv_python() -> Path:
    """``<repo>/.venv-backend`` beside the plugin folder, when the plugin runs from a source checkout."""
    return venv_python(Path(__file__).resolve().parent.parent / ".venv-backend")


class Settings:
    """Typed access to the plugin's QgsSettings (keys under ``terramind/``)."""

    def __init__(self, qsettings: Optional[QgsSettings] = None):
        self._s = qsettings or QgsSettings()

    # -- generic helpers ------------------------------------------------------------------
    def _get(self, key: str, default, kind=str):
        value = self._s.value(PREFIX + key, default)
        if value is None or value == "":
            return default
        if kind is bool:  # QSettings hands back "true"/"false" strings from ini files
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value) -> None:
        self._s.setValue(PREFIX + key, value)

    def value(self, key: str, default, kind=str):
        """A value under ``terramind/<key>`` read back as ``kind`` (str, int, float or bool); ``default`` when
        missing or unreadable. For values without a property of their own (the dialog's remembered fields)."""
        return self._get(key, default, kind)

    def set_value(self, key: str, value) -> None:
        self._set(key, value)

    # -- values ---------------------------------------------------------------------------
    @property
    def backend_python(self) -> str:
        """The configured interpreter ('' = resolve automatically, see ``resolve_interpreter``)."""
        return self._get("backend/python", "")

    @backend_python.setter
    def backend_python(self, path: str) -> None:
        self._set("backend/python", str(path or ""))

    @property
    def device(self) -> str:
        value = self._get("device", "auto")
        return value if value in values(DEVICES) or value.startswith("cuda:") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        if value not in values(DEVICES) and not str(value).startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(values(DEVICES))} (or cuda:N), got {value!r}")
        self._set("device", value)

    @property
    def cache_dir(self) -> str:
        """Hugging Face cache for the weights ('' = huggingface_hub's default)."""
        return self._get("cache_dir", "")

    @cache_dir.setter
    def cache_dir(self, path: str) -> None:
        self._set("cache_dir", str(path or ""))

    @property
    def offline(self) -> bool:
        return self._get("offline", False, bool)

    @offline.setter
    def offline(self, value: bool) -> None:
        self._set("offline", bool(value))

    @property
    def tiling(self) -> Tiling:
        d = Tiling()
        return Tiling(window=self._get("tiling/window", d.window, int),
                      overlap=self._get("tiling/overlap", d.overlap, int),
                      batch_size=self._get("tiling/batch_size", d.batch_size, int))

    @tiling.setter
    def tiling(self, value: Tiling) -> None:
        if value.window < 16 or not 0 <= value.overlap < value.window or value.batch_size < 1:
            raise ValueError("tiling needs window >= 16, 0 <= overlap < window and batch_size >= 1")
        self._set("tiling/window", int(value.window))
        self._set("tiling/overlap", int(value.overlap))
        self._set("tiling/batch_size", int(value.batch_size))

    @property
    def dem_hillshade(self) -> bool:
        """Add a hillshade of each generated DEM below its pseudocolour layer (task results only)."""
        return self._get("layers/dem_hillshade", True, bool)

    @dem_hillshade.setter
    def dem_hillshade(self, value: bool) -> None:
        self._set("layers/dem_hillshade", bool(value))

    @property
    def ray_address(self) -> str:
        """Ray cluster HOST:PORT that jobs run on ('' = in the backend process), docs/scale.md."""
        return self._get("executor/ray_address", "")

    @ray_address.setter
    def ray_address(self, address: str) -> None:
        address = str(address or "").strip()
        if address and not _RAY_ADDRESS.match(address):
            raise ValueError(f"the Ray cluster address must look like HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")
        self._set("executor/ray_address", address)

    def executor(self) -> Optional[dict]:
        """The JobSpec ``executor`` of dialog and Processing jobs (None: the backend runs them itself)."""
        return {"kind": "ray", "address": self.ray_address} if self.ray_address else None

    @property
    def torch_pin(self) -> str:
        """pip requirement for torch used by the one-click installer."""
        return self._get("install/torch", "torch==2.13.0")

    @torch_pin.setter
    def torch_pin(self, requirement: str) -> None:
        self._set("install/torch", str(requirement or ""))

    # -- interpreter ----------------------------------------------------------------------
    def resolve_interpreter(self) -> Optional[str]:
        """setting → $TERRAMIND_BACKEND_PYTHON → the installer's venv → a checkout's .venv-backend."""
        for candidate in (self.backend_python, os.environ.get("TERRAMIND_BACKEND_PYTHON", ""),
                          str(venv_python(installer_venv_dir())), str(checkout_venv_python())):
            if candidate and Path(candidate).is_file():
                return candidate
        return None

    # -- Hugging Face token (auth manager, never QgsSettings) -----------------------------
    @property
    def token_config_id(self) -> str:
        """Id of the auth-manager entry holding the token (an id, not a secret)."""
        return self._get("auth/hf_token_config", "")

    def hf_token(self) -> Optional[str]:
        config_id = self.token_config_id
        if not config_id:
            return None
        manager = QgsApplication.authManager()
        if not manager.masterPasswordIsSet() and not _on_main_thread():
            # decrypting would ask for the master password, which only the GUI thread may do
            return None
        config = QgsAuthMethodConfig()
        ok, config = _ok_and_config(manager.loadAuthenticationConfig(config_id, config, True), config)
        if not ok:
            return None
        return config.config("password") or None

    def set_hf_token(self, token: Optional[str]) -> None:
        """Store (or with an empty token, remove) the token in QGIS's encrypted auth database."""
        manager = QgsApplication.authManager()
        config_id = self.token_config_id
        if not token:
            if config_id and config_id in manager.configIds():
                manager.removeAuthenticationConfig(config_id)
            self._set("auth/hf_token_config", "")
            return
        if manager.isDisabled():
            raise RuntimeError(f"QGIS's authentication system is disabled: {manager.disabledMessage()}")
        if not manager.masterPasswordIsSet() and not manager.setMasterPassword(True):
            raise RuntimeError("The QGIS master password is needed to store the Hugging Face token.")
        config = QgsAuthMethodConfig("Basic")
        config.setName(HF_AUTH_CONFIG_NAME)
        config.setConfig("username", "hf_token")
        config.setConfig("password", token.strip())
        if config_id and config_id in manager.configIds():
            config.setId(config_id)
            ok = manager.updateAuthenticationConfig(config)
        else:
            ok, config = _ok_and_config(manager.storeAuthenticationConfig(config), config)
        if not ok or not config.id():
            raise RuntimeError("QGIS's authentication manager did not store the Hugging Face token.")
        self._set("auth/hf_token_config", config.id())

    # -- the backend's environment --------------------------------------------------------
    def backend_environment(self, base: Optional[Mapping[str, str]] = None,
                            token: Optional[str] = None) -> Dict[str, str]:
        """Environment for the backend process: ``base`` (default os.environ) without QGIS's
        Python/GDAL/PROJ variables, plus the cache/offline/token settings."""
        env = clean_environment(os.environ if base is None else base)
        if self.cache_dir:
            env["HF_HUB_CACHE"] = self.cache_dir
        if self.offline:
            env["HF_HUB_OFFLINE"] = "1"
        token = token if token is not None else self.hf_token()
        if token:
            env["HF_TOKEN"] = token
        return env


def inherited_hf_settings(environ: Optional[Mapping[str, str]] = None) -> Tuple[Optional[Tuple[str, str]], bool]:
    """What QGIS's own environment gives the backend where the settings say nothing (backend_environment keeps
    it): ((variable, cache folder) or None, offline). huggingface_hub's rules: HF_HUB_CACHE, else HF_HOME/hub;
    HF_HUB_OFFLINE is on for 1/true/yes/on."""
    environ = os.environ if environ is None else environ
    if environ.get("HF_HUB_CACHE"):
        cache = ("HF_HUB_CACHE", environ["HF_HUB_CACHE"])
    elif environ.get("HF_HOME"):
        cache = ("HF_HOME", os.path.join(environ["HF_HOME"], "hub"))
    else:
        cache = None
    return cache, environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "TRUE", "YES", "ON")


def _on_main_thread() -> bool:
    from qgis.PyQt.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    return app is None or QThread.currentThread() == app.thread()


def _ok_and_config(answer, config=None):
    """PyQGIS returns (ok, config) for the auth manager's in/out config arguments."""
    if isinstance(answer, tuple):
        return bool(answer[0]), answer[1]
    return bool(answer), config


def clean_environment(base: Mapping[str, str]) -> Dict[str, str]:
    env = {}
    for key, value in base.items():
        upper = key.upper()
        if upper in _KEEP or (upper not in _DROP_EXACT and not upper.startswith(_DROP_PREFIXES)):
            env[key] = value
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONNOUSERSITE"] = "1"  # the user's ~/.local site-packages could shadow the venv's
    return env
