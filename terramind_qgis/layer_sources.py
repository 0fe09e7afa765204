"""QGIS layers and CRSs as the plain values a JobSpec holds (the backend reads files, not QGIS providers)."""
from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsProviderRegistry


def crs_string(crs: QgsCoordinateReferenceSystem) -> str:
    """"EPSG:32633" when the CRS has an authority id, else its WKT in the flavour GDAL reads best; "" when invalid."""
    if not crs.isValid():
        return ""
    return crs.authid() or crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL)


def layer_file(layer) -> str | None:
    """The file behind a GDAL raster layer, or None for layers of other providers (WMS, PostGIS, …)."""
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()


def band_descriptions(path: str) -> tuple:
    """The file's band descriptions ("B04", "VV", …); empty when GDAL cannot say."""
    try:
        from osgeo import gdal

        dataset = gdal.Open(path)
    except Exception:  # noqa: BLE001 (descriptions only refine the band order)
        return ()
    if dataset is None:
        return ()
    return tuple(dataset.GetRasterBand(i).GetDescription() or "" for i in range(1, dataset.RasterCount + 1))
