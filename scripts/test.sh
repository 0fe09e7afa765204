#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every suite and prints one total.
#   backend  tests/backend   .venv-backend   (our runtime + job engine + CLI + protocol)
#   parity   tests/parity    .venv-terratorch (ours vs TerraTorch 1.1.1 on the same random weights)
#   plugin   tests/plugin    .venv-qgis      (real headless QGIS 3.22 + the real backend process)
# Extra arguments go to every pytest run (e.g. scripts/test.sh -k lulc).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --test || { echo "setup failed"; exit 1; }
bash scripts/fake_hub.sh || { echo "fake hub failed"; exit 1; }
mkdir -p test-results
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
export PYTHONDONTWRITEBYTECODE=1
SUITES=${TERRAMIND_SUITES:-backend parity plugin}
status=0
for suite in $SUITES; do
  case $suite in
    backend) py=.venv-backend/bin/python ;;
    parity)  py=.venv-terratorch/bin/python ;;
    plugin)  py=.venv-qgis/bin/python ;;
  esac
  [ -d "tests/$suite" ] || continue
  echo "=== suite: $suite ($py) ==="
  "$py" -m pytest "tests/$suite" -c "tests/$suite/pytest.ini" --rootdir "$ROOT" \
      --junitxml "test-results/$suite.xml" "$@"
  rc=$?
  # 5 = no tests collected in this suite (e.g. filtered by -k): not a failure of the run
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi
done
python3 - "$SUITES" <<'PY'
import sys, os, xml.etree.ElementTree as ET
tot = dict(tests=0, failures=0, errors=0, skipped=0)
for suite in sys.argv[1].split():
    path = f"test-results/{suite}.xml"
    if not os.path.exists(path):
        continue
    root = ET.parse(path).getroot()
    for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        for k in tot:
            tot[k] += int(ts.get(k, 0))
passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
print(f"total: {passed} passed, {tot['failures'] + tot['errors']} failed, {tot['skipped']} skipped")
PY
exit $status
