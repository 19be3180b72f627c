"""Tiling and blending: grids, the window, its normaliser, and the three blending APIs."""

from __future__ import annotations

import numpy as np
import pytest

from cryo_pipeline.ops.blending import (
    BlendAccumulator,
    blend_region_3d,
    blend_tiles_3d,
    blend_window_1d,
    blend_window_3d,
    release_pages,
    tile_origins_1d,
    tile_origins_3d,
    window_sum_1d,
)

SHAPE = (37, 50, 29)  # no axis a multiple of the tile
TILE = 16
OVERLAP = 6


def _crops(volume, origins, tile):
    return np.stack([volume[z : z + tile, y : y + tile, x : x + tile] for z, y, x in origins])


def _blend_all_ways(tiles, origins, shape, *, tile, overlap):
    """(accumulator, gather over a few boxes, convenience) results for the same tiles."""
    acc = BlendAccumulator(shape, tile_zyx=tile, overlap_zyx=overlap)
    for t, o in zip(tiles, origins, strict=True):
        acc.add(t, o)
    pushed = acc.finalize()
    gathered = np.empty(shape, dtype=np.float32)
    edges = [np.unique(np.r_[0 : n : 13, n]) for n in shape]  # output chunks of 13 (not tile-aligned)
    for z0, z1 in zip(edges[0][:-1], edges[0][1:], strict=True):
        for y0, y1 in zip(edges[1][:-1], edges[1][1:], strict=True):
            for x0, x1 in zip(edges[2][:-1], edges[2][1:], strict=True):
                gathered[z0:z1, y0:y1, x0:x1] = blend_region_3d(
                    (z0, y0, x0), (z1, y1, x1), origins=origins, tile_zyx=tile, overlap_zyx=overlap,
                    read_tile=lambda i, box: tiles[i][box])
    convenience = blend_tiles_3d(tiles, origins, shape, overlap_zyx=overlap)
    return pushed, gathered, convenience


# --- grid ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "tile", "overlap", "expected"), [
    (37, 16, 6, [0, 10, 20, 21]),
    (50, 16, 6, [0, 10, 20, 30, 34]),
    (16, 16, 6, [0]),
    (40, 10, 0, [0, 10, 20, 30]),
    (41, 10, 0, [0, 10, 20, 30, 31]),
])
def test_tile_origins_1d_stride_and_flush_end(length, tile, overlap, expected):
    origins = tile_origins_1d(length, tile=tile, overlap=overlap)
    np.testing.assert_array_equal(origins, expected)
    assert origins.dtype == np.int64
    assert origins[-1] + tile == length
    assert np.all(np.diff(origins) <= tile - overlap)


def test_tile_origins_3d_is_the_product_z_major():
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    per_axis = [tile_origins_1d(n, tile=TILE, overlap=OVERLAP) for n in SHAPE]
    assert origins.shape == (np.prod([a.size for a in per_axis]), 3)
    assert origins.dtype == np.int64
    np.testing.assert_array_equal(origins[: per_axis[2].size, 2], per_axis[2])
    assert set(map(tuple, origins)) == {(z, y, x) for z in per_axis[0] for y in per_axis[1] for x in per_axis[2]}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"length": 10, "tile": 16, "overlap": 2}, r"tile \(16\) must be between 1 and the axis length \(10\)"),
    ({"length": 40, "tile": 16, "overlap": 16}, r"overlap \(16\) must be >= 0 and smaller than the tile \(16\)"),
    ({"length": 40, "tile": 16, "overlap": -1}, r"overlap \(-1\)"),
])
def test_tile_origins_errors_name_the_values(kwargs, match):
    length = kwargs.pop("length")
    with pytest.raises(ValueError, match=match):
        tile_origins_1d(length, **kwargs)


def test_tile_origins_3d_rejects_a_wrong_number_of_axes():
    with pytest.raises(ValueError, match=r"tile_zyx must be one int or three"):
        tile_origins_3d(SHAPE, tile_zyx=(16, 16), overlap_zyx=6)


# --- window -------------------------------------------------------------------------------
@pytest.mark.parametrize(("tile", "overlap"), [(16, 6), (64, 16), (9, 4), (10, 7), (8, 0), (1, 0)])
def test_window_positive_symmetric_and_flat_in_the_middle(tile, overlap):
    w = blend_window_1d(tile, overlap=overlap)
    assert w.shape == (tile,) and w.dtype == np.float64
    assert np.all(w > 0) and np.all(w <= 1)
    np.testing.assert_allclose(w, w[::-1], atol=1e-15)
    if 2 * overlap < tile:
        np.testing.assert_array_equal(w[overlap : tile - overlap], 1.0)
        assert np.all(np.diff(w[: overlap + 1]) > 0)  # rising ramp


def test_window_ramps_of_neighbours_sum_to_one():
    tile, overlap = 64, 16
    w = blend_window_1d(tile, overlap=overlap)
    np.testing.assert_allclose(w[tile - overlap :] + w[:overlap], 1.0, atol=1e-12)


