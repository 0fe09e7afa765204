#!/usr/bin/env bash
# Idempotent set-up of everything TerraMind for QGIS needs on a fresh Debian 12 machine.
#   scripts/setup.sh            QGIS (apt) + .venv-qgis (plugin side) + .venv-backend (torch side)
#   scripts/setup.sh --test     the same, plus test tools and the TerraTorch 1.1.1 parity oracle venv
# Each step is skipped when its result is already there, so re-running is cheap.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WITH_TESTS=0
[ "${1:-}" = "--test" ] && WITH_TESTS=1
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

# 1. QGIS 3.22 (Debian) + Xvfb for machines without a display.
APT_PKGS="python3-qgis qgis xvfb xauth python3-venv"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "installing apt packages:$missing"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# 2. QGIS-side venv: Debian's python + system site-packages (qgis, PyQt5, numpy 1.x). Never torch here.
if [ ! -x "$ROOT/.venv-qgis/bin/python" ]; then
  say "creating .venv-qgis"
  /usr/bin/python3 -m venv --system-site-packages "$ROOT/.venv-qgis"
fi
if [ "$WITH_TESTS" = 1 ] && [ ! -x "$ROOT/.venv-qgis/bin/pytest" ]; then
  say "installing plugin test tools into .venv-qgis"
  "$ROOT/.venv-qgis/bin/pip" install -q "pytest>=8,<10" "pytest-qgis==2.1.0" "pytest-qt>=4.4,<5" "pytest-timeout>=2.3"
fi

# 3. Backend venv: its own Python, torch (CPU wheel unless a CUDA one is wanted), rasterio, hf_hub.
PY=${TERRAMIND_PYTHON:-python3}
if [ ! -x "$ROOT/.venv-backend/bin/python" ]; then
  say "creating .venv-backend with $($PY --version)"
  "$PY" -m venv "$ROOT/.venv-backend"
fi
if ! "$ROOT/.venv-backend/bin/python" -c "import torch, rasterio, fiona, huggingface_hub, safetensors, tokenizers, terramind_backend" >/dev/null 2>&1; then
  say "installing the backend (torch, rasterio, fiona, huggingface_hub, safetensors, tokenizers) into .venv-backend"
  "$ROOT/.venv-backend/bin/pip" install -q "torch==2.13.0"
  "$ROOT/.venv-backend/bin/pip" install -q -e "$ROOT/backend"
fi
if [ "$WITH_TESTS" = 1 ] && [ ! -x "$ROOT/.venv-backend/bin/pytest" ]; then
  "$ROOT/.venv-backend/bin/pip" install -q "pytest>=8,<10" "pytest-timeout>=2.3" psutil
fi
# Tests only: the optional Ray extra (the Ray executor's tests run a local two-worker cluster).
if [ "$WITH_TESTS" = 1 ] && ! "$ROOT/.venv-backend/bin/python" -c "import ray" >/dev/null 2>&1; then
  say "installing the backend's Ray extra into .venv-backend"
  "$ROOT/.venv-backend/bin/pip" install -q "ray==2.60.0"
fi

# 4. Tests only: TerraTorch 1.1.1 as the parity oracle, in its own venv (never a runtime dependency).
if [ "$WITH_TESTS" = 1 ] && ! "$ROOT/.venv-terratorch/bin/python" -c "import terratorch" >/dev/null 2>&1; then
  say "creating .venv-terratorch (TerraTorch 1.1.1 parity oracle; several minutes)"
  [ -x "$ROOT/.venv-terratorch/bin/python" ] || python3 -m venv "$ROOT/.venv-terratorch"
  "$ROOT/.venv-terratorch/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
  "$ROOT/.venv-terratorch/bin/pip" install -q --no-deps -r "$ROOT/tests/requirements-terratorch.txt"
  "$ROOT/.venv-terratorch/bin/pip" install -q "pytest>=8,<10" "pytest-timeout>=2.3" psutil
fi
# TerraTorch's Coordinates tokenizer needs the HF tokenizers package (an optional TerraTorch dependency)
if [ "$WITH_TESTS" = 1 ] && ! "$ROOT/.venv-terratorch/bin/python" -c "import tokenizers" >/dev/null 2>&1; then
  "$ROOT/.venv-terratorch/bin/pip" install -q --no-deps "tokenizers==0.23.3"
fi
say "ready: $("$ROOT/.venv-backend/bin/python" -c 'import torch; print("torch", torch.__version__)')"
