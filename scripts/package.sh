#!/usr/bin/env bash
# Build the installable plugin zip: dist/terramind_qgis-<version>.zip
#   terramind_qgis/ (plugin code) + metadata.txt + LICENSE + resources/ + backend/ (bundled backend source,
#   pip-installed by the plugin's one-click backend installer), then check the result.
# Usage: scripts/package.sh [--stage-only DIR]   (DIR receives the unpacked plugin folder; used by run_qgis.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(sed -n 's/^version=//p' "$ROOT/metadata.txt")
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/terramind_qgis"
mkdir -p "$PKG"
# Copy only what is tracked or meant to ship: no caches, venvs or test outputs.
( cd "$ROOT" && tar --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' -cf - terramind_qgis ) | tar -xf - -C "$STAGE"
cp "$ROOT/metadata.txt" "$ROOT/LICENSE" "$PKG/"
cp -r "$ROOT/resources" "$PKG/resources"
mkdir -p "$PKG/backend"
( cd "$ROOT/backend" && tar --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' -cf - pyproject.toml README.md src ) | tar -xf - -C "$PKG/backend"

# Checks: metadata fields the plugin repository requires, icon present, no torch import in the plugin code.
for field in name qgisMinimumVersion description about version author email repository tracker homepage category icon tags experimental hasProcessingProvider; do
  grep -q "^$field=." "$PKG/metadata.txt" || { echo "package: metadata.txt lacks '$field'" >&2; exit 1; }
done
icon=$(sed -n 's/^icon=//p' "$PKG/metadata.txt")
[ -f "$PKG/$icon" ] || { echo "package: icon $icon missing from the plugin folder" >&2; exit 1; }
if grep -rEn '^\s*(import|from)\s+(torch|numpy|rasterio)\b' "$PKG"/*.py "$PKG"/processing 2>/dev/null; then
  echo "package: the plugin side must not import torch/numpy/rasterio (see above)" >&2; exit 1
fi

if [ "${1:-}" = "--stage-only" ]; then
  dest=${2:?--stage-only needs a destination folder}
  rm -rf "$dest/terramind_qgis"; mkdir -p "$dest"; cp -r "$PKG" "$dest/"
  echo "$dest/terramind_qgis"
  exit 0
fi
mkdir -p "$ROOT/dist"
ZIP="$ROOT/dist/terramind_qgis-$VERSION.zip"
rm -f "$ZIP"
( cd "$STAGE" && python3 - "$ZIP" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk("terramind_qgis"):
        for f in sorted(files):
            z.write(os.path.join(base, f))
PY
)
python3 - "$ZIP" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
top = {n.split("/")[0] for n in names}
assert top == {"terramind_qgis"}, f"zip must hold exactly one top folder, got {top}"
for need in ("terramind_qgis/__init__.py", "terramind_qgis/metadata.txt", "terramind_qgis/LICENSE",
             "terramind_qgis/backend/pyproject.toml", "terramind_qgis/resources/icons/terramind.svg"):
    assert need in names, f"{need} missing from the zip"
print(f"{sys.argv[1]}: {len(names)} files")
PY
