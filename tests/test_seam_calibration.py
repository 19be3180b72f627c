"""bench seam_calibration: the known corruption it injects and how it counts a reading right."""

import numpy as np
import pytest

from bench.seam_calibration import TOLERANCE, called_right, readings, summarise, with_gain_seams
from cryo_pipeline.ops.slabs import row_step_means, seam_ratio


def _ramp(shape=(4, 24, 6)):
    """Density rising by 1 per row: every row step is 1, so any seam reading of it is exactly 1."""
    return np.broadcast_to(np.arange(1.0, shape[1] + 1.0)[None, :, None], shape).copy()


def test_gain_seams_scale_alternate_slabs_and_leave_the_rows_inside_a_slab_as_they_were():
    ramp = _ramp()
    seamed = with_gain_seams(ramp, [8, 16], 0.1)
    np.testing.assert_allclose(seamed[:, :8], 1.1 * ramp[:, :8])
    np.testing.assert_allclose(seamed[:, 8:16], 0.9 * ramp[:, 8:16])
    np.testing.assert_allclose(seamed[:, 16:], 1.1 * ramp[:, 16:])
    # at y = 8 the step is 0.9 * 9 - 1.1 * 8 = -0.7 instead of +1
    assert abs(seamed[0, 8, 0] - seamed[0, 7, 0]) == pytest.approx(0.7)


def test_a_seamless_ramp_reads_one_and_gain_seams_read_above_the_tolerance():
    ramp = _ramp()
    assert seam_ratio(row_step_means(ramp), [8, 16]) == pytest.approx(1.0)
    seamed = with_gain_seams(ramp, [8, 16], 0.2)
    # seam steps |0.8*9 - 1.2*8| = 2.4 and |1.2*17 - 0.8*16| = 7.6, interior steps 1.2 or 0.8
    assert seam_ratio(row_step_means(seamed), [8, 16]) > 1.0 + TOLERANCE
    reading = readings(seamed, ramp, [8, 16])
    assert reading["seam_over_gt"] > 1.0 + TOLERANCE
    assert reading["error_seam_ratio"] > 1.0 + TOLERANCE
    assert readings(ramp, ramp, [8, 16])["seam_over_gt"] == pytest.approx(1.0)


def test_a_reading_is_right_when_seamless_reads_inside_and_seamed_reads_above():
    assert called_right(1.0 + TOLERANCE / 2, seamed=False)
    assert not called_right(1.0 - 2 * TOLERANCE, seamed=False)
    assert called_right(1.0 + 2 * TOLERANCE, seamed=True)
    assert not called_right(1.0 - 2 * TOLERANCE, seamed=True)  # outside, but on the wrong side
    assert not called_right(float("nan"), seamed=False)


def test_the_summary_counts_right_calls_per_volume_over_seeds():
    rows = [dict(case="c", seed=s, volume=v, seamed=seamed, seam_over_gt=value, error_seam_ratio=1.0)
            for s, (a, b) in enumerate(((1.01, 1.3), (0.7, 1.02), (1.04, 1.2)))
            for v, seamed, value in (("wbp", False, a), ("wbp, seams", True, b))]
    table = {r["volume"]: r for r in summarise(rows)}
    assert table["wbp"]["seam_over_gt_right"] == "2/3"
    assert table["wbp, seams"]["seam_over_gt_right"] == "2/3"
    assert table["wbp"]["error_seam_ratio_right"] == "3/3"
    assert table["wbp, seams"]["error_seam_ratio_right"] == "0/3"
    assert table["wbp"]["seamed"] == "no" and table["wbp, seams"]["seamed"] == "yes"
