"""The CryoGEN paper's prism data set (A.7.2), calibrated to its Table 1 "Corrupted" row.

A.7.2: "A prism with a thickness of 20 pixels is placed inside a 96 × 96 × 96 volume.
It is randomly rotated in ten directions." The paper gives neither the triangle's size
nor the distribution of the rotations; its corrupted scores (14.82 dB / SSIM 0.6931
after a ±60° Fourier wedge) pin both down: a plate filling ~7.5 % of the box with ~47 %
of its variance in the wedge. Uniform rotations on SO(3) leave ~1/3 there (SSIM ~0.84),
so the plates here lie roughly flat: triangle side 88, normals uniform within 65° of the
beam axis z. Seeds 0–9 give 15.25 dB / 0.694 (``tests/ops/test_metrics.py``).
"""

from __future__ import annotations

import numpy as np

from cryo_pipeline.ops.phantoms import Shape3, _centred_coords, _check_shape

def _triangle_inside(u: np.ndarray, v: np.ndarray, side: float) -> np.ndarray:
    """Equilateral triangle of side ``side`` centred on its centroid, one vertex at +u."""
    inradius = side / (2.0 * np.sqrt(3.0))
    inside = np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for phi in np.radians([180.0, 60.0, 300.0]):  # outward edge normals
        inside &= u * np.cos(phi) + v * np.sin(phi) <= inradius
    return inside


PRISM_MAX_TILT_DEG = 65.0
"""Largest angle between a calibrated prism's plate normal and the beam axis z."""


def prism_rotation(seed: int, *, max_tilt_deg: float = PRISM_MAX_TILT_DEG) -> np.ndarray:
    """A seeded rotation for the calibrated prism: a random in-plane turn, then a tilt.

    The unrotated prism is a plate whose normal is z (:func:`triangular_prism`). The
    rotation turns it about z by a uniform angle, then tilts its normal towards a
    uniform azimuth so that the normal is uniform on the spherical cap within
    ``max_tilt_deg`` of z. The paper (A.7.2) says only "randomly rotated in ten
    directions"; uniform rotations on SO(3) leave ~1/3 of a plate's variance in a ±60°
    wedge (SSIM ~0.84 corrupted), while its Table 1 (14.82 dB / 0.6931) implies ~47 %:
    plates lying roughly flat, normals within 65° of the beam, reproduce it.

    Returns
    -------
    numpy.ndarray
        ``(3, 3)`` float64 proper rotation acting on (z, y, x) column vectors.
    """
    if not 0.0 <= max_tilt_deg <= 180.0:
        raise ValueError(f"max_tilt_deg ({max_tilt_deg}) must be in [0, 180]")
    rng = np.random.default_rng(seed)
    turn, azimuth = rng.uniform(0.0, 2.0 * np.pi, size=2)
    tilt = np.arccos(rng.uniform(np.cos(np.radians(max_tilt_deg)), 1.0))
    c, s = np.cos(turn), np.sin(turn)
    in_plane = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    k = np.array([0.0, np.cos(azimuth), np.sin(azimuth)])  # tilt axis in the (y, x) plane
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    tilt_matrix = np.eye(3) + np.sin(tilt) * cross + (1.0 - np.cos(tilt)) * cross @ cross
    return tilt_matrix @ in_plane


def triangular_prism(
    shape_zyx: Shape3 = (96, 96, 96),
    *,
    side_px: float = 88.0,
    thickness_px: float = 20.0,
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Centred binary prism with an equilateral triangular cross-section (CryoGEN A.7.2).

    Unrotated, the triangle (side ``side_px``, one vertex towards +y) lies in the (y, x)
    plane and is extruded over ``thickness_px`` along z: a plate lying flat. ``rotation``
    (e.g. :func:`prism_rotation`) then turns it about the volume centre; parts rotated
    out of the box are cut off. The defaults (side 88 in 96³, ~7.6 % of the box) are
    calibrated with :func:`prism_rotations` to the paper's Table 1.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 in {0, 1}.
    """
    shape = _check_shape(shape_zyx)
    if side_px <= 0 or thickness_px <= 0:
        raise ValueError(f"side_px ({side_px}) and thickness_px ({thickness_px}) must be > 0")
    p = np.stack(np.broadcast_arrays(*_centred_coords(shape)), axis=-1)  # (d, h, w, 3)
    if rotation is not None:
        p = p @ np.asarray(rotation, dtype=np.float64)  # body coordinates Rᵀ p
    inside = _triangle_inside(p[..., 1], p[..., 2], side_px) & (np.abs(p[..., 0]) <= thickness_px / 2.0)
    return inside.astype(np.float32)


PRISM_COPIES = 10


def prism_rotations(box_px: int = 96, *, seeds=range(PRISM_COPIES)) -> list[np.ndarray]:
    """The paper's prism data set (A.7.2): one ``box_px``³ prism per seed of :func:`prism_rotation`.

    Side 88 and thickness 20 at 96³, scaled by ``box_px``/96. With the ten seeds 0–9 a
    ±60° Fourier wedge gives, averaged over the copies, 14.8 ± 1 dB / 0.69 ± 0.03 in the
    paper's metrics (its Table 1 "Corrupted": 14.82 dB / 0.6931; ``tests/ops/test_metrics.py``).
    """
    scale = box_px / 96.0
    return [triangular_prism((box_px,) * 3, side_px=88.0 * scale, thickness_px=20.0 * scale,
                             rotation=prism_rotation(int(seed))) for seed in seeds]


def prism_stack(box_px: int = 96, *, seed: int = 0) -> np.ndarray:
    """The ten rotated prisms of :func:`prism_rotations` side by side along y: ``(n, 10·n, n)``.

    Copy i (seed ``10·seed + i``) occupies rows ``i·n … (i+1)·n − 1``. y is the tilt
    axis: a Fourier wedge (constant along k_y) or a tilt series acts on each y-row on its
    own, so corrupting the stack corrupts every copy exactly as on its own.
    """
    seeds = range(PRISM_COPIES * seed, PRISM_COPIES * (seed + 1))
    return np.concatenate(prism_rotations(box_px, seeds=seeds), axis=1)
