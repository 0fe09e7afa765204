"""What importing the plugin costs QGIS: time, and no torch / numpy 2 / backend in QGIS's Python.

Each measurement runs in a fresh process of QGIS's Python (this suite's interpreter) with qgis
and PyQt already imported, as they are in QGIS before any plugin loads.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, time
import qgis.core, qgis.gui, qgis.PyQt.QtWidgets  # QGIS has these loaded before plugins
t0 = time.perf_counter()
import terramind_qgis
plugin = terramind_qgis.classFactory  # what QGIS calls next imports the plugin module
import terramind_qgis.plugin
elapsed = time.perf_counter() - t0
import terramind_qgis.client, terramind_qgis.task, terramind_qgis.layers, terramind_qgis.settings
import terramind_qgis.settings_dialog, terramind_qgis.installer, terramind_qgis.log
print(json.dumps({"import_s": elapsed, "modules": sorted(m for m in sys.modules
                  if m.split(".")[0] in ("torch", "numpy", "terramind_backend", "rasterio", "safetensors")),
                  "numpy": getattr(sys.modules.get("numpy"), "__version__", None)}))
"""


def probe():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_import_is_fast():
    # best of three fresh processes: the machine running the tests is shared and busy
    times = [probe()["import_s"] for _ in range(3)]
    assert min(times) <= 0.150, f"plugin import took {[round(t * 1000) for t in times]} ms"


def test_no_torch_numpy2_or_backend_in_qgis_python():
    result = probe()
    assert not [m for m in result["modules"] if m.split(".")[0] in ("torch", "terramind_backend", "rasterio",
                                                                    "safetensors")], result["modules"]
    if result["numpy"] is not None:  # QGIS itself may load its own numpy 1.x; never a 2.x
        assert int(result["numpy"].split(".")[0]) < 2, result["numpy"]
