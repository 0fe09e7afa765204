"""The plugin loads in real QGIS 3.22: classFactory, initGui adds the toolbar action and menu, unload removes every trace;
the packaged zip installs into a clean profile folder and loads there."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]




@pytest.fixture
def raster_menu(qgis_iface, monkeypatch):
    """pytest-qgis's iface lacks the Raster-menu calls of the real QgisInterface: record them in a real menu."""
    menu = {}
    monkeypatch.setattr(qgis_iface, "addPluginToRasterMenu", lambda name, action: menu.setdefault(name, []).append(action), raising=False)
    monkeypatch.setattr(qgis_iface, "removePluginRasterMenu", lambda name, action: menu[name].remove(action), raising=False)
    return menu


def test_init_gui_and_unload_leave_no_trace(qgis_iface, raster_menu):
    from qgis.PyQt.QtWidgets import QToolBar

    import terramind_qgis

    main = qgis_iface.mainWindow()
    toolbars_before = {id(t) for t in main.findChildren(QToolBar)}
    plugin = terramind_qgis.classFactory(qgis_iface)
    plugin.initGui()

    toolbar = main.findChild(QToolBar, "TerraMindToolbar")
    assert toolbar is not None, "initGui must add a TerraMind toolbar"
    texts = [a.text() for a in toolbar.actions()]
    assert any("TerraMind" in t for t in texts), texts
    run_action = [a for a in plugin.actions if a.objectName() == "TerraMindRunAction"][0]
    assert not run_action.icon().isNull(), "toolbar action needs the TerraMind icon"
    assert len(plugin.actions) >= 2  # run + settings, also in the Raster menu
    assert set(raster_menu["&TerraMind"]) == set(plugin.actions)

    plugin.unload()
    assert plugin.actions == []
    assert raster_menu["&TerraMind"] == [], "unload must remove the menu entries"
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    assert main.findChild(QToolBar, "TerraMindToolbar") is None, "unload must remove the toolbar"
    assert {id(t) for t in main.findChildren(QToolBar)} <= toolbars_before | set()


def test_package_zip_installs_into_clean_profile_and_loads(tmp_path):
    """Build the real zip, unpack it into a fresh QGIS profile's plugin folder and load it from there
    in a separate QGIS Python process (so the checkout on sys.path cannot mask a packaging mistake)."""
    subprocess.run(["bash", str(REPO / "scripts" / "package.sh")], check=True, capture_output=True, text=True)
    version = next(l.split("=", 1)[1] for l in (REPO / "metadata.txt").read_text().splitlines() if l.startswith("version="))
    zip_path = REPO / "dist" / f"terramind_qgis-{version}.zip"
    plugins_dir = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins_dir.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(plugins_dir)
    script = f"""
import os, sys
os.environ['QT_QPA_PLATFORM'] = 'offscreen'
sys.path.insert(0, {str(plugins_dir)!r})
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
import qgis.utils
from qgis.PyQt.QtWidgets import QMainWindow, QToolBar
class Iface:  # the bits of QgisInterface initGui/unload use
    def __init__(self): self.win = QMainWindow()
    def mainWindow(self): return self.win
    def addToolBar(self, name):
        tb = QToolBar(name, self.win); self.win.addToolBar(tb); return tb
    def addPluginToRasterMenu(self, menu, action): pass
    def removePluginRasterMenu(self, menu, action): pass
    def removeToolBarIcon(self, action): pass
    def messageBar(self):
        from qgis.gui import QgsMessageBar
        self.__dict__.setdefault('bar', QgsMessageBar()); return self.__dict__['bar']
    def __getattr__(self, name): return lambda *a, **k: None
qgis.utils.iface = Iface()
qgis.utils.plugin_paths = [{str(plugins_dir)!r}]
qgis.utils.updateAvailablePlugins()
assert 'terramind_qgis' in qgis.utils.available_plugins, qgis.utils.available_plugins
ok = qgis.utils.loadPlugin('terramind_qgis') and qgis.utils.startPlugin('terramind_qgis')
mod = sys.modules['terramind_qgis']
assert mod.__file__.startswith({str(plugins_dir)!r}), mod.__file__
from terramind_qgis import paths
assert paths.RESOURCES_DIR.is_dir() and paths.RESOURCES_DIR.parent == paths.PLUGIN_DIR, paths.RESOURCES_DIR
assert (paths.BACKEND_SRC_DIR / 'pyproject.toml').is_file()
assert 'torch' not in sys.modules
print('LOADED', ok, qgis.utils.unloadPlugin('terramind_qgis'))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert "LOADED True True" in out.stdout, out.stdout + out.stderr


def test_metadata_has_every_required_field():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "metadata.txt")
    general = cfg["general"]
    for field in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                  "tracker", "homepage", "category", "icon", "tags", "experimental", "hasProcessingProvider"):
        assert general.get(field, "").strip(), f"metadata.txt lacks {field}"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (REPO / general["icon"]).is_file()
