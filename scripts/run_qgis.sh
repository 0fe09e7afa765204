#!/usr/bin/env bash
# Start QGIS with TerraMind installed (from the same files the plugin zip ships) into a dedicated profile,
# enabled, and pointed at the backend venv. With no display, QGIS runs under Xvfb and a screenshot of the
# main window with the TerraMind dialog is written to .cache/qgis-run/screenshot.png.
#   TERRAMIND_QGIS_PROFILES   profiles folder (default: .cache/qgis-profiles; use your own to install there)
#   TERRAMIND_EXIT_AFTER=N    quit QGIS N seconds after start-up (smoke test); default: run until closed
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILES=${TERRAMIND_QGIS_PROFILES:-$ROOT/.cache/qgis-profiles}
PROFILE_DIR="$PROFILES/profiles/default"
mkdir -p "$PROFILE_DIR/python/plugins" "$PROFILE_DIR/QGIS" "$ROOT/.cache/qgis-run"
bash "$ROOT/scripts/package.sh" --stage-only "$PROFILE_DIR/python/plugins" >/dev/null
export TERRAMIND_BACKEND_PYTHON=${TERRAMIND_BACKEND_PYTHON:-$ROOT/.venv-backend/bin/python}
export TERRAMIND_RUN_DIR="$ROOT/.cache/qgis-run"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# Enable the plugin in that profile (QGIS reads [PythonPlugins] at start-up).
"$ROOT/.venv-qgis/bin/python" - "$PROFILE_DIR/QGIS/QGIS3.ini" <<'PY'
import configparser, sys
path = sys.argv[1]
cfg = configparser.RawConfigParser(); cfg.optionxform = str
cfg.read(path)
for section, key, value in [("PythonPlugins", "terramind_qgis", "true"), ("qgis", "checkVersion", "false"),
                            ("qgis", "showTips", "false")]:
    if not cfg.has_section(section):
        cfg.add_section(section)
    cfg.set(section, key, value)
with open(path, "w") as fh:
    cfg.write(fh)
PY
echo "TerraMind plugin installed in $PROFILE_DIR/python/plugins/terramind_qgis"
echo "backend interpreter: $TERRAMIND_BACKEND_PYTHON ($("$TERRAMIND_BACKEND_PYTHON" -m terramind_backend --version))"
ARGS=(--profiles-path "$PROFILES" --profile default --nologo --noversioncheck --code "$ROOT/scripts/qgis_startup.py")
if [ -n "${DISPLAY:-}" ]; then
  exec qgis "${ARGS[@]}"
fi
echo "no DISPLAY: running QGIS under Xvfb (screenshot -> .cache/qgis-run/screenshot.png; Ctrl+C to stop)"
exec xvfb-run -a -s "-screen 0 1600x1000x24" qgis "${ARGS[@]}"
