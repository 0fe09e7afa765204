"""Embeddings as a picture: a false-colour composite of their first three principal components.

Raw feature bands 1-3 mean nothing to a user; the three directions of largest variance over the whole
output do. Two streamed passes over the written embeddings file, one row strip at a time (flat memory):
the first sums the valid pixels' features and their outer products (float64, C x C), giving the
covariance and its leading eigenvectors; the second projects every pixel onto them into a 3-band
``<name>_pca.tif`` (COG + .qml), finished from the embeddings' temp file and published with them, all or
none (`publish.py`). The components (mean, loadings, variance
shares) are stored in that file's GDAL metadata, so the picture can be reproduced from the embeddings.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window

from .grid import Grid
from .styles import rgb
from .writer import OutputSpec, OutputWriter

COMPONENTS = 3
STRIP_ROWS = 64
KIND = "embeddings-pca"


@dataclass
class Pca:
    mean: np.ndarray        # [C]
    components: np.ndarray  # [k, C], unit rows, sign: largest |loading| positive
    variance: np.ndarray    # [k], variance along each component
    explained: np.ndarray   # [k], share of the total variance


def composite_path(path: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}_pca{ext or '.tif'}"


def _strips(ds) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """(row offset, features [n_pixels_in_strip, C] float64, valid [n_pixels]) per row strip."""
    for row in range(0, ds.height, STRIP_ROWS):
        n = min(STRIP_ROWS, ds.height - row)
        window = Window(0, row, ds.width, n)
        data = ds.read(window=window).astype(np.float64)           # [C, n, W]
        valid = ds.read_masks(1, window=window) > 0                   # [n, W]
        valid &= np.isfinite(data).all(axis=0)
        yield row, data.reshape(data.shape[0], -1).T, valid.reshape(-1)


def fit(path: str, k: int = COMPONENTS) -> Pca:
    """Principal components of the valid pixels of an embeddings raster (streamed)."""
    with rasterio.open(path) as ds:
        c = ds.count
        count, total, outer = 0, np.zeros(c), np.zeros((c, c))
        for _, x, valid in _strips(ds):
            x = x[valid]
            count += len(x)
            total += x.sum(axis=0)
            outer += x.T @ x
    if count < 2:
        raise ValueError(f"{path}: fewer than two valid pixels, no principal components")
    mean = total / count
    cov = (outer - count * np.outer(mean, mean)) / (count - 1)
    values, vectors = np.linalg.eigh(cov)                 # ascending
    order = np.argsort(values)[::-1][:k]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(len(order)), np.abs(components).argmax(axis=1)])
    components *= signs[:, None]
    variance = np.clip(values[order], 0.0, None)
    explained = variance / max(float(np.clip(values, 0.0, None).sum()), 1e-30)
    return Pca(mean, components, variance, explained)


def composite_writer(source: str, destination: str, pca: Pca, name: str) -> OutputWriter:
    """Project the embeddings file ``source`` (published, or still under its temp name) onto ``pca`` into
    the composite of ``destination``; returns its writer, finished but not published (or aborted on error)."""
    with rasterio.open(source) as ds:
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
        share = ", ".join(f"PC{i + 1} {100 * e:.1f} %" for i, e in enumerate(pca.explained))
        spec = OutputSpec(
            name=f"{name} PCA", path=composite_path(destination), kind=KIND, dtype="float32", nodata=float("nan"),
            band_names=[f"PC{i + 1} ({100 * e:.1f} % of variance)" for i, e in enumerate(pca.explained)],
            tags={"TERRAMIND_PCA_SOURCE": os.path.basename(destination),
                  "TERRAMIND_PCA_MEAN": json.dumps([round(float(v), 7) for v in pca.mean]),
                  "TERRAMIND_PCA_COMPONENTS": json.dumps([[round(float(v), 7) for v in row]
                                                          for row in pca.components]),
                  "TERRAMIND_PCA_EXPLAINED": json.dumps([round(float(v), 6) for v in pca.explained]),
                  "DESCRIPTION": f"False colour of the first three principal components of {name} "
                                 f"(red = PC1, green = PC2, blue = PC3; {share} of the variance). "
                                 f"Similar colours = similar embeddings."})
        writer = OutputWriter(spec, grid)
        try:
            for row, x, valid in _strips(ds):
                projected = np.full((len(x), len(pca.components)), np.nan, dtype=np.float32)
                projected[valid] = (x[valid] - pca.mean) @ pca.components.T
                shaped = projected.T.reshape(len(pca.components), -1, ds.width)
                writer.write(row, shaped, valid.reshape(-1, ds.width))
            # each component centred at 0, stretched over +-2 standard deviations
            ranges = [(-2.0 * float(np.sqrt(v)), 2.0 * float(np.sqrt(v))) for v in pca.variance]
            writer.finish(rgb((1, 2, 3), ranges))
        except BaseException:
            writer.abort()
            raise
    return writer


def composites(writers: Sequence[OutputWriter], emit) -> List[OutputWriter]:
    """For every finished embeddings writer of a job, its PCA composite, finished from the temp file but not
    published: the job publishes it with the embeddings, all or none (`executors/assembly.py`)."""
    made: List[OutputWriter] = []
    try:
        for writer in writers:
            if writer.spec.kind != "embeddings":
                continue
            try:
                pca = fit(writer.temp_file)
            except ValueError as exc:   # nothing valid to colour: the embeddings themselves are still the result
                emit({"event": "log", "level": "warning", "message": f"No false-colour composite: {exc}"})
                continue
            emit({"event": "log", "level": "info",
                  "message": f"Principal components of {writer.spec.name}: "
                             f"{', '.join(f'{100 * e:.0f} %' for e in pca.explained)} of the variance"})
            made.append(composite_writer(writer.temp_file, writer.spec.path, pca, writer.spec.name))
    except BaseException:
        for composite in made:
            composite.abort()
        raise
    return made
