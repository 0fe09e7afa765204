"""The `similarity` JobSpec (docs/similarity.md) as the map tool and Processing build it, and the
embeddings layers it can run on. Pure PyQGIS; the backend does the arithmetic."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

from qgis.core import QgsProviderRegistry, QgsRasterLayer

Point = Tuple[float, float]
EMBEDDINGS_TAG = "TERRAMIND_OUTPUT"   # the engine tags every output file with what it is


def layer_path(layer: QgsRasterLayer) -> str:
    return QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()


def embeddings_problem(layer) -> Optional[str]:
    """Why ``layer`` cannot be searched ("" reasons in words), or None for an embeddings raster
    written by TerraMind (tag TERRAMIND_OUTPUT=embeddings)."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return "Select an embeddings raster layer first (made by TerraMind: Embeddings)."
    if layer.providerType() != "gdal":
        return f"Layer '{layer.name()}' is not a raster file; find-similar reads TerraMind embeddings GeoTIFFs."
    try:
        from osgeo import gdal

        dataset = gdal.Open(layer_path(layer))
        made = dataset.GetMetadataItem(EMBEDDINGS_TAG) if dataset is not None else None
    except Exception:  # noqa: BLE001 - an unreadable file is reported below
        made = None
    if made != "embeddings":
        return (f"Layer '{layer.name()}' is not a TerraMind embeddings raster; run TerraMind's Embeddings "
                "first and click on its result.")
    return None


def similarity_spec(embeddings: str, out: str, positives: Sequence[Point] = (), negatives: Sequence[Point] = (),
                    polygons: Iterable[str] = (), points_crs: Optional[str] = None,
                    threshold: Optional[float] = None, areas: Optional[str] = None) -> dict:
    """The JobSpec: points/polygons in ``points_crs`` (None: the embeddings' CRS)."""
    query = {"positives": [[float(x), float(y)] for x, y in positives],
             "negatives": [[float(x), float(y)] for x, y in negatives],
             "polygons": list(polygons), "points_crs": points_crs}
    outputs = {"similarity": out}
    if threshold is not None:
        query["threshold"] = float(threshold)
    if areas:
        outputs["areas"] = areas
    return {"version": 1, "task": "similarity", "inputs": {"embeddings": embeddings}, "outputs": outputs,
            "options": {"similarity": query}}


def place_above(layers, anchor, project) -> list:
    """Add ``layers`` to ``project`` right above ``anchor``'s node, in its group (top of the tree when
    ``anchor`` is not in it). Main thread."""
    root = project.layerTreeRoot()
    node = root.findLayer(anchor.id()) if anchor is not None else None
    parent = node.parent() if node is not None else root
    index = parent.children().index(node) if node is not None else 0
    added = []
    for layer in layers:
        if not layer.isValid():
            continue
        project.addMapLayer(layer, False)
        parent.insertLayer(index + len(added), layer)
        added.append(layer)
    return added
