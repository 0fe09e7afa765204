"""Plugin entry: toolbar button, menu entries and the Processing provider; unload removes them all."""
from __future__ import annotations

from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .paths import icon_path

MENU = "&TerraMind"


class TerraMindPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.actions = []
        self.toolbar = None
        self.dialog = None
        self.provider = None
        self.similarity_tool = None

    # -- QGIS plugin API -------------------------------------------------------------------
    def initProcessing(self):  # noqa: N802 (QGIS calls it too: qgis_process, hasProcessingProvider=yes)
        if self.provider is None:
            from qgis.core import QgsApplication

            from .processing import TerraMindProvider

            self.provider = TerraMindProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        from .lifecycle import install

        install()  # QGIS quitting mid-job cancels our tasks and stops the backend first
        self.initProcessing()
        self.toolbar = self.iface.addToolBar("TerraMind")
        self.toolbar.setObjectName("TerraMindToolbar")
        run_action = self._add_action("TerraMind…", self.show_dialog, icon="terramind.svg", toolbar=True,
                                      tip="Generate LULC/NDVI/DEM/SAR layers or embeddings with TerraMind 1.0")
        run_action.setObjectName("TerraMindRunAction")
        similar = self._add_action("Find similar places…", self.find_similar, icon="similar.svg", toolbar=True,
                                   tip="Click on a TerraMind embeddings layer to map how similar every place is "
                                       "(Shift-click: not this; Ctrl-click…right-click: an area; Esc: start over)")
        similar.setObjectName("TerraMindSimilarAction")
        self._add_action("Settings and backend…", self.show_settings, icon="settings.svg")

    def unload(self):
        from .lifecycle import on_quit

        if self.similarity_tool is not None:
            self.iface.mapCanvas().unsetMapTool(self.similarity_tool)
            self.similarity_tool = None

        on_quit()  # QGIS quits (or the plugin goes): cancel our tasks silently and end the warm backend
        if self.provider is not None:
            from qgis.core import QgsApplication

            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    # -- actions ---------------------------------------------------------------------------
    def _add_action(self, text, callback, icon, toolbar=False, tip=None):
        action = QAction(QIcon(icon_path(icon)), text, self.iface.mainWindow())
        action.triggered.connect(callback)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        self.iface.addPluginToRasterMenu(MENU, action)
        if toolbar:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def show_dialog(self):
        from .dialog import TerraMindDialog

        if self.dialog is None:
            self.dialog = TerraMindDialog(self.iface, parent=self.iface.mainWindow())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    def find_similar(self):
        """Start the find-similar map tool on the active layer (it must be TerraMind embeddings)."""
        from .similarity_tool import SimilarityMapTool

        canvas = self.iface.mapCanvas()
        try:
            tool = SimilarityMapTool(canvas, self.iface.activeLayer(), iface=self.iface)
        except ValueError as exc:
            self.iface.messageBar().pushWarning("TerraMind", str(exc))
            return
        if self.similarity_tool is not None:
            canvas.unsetMapTool(self.similarity_tool)
        self.similarity_tool = tool
        canvas.setMapTool(tool)
        from qgis.core import Qgis

        from .similarity_tool import message_widget

        self.iface.messageBar().pushWidget(message_widget(tool), Qgis.Info)

    def show_settings(self):
        from .settings_dialog import SettingsDialog

        SettingsDialog(parent=self.iface.mainWindow()).exec()
