#!/usr/bin/env bash
# Build (once) local Hugging Face caches holding TerraMind 1.0 files in the *official* layout with
# random weights, written by TerraTorch 1.1.1 itself (../shared/tools/fake_official_hub.py).
# Tests load them with HF_HUB_OFFLINE=1 through the same hf_hub code path as real downloads.
#   .cache/fake-hub        tiny backbone file + all six tokenizers (seed 0)
#   .cache/fake-hub-small  small backbone file only (the "one larger size" parity check)
# Then our own step adds the Coordinates modality to .cache/fake-hub (scripts/fake_hub_coords.py: the
# coords tokenizer's config.json and the coords embeddings in the backbone file; idempotent).
# Each cache also gets a terramind-dev-revisions.json naming its own commits: the development override of
# backend/src/terramind_backend/catalog.py, which otherwise refuses repositories this build leaves unpinned.
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
pin_dev() {  # dir: {repo_id: the commit its refs/main names}, written atomically
  python3 - "$1" <<'PY'
import json, os, pathlib, sys
cache = pathlib.Path(sys.argv[1])
pins = {d.name[len("models--"):].replace("--", "/", 1): (d / "refs" / "main").read_text().strip()
        for d in sorted(cache.glob("models--*"))}
tmp = cache / "terramind-dev-revisions.json.tmp"
tmp.write_text(json.dumps(pins, indent=1) + "\n")
os.replace(tmp, cache / "terramind-dev-revisions.json")
PY
}
build "$ROOT/.cache/fake-hub" tiny all
build "$ROOT/.cache/fake-hub-small" small none
if [ ! -f "$ROOT/.cache/fake-hub/.coords-complete" ]; then
  echo "[fake-hub] adding the Coordinates tokenizer and embeddings"
  OMP_NUM_THREADS=2 "$PY" "$ROOT/scripts/fake_hub_coords.py" "$ROOT/.cache/fake-hub" --size tiny
  touch "$ROOT/.cache/fake-hub/.coords-complete"
fi
pin_dev "$ROOT/.cache/fake-hub"
pin_dev "$ROOT/.cache/fake-hub-small"
