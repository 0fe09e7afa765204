"""Window plans and blending: pure functions, no files."""
from __future__ import annotations

import math

import numpy as np
import pytest

from terramind_backend.engine.blending import MIN_WEIGHT, RowStripAccumulator, ramp, weight_kernel
from terramind_backend.engine.grid import build_grid, wkt_to_geojson
from terramind_backend.engine.tiling import axis_offsets, batches, plan_windows


@pytest.mark.parametrize("length,size,stride", [(224, 224, 192), (225, 224, 192), (1000, 224, 192), (4096, 224, 192),
                                                (100, 224, 192), (448, 224, 224), (513, 96, 64)])
def test_axis_offsets_count_formula_and_coverage(length, size, stride):
    starts = axis_offsets(length, size, stride)
    expected = 1 if length <= size else math.ceil((length - size) / stride) + 1
    assert len(starts) == expected
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    if length > size:
        assert starts[-1] == length - size  # the last window moves inward, never past the edge
        assert all(b - a <= stride for a, b in zip(starts, starts[1:]))
    covered = np.zeros(max(length, size), dtype=bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered[:length].all()


def test_plan_windows_is_row_major_and_non_square():
    wins = plan_windows(300, 500, 224, 32)
    rows = [w.row_off for w in wins]
    assert rows == sorted(rows)
    assert {(w.width, w.height) for w in wins} == {(224, 224)}
    assert len(wins) == len(axis_offsets(300, 224, 192)) * len(axis_offsets(500, 224, 192))


def test_small_raster_gets_one_padded_window():
    assert [(w.col_off, w.row_off) for w in plan_windows(50, 70, 224, 32)] == [(0, 0)]


def test_batches():
    assert [list(b) for b in batches(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_weight_kernel_is_smooth_positive_and_symmetric():
    k = weight_kernel(224, 32)
    assert k.shape == (224, 224)
    assert k.min() >= MIN_WEIGHT * MIN_WEIGHT and k.max() == 1.0
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    r = ramp(224, 32)
    assert np.all(np.diff(r[:33]) >= 0) and np.all(r[32:192] == 1)
    assert np.array_equal(ramp(64, 0), np.ones(64, dtype=np.float32))


def _blend(height, width, size, overlap, fn):
    out = np.full((height, width), np.nan, dtype=np.float32)
    seen = np.zeros(height, dtype=int)

    def flush(row, data):
        out[row:row + data.shape[1]] = data[0]
        seen[row:row + data.shape[1]] += 1

    acc = RowStripAccumulator(height, width, 1, size, flush)
    kernel = weight_kernel(size, overlap)
    for w in plan_windows(height, width, size, overlap):
        r, c = int(w.row_off), int(w.col_off)
        yy, xx = np.mgrid[r:r + size, c:c + size]
        acc.add(r, c, fn(yy, xx)[None].astype(np.float32), kernel)
    acc.close()
    return out, seen


@pytest.mark.parametrize("height,width", [(700, 513), (224, 224), (100, 60), (1000, 230)])
def test_consistent_windows_blend_to_the_exact_field_and_rows_flush_once(height, width):
    field = lambda y, x: np.sin(y / 37.0) + np.cos(x / 23.0)  # noqa: E731
    out, seen = _blend(height, width, 96, 32, field)
    yy, xx = np.mgrid[0:height, 0:width]
    assert np.all(seen == 1)
    np.testing.assert_allclose(out, field(yy, xx), atol=1e-5)


def test_disagreeing_windows_blend_smoothly():
    # each window predicts its own constant; the blend must stay within the range and be continuous
    out, _ = _blend(400, 400, 96, 32, lambda y, x: np.full(y.shape, float(y[0, 0] + x[0, 0])))
    assert np.isfinite(out).all()
    assert np.abs(np.diff(out, axis=1)).max() < 15  # no hard seams (window constants differ by 64)


def test_accumulator_memory_does_not_depend_on_height():
    small = RowStripAccumulator(500, 300, 3, 224, lambda r, d: None)
    tall = RowStripAccumulator(50_000, 300, 3, 224, lambda r, d: None)
    assert small._acc.nbytes == tall._acc.nbytes


def test_out_of_order_windows_are_refused():
    acc = RowStripAccumulator(500, 500, 1, 96, lambda r, d: None)
    acc.add(64, 0, np.zeros((1, 96, 96), np.float32), weight_kernel(96, 32))
    with pytest.raises(ValueError, match="row-major"):
        acc.add(0, 0, np.zeros((1, 96, 96), np.float32), weight_kernel(96, 32))


def test_grid_snaps_to_anchor_lattice():
    from affine import Affine

    anchor = Affine(10, 0, 1003.0, 0, -10, 5007.0)
    g = build_grid("EPSG:32633", (1000.0, 4000.0, 1100.0, 5000.0), 10.0, anchor)
    assert (g.transform.c - 1003.0) % 10 == 0 and (5007.0 - g.transform.f) % 10 == 0
    left, bottom, right, top = g.bounds
    assert left <= 1000 and bottom <= 4000 and right >= 1100 and top >= 5000
    assert g.width == 11 and g.height == 101


def test_wkt_polygons():
    p = wkt_to_geojson("POLYGON ((0 0, 10 0, 10 10, 0 0))")
    assert p["type"] == "Polygon" and p["coordinates"][0][1] == (10.0, 0.0)
    mp = wkt_to_geojson("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))")
    assert len(mp["coordinates"]) == 2
    with pytest.raises(ValueError, match="POLYGON"):
        wkt_to_geojson("LINESTRING (0 0, 1 1)")
