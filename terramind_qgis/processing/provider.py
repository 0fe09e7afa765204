"""The "TerraMind" Processing provider (id ``terramind``)."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..paths import icon_path, plugin_version
from .embed import EmbedAlgorithm
from .finetune import FinetuneAlgorithm
from .generate import GenerateAlgorithm
from .reconstruct import ReconstructAlgorithm
from .segment import SegmentAlgorithm
from .similarity import SimilarityAlgorithm

ALGORITHMS = (GenerateAlgorithm, EmbedAlgorithm, SegmentAlgorithm, ReconstructAlgorithm, FinetuneAlgorithm,
              SimilarityAlgorithm)


class TerraMindProvider(QgsProcessingProvider):
    def id(self):
        return "terramind"

    def name(self):
        return "TerraMind"

    def longName(self):  # noqa: N802
        return "TerraMind 1.0 (IBM/ESA Earth-observation foundation model)"

    def icon(self):
        return QIcon(icon_path())

    def svgIconPath(self):  # noqa: N802
        return icon_path()

    def versionInfo(self):  # noqa: N802
        return plugin_version()

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif", "tiff"]  # the engine writes (cloud-optimized) GeoTIFF only

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802
        return ["gpkg"]  # similarity's matching areas

    def defaultVectorFileExtension(self, hasGeometry=True):  # noqa: N802
        return "gpkg"

    def loadAlgorithms(self):  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
