"""terramind:similarity — how similar every patch of a TerraMind embeddings raster is to examples (0–1)."""
from __future__ import annotations

from qgis.core import (QgsCoordinateTransform, QgsFeatureRequest, QgsProcessing, QgsProcessingException,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterNumber, QgsProcessingParameterPoint,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterVectorDestination, QgsWkbTypes)

from ..similarity_job import embeddings_problem, layer_path, similarity_spec
from .base import TerraMindAlgorithm


class SimilarityAlgorithm(TerraMindAlgorithm):
    ALG_NAME = "similarity"
    DISPLAY = "Find similar places (embeddings)"
    uses_precision = False  # cosine similarity in the backend, no model
    HELP = (
        "Maps how similar every 16×16-pixel patch of a TerraMind embeddings raster (made by <i>Embeddings</i>) "
        "is to examples: 1 = the same as the examples, 0 = unrelated or opposite.<br><br>"
        "<b>Examples</b>: a point, and/or a layer of points (each a positive example) or polygons (each the "
        "mean of the patches it covers); several positives are averaged. <b>Negative examples</b>: points; a "
        "patch more similar to one of them than to the positives scores 0.<br>"
        "<b>Threshold</b> with <b>Matching areas</b>: the patches from that similarity up, as polygons "
        "(GeoPackage). The map tool <i>Find similar places…</i> does the same by clicking on the map."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("EMBEDDINGS", self.tr("Embeddings (TerraMind)")))
        self.addParameter(QgsProcessingParameterPoint("POINT", self.tr("Example point"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "EXAMPLES", self.tr("Example points or polygons"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "NEGATIVES", self.tr("Negative example points (not like these)"), [QgsProcessing.TypeVectorPoint],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "THRESHOLD", self.tr("Threshold for matching areas (0–1)"), QgsProcessingParameterNumber.Double,
            optional=True, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Similarity")))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OUTPUT_AREAS", self.tr("Matching areas"), QgsProcessing.TypeVectorPolygon, optional=True,
            createByDefault=False))

    def model_size(self, parameters, context):
        return None

    def _points(self, parameters, name, context, crs):
        """(x, y) of every point feature and WKT of every polygon feature, in ``crs``."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            return [], []
        transform = QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
        points, polygons = [], []
        for feature in source.getFeatures(QgsFeatureRequest()):
            geometry = feature.geometry()
            if geometry.isEmpty():
                continue
            geometry.transform(transform)
            if geometry.type() == QgsWkbTypes.PolygonGeometry:
                polygons.append(geometry.asWkt())
            else:
                points += [(p.x(), p.y()) for p in geometry.vertices()]
        return points, polygons

    def build_spec(self, parameters, context, feedback=None) -> tuple:
        layer = self.parameterAsRasterLayer(parameters, "EMBEDDINGS", context)
        problem = embeddings_problem(layer)
        if problem:
            raise QgsProcessingException(self.tr(problem))
        crs = layer.crs()
        positives, polygons = self._points(parameters, "EXAMPLES", context, crs)
        if parameters.get("POINT"):
            point = self.parameterAsPoint(parameters, "POINT", context, crs)
            positives.insert(0, (point.x(), point.y()))
        negatives, _ = self._points(parameters, "NEGATIVES", context, crs)
        if not positives and not polygons:
            raise QgsProcessingException(self.tr("Give at least one example: a point, or example points or polygons."))
        threshold = self.parameterAsDouble(parameters, "THRESHOLD", context) if \
            parameters.get("THRESHOLD") not in (None, "") else None
        areas = self.parameterAsOutputLayer(parameters, "OUTPUT_AREAS", context) or None
        if areas and threshold is None:
            raise QgsProcessingException(self.tr("Matching areas need a threshold (e.g. 0.8)."))
        if areas and not areas.lower().endswith(".gpkg"):
            raise QgsProcessingException(self.tr(f"Matching areas are written as a GeoPackage: give a .gpkg file, "
                                                 f"not {areas}."))
        spec = similarity_spec(layer_path(layer), self.destination(parameters, "OUTPUT", context), positives,
                               negatives, polygons, threshold=threshold, areas=areas)
        destinations = {"similarity": "OUTPUT"}
        if areas:
            destinations["areas"] = "OUTPUT_AREAS"
        return spec, destinations

    def checkParameterValues(self, parameters, context):  # noqa: N802
        return super(TerraMindAlgorithm, self).checkParameterValues(parameters, context)  # no tiles to check
