"""Where the plugin's files are, both in a source checkout and in the installed plugin zip."""
from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


# The zip ships resources/ and backend/ inside the plugin folder; a checkout has them beside it.
RESOURCES_DIR = _first_existing(PLUGIN_DIR / "resources", PLUGIN_DIR.parent / "resources")
BACKEND_SRC_DIR = _first_existing(PLUGIN_DIR / "backend", PLUGIN_DIR.parent / "backend")
METADATA_FILE = _first_existing(PLUGIN_DIR / "metadata.txt", PLUGIN_DIR.parent / "metadata.txt")
# How each product is drawn: the engine's file, read by the plugin's styler too (one definition).
PRODUCT_STYLES_FILE = BACKEND_SRC_DIR / "src" / "terramind_backend" / "engine" / "product_styles.json"


def icon_path(name: str = "terramind.svg") -> str:
    return str(RESOURCES_DIR / "icons" / name)


def style_path(name: str) -> str:
    return str(RESOURCES_DIR / "styles" / name)


def plugin_version() -> str:
    try:
        for line in METADATA_FILE.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
