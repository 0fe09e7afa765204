#!/usr/bin/env bash
# Build the installable plugin zip: dist/terramind_qgis-<version>.zip
#   terramind_qgis/ (plugin code) + metadata.txt + LICENSE + resources/ + backend/ (bundled backend source,
#   pip-installed by the plugin's one-click backend installer), then check the result and run the QGIS plugin
#   repository's upload scan on it (../shared/tools/qgis-plugin-scan): any blocking finding or Qt6 change fails.
# Usage: scripts/package.sh [--release | --stage-only DIR]
#   --release     also refuse while any official model repository is unpinned (backend/.../catalog.py)
#   --stage-only  DIR receives the unpacked plugin folder, unchecked by the scan (used by run_qgis.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCAN=${TERRAMIND_PLUGIN_SCAN:-$ROOT/../shared/tools/qgis-plugin-scan/scan.sh}
if [ "${1:-}" = "--release" ]; then
  python3 "$ROOT/scripts/pin_revisions.py" --check || { echo "package: a release needs every model repository pinned" >&2; exit 1; }
fi
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

# The plugin repository's upload checks, offline. A finding there would block the upload; a Qt6 change means
# QGIS 4 would break on the plugin. Both fail the build (docs/qt6.md).
[ -f "$SCAN" ] || { echo "package: $SCAN not found (the scan tool lives in ../shared beside the checkout)" >&2; exit 1; }
summary=$(bash "$SCAN" "$ZIP" | tee /dev/stderr | tail -1)
if ! [[ "$summary" =~ ^blocking:\ 0,\ qt6\ changes:\ 0,\ structural\ fails:\ 0$ ]]; then
  rm -f "$ZIP"
  echo "package: the plugin repository scan did not pass ($summary); the zip was removed" >&2
  exit 1
fi
[ "${1:-}" = "--release" ] || python3 "$ROOT/scripts/pin_revisions.py" --check >/dev/null 2>&1 \
  || echo "package: development build: some model repositories are unpinned, so '--release' would refuse" >&2
echo "$ZIP"
