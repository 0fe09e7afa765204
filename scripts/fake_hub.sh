#!/usr/bin/env bash
# Build (once) local Hugging Face caches holding TerraMind 1.0 files in the *official* layout with
# random weights, written by TerraTorch 1.1.1 itself (../shared/tools/fake_official_hub.py).
# Tests load them with HF_HUB_OFFLINE=1 through the same hf_hub code path as real downloads.
#   .cache/fake-hub        tiny backbone file + all six tokenizers (seed 0)
#   .cache/fake-hub-small  small backbone file only (the "one larger size" parity check)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOL=${TERRAMIND_FAKE_HUB_TOOL:-$ROOT/../shared/tools/fake_official_hub.py}
PY=$ROOT/.venv-terratorch/bin/python
[ -f "$TOOL" ] || { echo "fake_hub: $TOOL not found (the tests need ../shared beside the checkout)" >&2; exit 1; }
build() {  # dir size tokenizers
  local dir=$1
  if [ -f "$dir/.complete" ]; then return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  echo "[fake-hub] writing $2 backbone + tokenizers=$3 into $dir"
  OMP_NUM_THREADS=2 "$PY" "$TOOL" "$dir" --size "$2" --tokenizers "$3" --seed 0 >/dev/null
  touch "$dir/.complete"
}
build "$ROOT/.cache/fake-hub" tiny all
build "$ROOT/.cache/fake-hub-small" small none
