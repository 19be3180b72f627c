"""Gaussian noise at a requested variance SNR."""

import numpy as np
import pytest

from cryo_pipeline.ops.noise import add_gaussian_noise


@pytest.fixture(scope="module")
def signal():
    z, y, x = np.indices((32, 32, 32))
    return np.sin(z / 3.0) * np.cos(x / 5.0) + 0.1 * y


@pytest.mark.parametrize("snr", [0.1, 1.0, 10.0])
def test_measured_snr_matches_request(signal, snr):
    noise = add_gaussian_noise(signal, snr=snr, seed=0).astype(np.float64) - signal
    assert signal.var() / noise.var() == pytest.approx(snr, rel=0.05)
    assert abs(noise.mean()) < 5 * noise.std() / np.sqrt(noise.size)


def test_no_noise_returns_a_float32_copy(signal):
    for snr in (None, np.inf):
        out = add_gaussian_noise(signal, snr=snr, seed=0)
        assert out.dtype == np.float32 and out is not signal
        np.testing.assert_array_equal(out, signal.astype(np.float32))


def test_noise_is_seeded(signal):
    a = add_gaussian_noise(signal, snr=1.0, seed=4)
    np.testing.assert_array_equal(a, add_gaussian_noise(signal, snr=1.0, seed=4))
    assert not np.array_equal(a, add_gaussian_noise(signal, snr=1.0, seed=5))


@pytest.mark.parametrize("snr", [0.0, -2.0, np.nan])
def test_non_positive_snr_is_rejected(signal, snr):
    with pytest.raises(ValueError, match=f"snr \\({snr}\\)"):
        add_gaussian_noise(signal, snr=snr, seed=0)


def test_constant_signal_with_finite_snr_is_rejected():
    with pytest.raises(ValueError, match="constant"):
        add_gaussian_noise(np.ones((4, 4, 4)), snr=2.0, seed=0)