def test_window_3d_is_separable():
    w3 = blend_window_3d((16, 12, 10), overlap_zyx=(6, 4, 3))
    wz, wy, wx = (blend_window_1d(t, overlap=o) for t, o in ((16, 6), (12, 4), (10, 3)))
    np.testing.assert_allclose(w3, np.einsum("i,j,k->ijk", wz, wy, wx), rtol=1e-15)


def test_window_rejects_overlap_not_below_tile():
    with pytest.raises(ValueError, match=r"got tile 8, overlap 8"):
        blend_window_1d(8, overlap=8)


@pytest.mark.parametrize(("length", "tile", "overlap"),
                         [(37, 16, 6), (50, 16, 6), (29, 16, 6), (100, 32, 31), (16, 16, 3)])
def test_window_sum_equals_brute_force(length, tile, overlap):
    brute = np.zeros(length)
    w = blend_window_1d(tile, overlap=overlap)
    for start in tile_origins_1d(length, tile=tile, overlap=overlap):
        brute[start : start + tile] += w
    total = window_sum_1d(length, tile=tile, overlap=overlap)
    np.testing.assert_allclose(total, brute, rtol=1e-15)
    assert np.all(total > 0)


def test_separable_normaliser_equals_the_3d_sum_of_windows():
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    w3 = blend_window_3d(TILE, overlap_zyx=OVERLAP)
    den = np.zeros(SHAPE)
    for z, y, x in origins:
        den[z : z + TILE, y : y + TILE, x : x + TILE] += w3
    dz, dy, dx = (window_sum_1d(n, tile=TILE, overlap=OVERLAP) for n in SHAPE)
    np.testing.assert_allclose(np.einsum("i,j,k->ijk", dz, dy, dx), den, rtol=1e-12)


# --- blending -----------------------------------------------------------------------------
def test_constant_volume_comes_back_constant_all_three_ways():
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tiles = np.full((len(origins), TILE, TILE, TILE), 3.25, dtype=np.float32)
    for result in _blend_all_ways(tiles, origins, SHAPE, tile=TILE, overlap=OVERLAP):
        assert result.shape == SHAPE and result.dtype == np.float32
        np.testing.assert_allclose(result, 3.25, rtol=1e-6)


@pytest.mark.parametrize(("shape", "tile", "overlap"), [(SHAPE, 16, 6), ((20, 33, 47), (8, 16, 12), (3, 5, 0))])
def test_exact_crops_reproduce_a_random_volume_and_the_apis_agree(shape, tile, overlap):
    rng = np.random.default_rng(7)
    volume = rng.standard_normal(shape).astype(np.float32)
    tz, ty, tx = (tile,) * 3 if np.isscalar(tile) else tile
    origins = tile_origins_3d(shape, tile_zyx=tile, overlap_zyx=overlap)
    tiles = np.stack([volume[z : z + tz, y : y + ty, x : x + tx] for z, y, x in origins])
    pushed, gathered, convenience = _blend_all_ways(tiles, origins, shape, tile=tile, overlap=overlap)
    for result in (pushed, gathered, convenience):
        np.testing.assert_allclose(result, volume, atol=1e-6)
    np.testing.assert_allclose(pushed, gathered, atol=1e-6)
    np.testing.assert_allclose(gathered, convenience, atol=0)


def test_blending_weights_differing_tiles_by_the_window():
    """Two 1-voxel-thick tiles overlapping by 4: the overlap is the window-weighted mean."""
    shape, tile, overlap = (1, 1, 12), (1, 1, 8), (0, 0, 4)
    origins = tile_origins_3d(shape, tile_zyx=tile, overlap_zyx=overlap)
    tiles = np.stack([np.zeros(tile), np.ones(tile)]).astype(np.float32)
    out = blend_tiles_3d(tiles, origins, shape, overlap_zyx=overlap)[0, 0]
    w = blend_window_1d(8, overlap=4)
    expected = np.r_[np.zeros(4), w[:4] / (w[4:] + w[:4]), np.ones(4)]
    np.testing.assert_allclose(out, expected, atol=1e-7)
    assert np.all(np.diff(out) >= 0)


def test_accumulator_into_a_memmap(tmp_path):
    rng = np.random.default_rng(3)
    volume = rng.standard_normal(SHAPE).astype(np.float32)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=SHAPE)
    out[:] = 99.0  # the accumulator zeroes it
    acc = BlendAccumulator(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP, out=out)
    for o in acc.origins:
        acc.add(_crops(volume, [o], TILE)[0], o)
    assert acc.finalize() is out
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), volume, atol=1e-6)


