"""The backend's own per-user cache folder (small measured facts about this machine, never weights).

``TERRAMIND_CACHE_DIR`` overrides it; otherwise the platform's convention: ``%LOCALAPPDATA%\\terramind`` on
Windows, ``~/Library/Caches/terramind`` on macOS, ``$XDG_CACHE_HOME/terramind`` (default ``~/.cache``) elsewhere.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional


def cache_dir() -> Path:
    override = os.environ.get("TERRAMIND_CACHE_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "terramind"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "terramind"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "terramind"


def read_json(name: str) -> Optional[dict]:
    """The cached object, or None when it is missing or unreadable (a cache is never an error)."""
    try:
        with open(cache_dir() / name, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(name: str, data: dict) -> Optional[Path]:
    """Write atomically (temp file + rename); returns the path, or None if the folder is not writable."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, folder / name)
        return folder / name
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return None
