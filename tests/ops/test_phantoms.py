"""Phantoms: analytic volumes, determinism, placement, and seeded rotations."""

import numpy as np
import pytest
from scipy import ndimage

from cryo_pipeline.ops.phantoms import (
    PHANTOMS,
    hollow_sphere,
    make_phantom,
    mixed_shapes,
    random_rotation_matrix,
    rotated_map,
)
from cryo_pipeline.ops.prism_phantom import prism_rotation, prism_rotations, prism_stack, triangular_prism

SLAB = (32, 64, 64)


def _shell_volume(outer_diameter, thickness):
    r_out = outer_diameter / 2
    return 4 / 3 * np.pi * (r_out**3 - (r_out - thickness) ** 3)


@pytest.mark.parametrize(("n", "diameter", "thickness"), [(140, 70.0, 4.0), (64, 32.0, 2.0)])
def test_hollow_sphere_voxel_count_matches_shell_volume(n, diameter, thickness):
    sphere = hollow_sphere((n, n, n), outer_diameter_px=diameter, thickness_px=thickness)
    assert sphere.sum() == pytest.approx(_shell_volume(diameter, thickness), rel=0.02)
    assert set(np.unique(sphere)) == {0.0, 1.0}


def test_hollow_sphere_is_centred_and_hollow():
    sphere = hollow_sphere()
    for axis in range(3):  # centre (n-1)/2: symmetric under every flip
        np.testing.assert_array_equal(sphere, np.flip(sphere, axis))
    # 30 < r <= 35 about 69.5: index 70 + 34 is r = 34.5 (shell), 70 + 29 is 29.5 and 70 + 35 is 35.5 (outside)
    assert sphere[70, 70, 70] == 0.0 and sphere[70, 70, 70 + 34] == 1.0 and sphere[70, 70, 70 + 30] == 1.0
    assert sphere[70, 70, 70 + 29] == 0.0 and sphere[70, 70, 70 + 35] == 0.0