def test_accumulator_errors():
    acc = BlendAccumulator(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tile = np.zeros((TILE,) * 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"tile origin \(1, 0, 0\) is not on the tile grid"):
        acc.add(tile, (1, 0, 0))
    with pytest.raises(ValueError, match=r"tile at \(0, 0, 0\) has shape \(16, 16, 15\), expected \(16, 16, 16\)"):
        acc.add(tile[..., :15], (0, 0, 0))
    acc.add(tile, (0, 0, 0))
    with pytest.raises(ValueError, match=r"tile origin \(0, 0, 0\) was already added"):
        acc.add(tile, (0, 0, 0))
    with pytest.raises(ValueError, match=rf"{acc.n_tiles - 1} of {acc.n_tiles} tiles were never added"):
        acc.finalize()
    with pytest.raises(ValueError, match=r"out must be a float32 array of shape \(37, 50, 29\), got float64"):
        BlendAccumulator(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP, out=np.zeros(SHAPE))


def test_gather_errors_on_uncovered_voxels_and_bad_tiles():
    origins = np.array([[0, 0, 0]])
    read = lambda i, box: np.ones((4, 4, 4), dtype=np.float32)[box]  # noqa: E731
    with pytest.raises(ValueError, match=r"covered by no tile \(first \(0, 0, 4\)\)"):
        blend_region_3d((0, 0, 0), (4, 4, 6), origins=origins, tile_zyx=4, overlap_zyx=1, read_tile=read)
    with pytest.raises(ValueError, match=r"empty region"):
        blend_region_3d((0, 0, 2), (4, 4, 2), origins=origins, tile_zyx=4, overlap_zyx=1, read_tile=read)
    with pytest.raises(ValueError, match=r"read_tile\(0, box\) returned shape \(3, 3, 3\), expected \(4, 4, 4\)"):
        blend_region_3d((0, 0, 0), (4, 4, 4), origins=origins, tile_zyx=4, overlap_zyx=1,
                        read_tile=lambda i, box: np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match=r"2 tiles but 1 origins"):
        blend_tiles_3d(np.ones((2, 4, 4, 4)), origins, (4, 4, 4), overlap_zyx=1)


def test_release_pages_keeps_the_data_of_shared_maps_only(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 64, 64), dtype=np.float32))
    shared = np.load(tmp_path / "a.npy", mmap_mode="r+")
    shared[1] = 5.0
    assert release_pages(shared[1:])  # a view of a shared map: pages dropped, data kept
    assert float(shared[1].mean()) == 5.0 and float(shared[0].max()) == 0.0
    private = np.load(tmp_path / "a.npy", mmap_mode="c")
    private[2] = 7.0
    assert not release_pages(private)  # copy-on-write: releasing would lose the change
    assert float(private[2].mean()) == 7.0
    assert not release_pages(np.zeros(3))


# --- separable blending (issue 15): copies where one tile covers, lerps in overlaps ----------------
@pytest.mark.parametrize(("shape", "tile", "overlap"), [
    ((37, 50, 29), (16, 24, 12), (4, 6, 3)),
    ((20, 30, 40), (10, 10, 10), (6, 7, 8)),  # overlap > half the tile: three tiles meet
    ((21, 50, 33), (21, 10, 33), (0, 4, 0)),  # a CN-like slab grid: one tile in z and x
])
def test_separable_blend_is_exact_for_crops_and_the_weighted_mean_otherwise(shape, tile, overlap):
    rng = np.random.default_rng(11)
    volume = (rng.standard_normal(shape) * 3 + 7).astype(np.float32)
    origins = tile_origins_3d(shape, tile_zyx=tile, overlap_zyx=overlap)
    crops = np.stack([volume[z : z + tile[0], y : y + tile[1], x : x + tile[2]] for z, y, x in origins])
    np.testing.assert_array_equal(blend_tiles_3d(crops, origins, shape, overlap_zyx=overlap), volume)
    noisy = crops + rng.standard_normal(crops.shape).astype(np.float32)
    blended = blend_tiles_3d(noisy[::-1], origins[::-1], shape, overlap_zyx=overlap)  # any order
    reference = blend_region_3d((0, 0, 0), shape, origins=origins, tile_zyx=tile, overlap_zyx=overlap,
                                read_tile=lambda i, box: noisy[i][box])  # Σ w·tile / Σ w in float64
    np.testing.assert_allclose(blended, reference, rtol=0, atol=3 * np.spacing(np.float32(np.abs(reference).max())))
    constant = blend_tiles_3d(np.full(crops.shape, 2.5, np.float32), origins, shape, overlap_zyx=overlap)
    assert np.all(constant == np.float32(2.5))


def test_axis_grid_refuses_gaps_and_unordered_origins():
    from cryo_pipeline.ops.separable_blend import AxisGrid

    with pytest.raises(ValueError, match=r"leaves positions 10..11 uncovered"):
        AxisGrid(30, 10, 2, (0, 12, 20))
    with pytest.raises(ValueError, match="increase strictly"):
        AxisGrid(30, 10, 2, (0, 20, 8, 20))
    grid = AxisGrid.regular(37, tile=16, overlap=6)
    segments = grid.segments(0, 37)
    assert [(s.start, s.stop, s.tiles) for s in segments][:3] == [(0, 10, (0,)), (10, 16, (0, 1)), (16, 20, (1,))]
    assert sum(s.stop - s.start for s in segments) == 37
