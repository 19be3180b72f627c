"""Aligning and Fourier-binning in one step: the binned image is centred as block averaging centres it."""

import numpy as np
import pytest

from cryo_pipeline.ops.aligned_binning import align_and_bin_image, binned_shape_yx
from cryo_pipeline.ops.binning import fourier_rescale_3d
from cryo_pipeline.ops.image_alignment import align_image, border_median, rotation_matrix_xy

H, W, F = 64, 48, 4


def _gaussian(shape_yx, centre_yx, sigma_px=4.0):
    y, x = np.indices(shape_yx, dtype=np.float64)
    return np.exp(-((y - centre_yx[0]) ** 2 + (x - centre_yx[1]) ** 2) / (2 * sigma_px**2)).astype(np.float32)


def _centroid(image):
    y, x = np.indices(image.shape)
    return np.array([(image * y).sum(), (image * x).sum()]) / image.sum()


def test_a_centred_spot_stays_at_the_binned_centre_where_plain_fourier_cropping_moves_it():
    image = _gaussian((H, W), ((H - 1) / 2, (W - 1) / 2))
    binned = align_and_bin_image(image, np.eye(2), (0.0, 0.0), out_shape_yx=(H // F, W // F), bin_factor=F, fill=0.0)
    centre = (np.array(binned.shape) - 1) / 2
    np.testing.assert_allclose(_centroid(binned), centre, atol=0.01)
    block_mean = image.reshape(H // F, F, W // F, F).mean(axis=(1, 3))
    np.testing.assert_allclose(_centroid(block_mean), centre, atol=1e-6)  # what block averaging does
    plain = fourier_rescale_3d(align_image(image, np.eye(2), (0.0, 0.0), out_shape_yx=(H, W), fill=0.0)[None],
                               shape_zyx_out=(1, H // F, W // F))[0]
    np.testing.assert_allclose(_centroid(plain), centre + (F - 1) / (2 * F), atol=0.01)  # 3/8 px off


def test_shifts_and_a_quarter_turn_move_the_spot_by_the_binned_amounts():
    image = _gaussian((H, W), ((H - 1) / 2 + 8.0, (W - 1) / 2 - 4.0))  # 8 px down (+y), 4 px left (-x)
    # out(a) = image(M a + s): s = (-4, 8) brings the spot to the centre
    binned = align_and_bin_image(image, np.eye(2), (-4.0, 8.0), out_shape_yx=(H // F, W // F), bin_factor=F,
                                 fill=0.0)
    np.testing.assert_allclose(_centroid(binned), (np.array(binned.shape) - 1) / 2, atol=0.01)
    turned = align_and_bin_image(image, rotation_matrix_xy(90.0), (0.0, 0.0), out_shape_yx=(W // F, H // F),
                                 bin_factor=F, fill=0.0)
    expected = np.rot90(align_and_bin_image(image, np.eye(2), (0.0, 0.0), out_shape_yx=(H // F, W // F),
                                            bin_factor=F, fill=0.0))
    np.testing.assert_allclose(turned, expected, atol=2e-3 * expected.max())


def test_a_constant_image_stays_that_constant_and_factor_one_is_plain_alignment():
    image = np.full((H, W), 7.5, dtype=np.float32)
    binned = align_and_bin_image(image, rotation_matrix_xy(30.0), (1.3, -2.2), out_shape_yx=(10, 10), bin_factor=3)
    np.testing.assert_allclose(binned, 7.5, rtol=1e-5)
    spot = _gaussian((H, W), (30.2, 20.7))
    np.testing.assert_array_equal(
        align_and_bin_image(spot, np.eye(2), (0.5, 0.0), out_shape_yx=(H, W), bin_factor=1),
        align_image(spot, np.eye(2), (0.5, 0.0), out_shape_yx=(H, W)))


def test_binned_shapes_and_bad_factors():
    assert binned_shape_yx((65, 48), 4) == (16, 12)
    with pytest.raises(ValueError, match="bin_factor must be >= 1"):
        binned_shape_yx((64, 64), 0)
    with pytest.raises(ValueError, match="keeps no pixel"):
        binned_shape_yx((3, 64), 4)


def test_border_median_ignores_an_object_on_less_than_half_the_border():
    image = np.full((40, 40), 100.0)
    image[:, 15:25] = 5000.0  # a rod crossing the field top to bottom: 20 of 156 border pixels
    assert border_median(image) == 100.0
    assert np.mean(np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])) > 700