def test_hollow_sphere_rejects_shell_thicker_than_radius():
    with pytest.raises(ValueError, match="40"):
        hollow_sphere((64, 64, 64), outer_diameter_px=30.0, thickness_px=40.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prism_volume_is_triangle_area_times_thickness(seed):
    # side 40 in 96^3 stays inside the box under any rotation (circumradius 23 + half-thickness 10 < 48)
    prism = triangular_prism(side_px=40.0, rotation=prism_rotation(seed))
    assert prism.sum() == pytest.approx(np.sqrt(3) / 4 * 40.0**2 * 20.0, rel=0.01)


def test_unrotated_prism_is_a_plate_extruded_along_z():
    prism = triangular_prism(side_px=48.0)
    occupied_z = np.flatnonzero(prism.any(axis=(1, 2)))
    assert occupied_z.size == 20  # thickness 20 about the centre 47.5
    cross_sections = prism[occupied_z]
    assert np.all(cross_sections == cross_sections[:1])  # constant along z
    # equilateral triangle of side 48 in (y, x): height 48·√3/2 along y, base 48 along x
    assert np.flatnonzero(prism.any(axis=(0, 2))).size == pytest.approx(48 * np.sqrt(3) / 2, abs=1.5)
    assert np.flatnonzero(prism.any(axis=(0, 1))).size == pytest.approx(48, abs=1.5)


def test_prism_rotation_is_seeded_proper_and_keeps_the_normal_in_its_cap():
    np.testing.assert_array_equal(prism_rotation(5), prism_rotation(5))
    assert not np.array_equal(prism_rotation(5), prism_rotation(6))
    mats = np.array([prism_rotation(seed, max_tilt_deg=65.0) for seed in range(500)])
    np.testing.assert_allclose(mats @ mats.transpose(0, 2, 1), np.broadcast_to(np.eye(3), mats.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-12)
    tilt_deg = np.degrees(np.arccos(np.clip(mats[:, 0, 0], -1, 1)))  # angle of R·z from z
    assert tilt_deg.max() <= 65.0 + 1e-9 and tilt_deg.max() > 60.0
    # uniform on the cap: cos(tilt) uniform in [cos 65°, 1], mean (1 + cos 65°)/2
    assert np.cos(np.radians(tilt_deg)).mean() == pytest.approx((1 + np.cos(np.radians(65.0))) / 2, abs=0.03)
    with pytest.raises(ValueError, match="max_tilt_deg"):
        prism_rotation(0, max_tilt_deg=200.0)


def test_prism_stack_holds_the_ten_rotations_side_by_side_along_y():
    copies = prism_rotations(32, seeds=range(10, 20))
    stack = prism_stack(32, seed=1)
    assert stack.shape == (32, 320, 32)
    for i, copy in enumerate(copies):
        np.testing.assert_array_equal(stack[:, 32 * i:32 * (i + 1)], copy)
    assert len({c.tobytes() for c in copies}) == 10  # ten different orientations


def test_random_rotation_is_proper_and_uniform():
    mats = np.array([random_rotation_matrix(seed) for seed in range(2000)])
    np.testing.assert_allclose(mats @ mats.transpose(0, 2, 1), np.broadcast_to(np.eye(3), mats.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-12)
    # Haar measure on SO(3): E[R] = 0, E[R_ij²] = 1/3 (entry std ≈ 0.013 over 2000 draws)
    assert np.abs(mats.mean(axis=0)).max() < 0.06
    np.testing.assert_allclose((mats**2).mean(axis=0), 1 / 3, atol=0.03)


def test_rotated_map_moves_mass_by_the_seeded_rotation():
    shape = (48, 48, 48)
    blob_at = np.array([30.0, 20.0, 26.0])
    grid = np.indices(shape).astype(np.float64)
    blob = np.exp(-np.sum((grid - blob_at[:, None, None, None]) ** 2, axis=0) / (2 * 2.0**2))
    rotated = rotated_map(blob, seed=11)
    centre = (np.array(shape) - 1) / 2
    expected = random_rotation_matrix(11) @ (blob_at - centre) + centre
    assert rotated.dtype == np.float32
    assert rotated.sum() == pytest.approx(blob.sum(), rel=0.01)
    np.testing.assert_allclose(ndimage.center_of_mass(rotated), expected, atol=0.05)


def test_mixed_shapes_range_fill_and_placement():
    vol = mixed_shapes(SLAB, seed=0)
    assert vol.shape == SLAB and vol.dtype == np.float32
    assert vol.min() >= 0.0 and vol.max() <= 1.0
    assert vol.max() == 1.0 and 0.02 < (vol > 0.5).mean() < 0.4
    for axis in range(3):  # every object (with its low-pass tail) lies inside
        faces = np.take(vol, [0, -1], axis=axis)
        assert faces.max() < 1e-3
    _, n_objects = ndimage.label(vol > 0.5)
    assert n_objects >= 3


def test_mixed_shapes_binary_without_lowpass_and_seeded():
    binary = mixed_shapes(SLAB, seed=3, lowpass_sigma_px=0.0)
    assert set(np.unique(binary)) == {0.0, 1.0}
    np.testing.assert_array_equal(mixed_shapes(SLAB, seed=3), mixed_shapes(SLAB, seed=3))
    assert not np.array_equal(mixed_shapes(SLAB, seed=3), mixed_shapes(SLAB, seed=4))


def test_mixed_shapes_object_count_controls_fill():
    few = (mixed_shapes(SLAB, n_objects=2, seed=1, lowpass_sigma_px=0.0) > 0).sum()
    many = (mixed_shapes(SLAB, n_objects=12, seed=1, lowpass_sigma_px=0.0) > 0).sum()
    assert 0 < few < many
    assert not mixed_shapes(SLAB, n_objects=0).any()


def test_mixed_shapes_rejects_a_volume_too_small():
    with pytest.raises(ValueError, match=r"\(6, 64, 64\)"):
        mixed_shapes((6, 64, 64), size_range_px=(8, 24))


def test_make_phantom_defaults_and_scaling():
    assert make_phantom("triangular_prism", shape_zyx=(32, 32, 32)).shape == (32, 320, 32)
    np.testing.assert_array_equal(make_phantom("triangular_prism", shape_zyx=(32, 32, 32), seed=2),
                                  prism_stack(32, seed=2))
    np.testing.assert_array_equal(
        make_phantom("hollow_sphere", shape_zyx=(70, 70, 70)),
        hollow_sphere((70, 70, 70), outer_diameter_px=35.0, thickness_px=2.5),
    )
    np.testing.assert_array_equal(make_phantom("hollow_sphere"), hollow_sphere())
    assert set(PHANTOMS) == {"hollow_sphere", "triangular_prism", "mixed_shapes"}


def test_make_phantom_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="hollow_sphere, mixed_shapes, triangular_prism"):
        make_phantom("cube")


def test_mixed_shapes_draws_each_kind_as_a_separate_object():
    # one object per kind (8 kinds) in a roomy slab: eight disjoint connected components
    vol = mixed_shapes((64, 128, 128), n_objects=8, seed=0)
    labels, n_components = ndimage.label(vol > 0.5)
    assert n_components == 8
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.min() >= 20  # even the thinnest (a cross of 1–3 px bars) survives the low-pass
