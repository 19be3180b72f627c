"""The 24 proper rotations of the cube, and the 20 that move the missing wedge.

Each rotation is a 3×3 signed permutation matrix ``R`` (integer entries, det +1)
acting on ``(z, y, x)`` index coordinates about the volume centre. Convention, for
a volume of shape ``n = (d, h, w)`` with centre ``c = (n − 1)/2``::

    out[R · (p − c_in) + c_out] = in[p]        for every index p,

where the output shape is ``n_out[i] = n[j]`` for the one ``j`` with
``R[i, j] ≠ 0`` and ``c_out = (n_out − 1)/2``. For cubes ``c_out = c_in`` and the
formula is the textbook rotation about the centre; non-cubic volumes have their
shape permuted. Because ``R`` only permutes and negates axes, a rotation is exactly
one ``transpose``/``permute`` followed by ``flip`` (no interpolation, exact for any
dtype): output axis ``i`` is input axis ``j``, reversed when ``R[i, j] = −1``.

The same matrix maps Fourier coordinates (frequency index about DC) the same way,
so it rotates a spectrum, and hence the missing wedge, by ``R``.

The wedge (DESIGN.md §1) is constant along k_y and, for a symmetric tilt range,
symmetric under k_z → −k_z and k_x → −k_x; so the 4 diagonal rotations (identity
and the 180° turns about z, y and x) map it onto itself. ``WEDGE_ROTATIONS`` holds
the other 20 (IsoNet's list): 16 move the beam axis z onto y or x, and 4 keep z but
swap y and x. All functions accept numpy arrays or torch tensors and act on the last
three axes, so batches ``(b, c, d, h, w)`` work; torch results stay differentiable.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _build_cube_rotations() -> tuple[np.ndarray, ...]:
    """All signed 3×3 permutation matrices with det +1, identity first.

    Order: permutations in lexicographic order, then sign patterns in
    lexicographic order of (+1, −1); deterministic, so indices are stable.
    """
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=np.int64)
            for i, (j, s) in enumerate(zip(perm, signs)):
                m[i, j] = s
            if round(np.linalg.det(m)) == 1:
                m.setflags(write=False)
                mats.append(m)
    return tuple(mats)


CUBE_ROTATIONS: tuple[np.ndarray, ...] = _build_cube_rotations()
"""The 24 proper rotations of the cube as read-only ``(3, 3)`` int64 matrices."""

WEDGE_ROTATIONS: tuple[np.ndarray, ...] = tuple(
    m for m in CUBE_ROTATIONS if np.count_nonzero(m - np.diag(np.diag(m))) > 0
)
"""The 20 cube rotations that are not diagonal (i.e. all but identity and the 180°
turns about z, y, x): the ones that move a symmetric missing wedge."""


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix)
    if m.shape != (3, 3):
        raise ValueError(f"rotation matrix must have shape (3, 3), got {m.shape}")
    mi = np.rint(m).astype(np.int64)
    if not np.array_equal(mi, m):
        raise ValueError(f"rotation matrix must have integer entries, got\n{m}")
    is_signed_perm = (
        np.all(np.isin(mi, (-1, 0, 1)))
        and np.all(np.count_nonzero(mi, axis=0) == 1)
        and np.all(np.count_nonzero(mi, axis=1) == 1)
    )
    if not is_signed_perm:
        raise ValueError(f"rotation matrix must be a signed permutation matrix, got\n{m}")
    if round(np.linalg.det(mi)) != 1:
        raise ValueError(f"rotation matrix must have det +1 (a proper rotation), got\n{m}")
    return mi


def apply_rotation_matrix(volume: ArrayT, matrix: np.ndarray) -> ArrayT:
    """Rotate the last three axes of a volume by a cube rotation, exactly.

    Parameters
    ----------
    volume : numpy.ndarray or torch.Tensor
        ``(..., d, h, w)``; any dtype, any leading (batch/channel) axes.
    matrix : numpy.ndarray
        ``(3, 3)`` signed permutation matrix with det +1 (any of ``CUBE_ROTATIONS``).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type and dtype as ``volume``, shape ``(..., n_out)`` with the last three
        axes permuted as described in the module docstring, and
        ``out[..., R(p − c_in) + c_out] = volume[..., p]``. numpy results are
        C-contiguous copies; torch results are contiguous and keep the autograd graph.
    """
    m = _check_matrix(matrix)
    if volume.ndim < 3:
        raise ValueError(f"volume must have >= 3 dimensions (..., d, h, w), got shape {tuple(volume.shape)}")
    lead = volume.ndim - 3
    src = np.argmax(np.abs(m), axis=1)  # output axis i reads input axis src[i]
    axes = list(range(lead)) + [lead + int(j) for j in src]
    flip_axes = [lead + i for i in range(3) if m[i, src[i]] < 0]
    if isinstance(volume, torch.Tensor):
        out = volume.permute(*axes)
        if flip_axes:
            out = torch.flip(out, dims=flip_axes)
        return out.contiguous()
    arr = np.transpose(np.asarray(volume), axes)
    if flip_axes:
        arr = np.flip(arr, axis=flip_axes)
    return np.ascontiguousarray(arr)


def _check_index(rotation_index: int) -> int:
    n = len(WEDGE_ROTATIONS)
    if isinstance(rotation_index, bool) or not isinstance(rotation_index, (int, np.integer)):
        raise TypeError(f"rotation_index must be an int, got {type(rotation_index).__name__}")
    if not 0 <= rotation_index < n:
        raise ValueError(f"rotation_index {rotation_index} is out of range: need 0 <= index < {n}")
    return int(rotation_index)


def inverse_rotation_index(rotation_index: int) -> int:
    """Index in ``WEDGE_ROTATIONS`` of the inverse (the transpose) of rotation ``i``.

    Parameters
    ----------
    rotation_index : int
        ``0 <= rotation_index < 20``.

    Returns
    -------
    int
        ``j`` with ``WEDGE_ROTATIONS[j] @ WEDGE_ROTATIONS[i] == I``.
    """
    return _INVERSE_INDEX[_check_index(rotation_index)]


def _find_index(matrix: np.ndarray) -> int:
    for j, m in enumerate(WEDGE_ROTATIONS):
        if np.array_equal(m, matrix):
            return j
    raise AssertionError("WEDGE_ROTATIONS is not closed under inversion")  # pragma: no cover


_INVERSE_INDEX: tuple[int, ...] = tuple(_find_index(m.T) for m in WEDGE_ROTATIONS)


def rotate_volume(volume: ArrayT, rotation_index: int, *, inverse: bool = False) -> ArrayT:
    """Apply one of the 20 wedge-moving rotations (or its inverse) to a volume.

    Parameters
    ----------
    volume : numpy.ndarray or torch.Tensor
        ``(..., d, h, w)``.
    rotation_index : int
        ``0 <= rotation_index < 20``, an index into ``WEDGE_ROTATIONS``.
    inverse : bool
        Apply ``R⁻¹ = Rᵀ`` instead of ``R``, so
        ``rotate_volume(rotate_volume(v, i), i, inverse=True)`` equals ``v`` exactly.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Rotated volume, same type and dtype; see :func:`apply_rotation_matrix`.
    """
    m = WEDGE_ROTATIONS[_check_index(rotation_index)]
    return apply_rotation_matrix(volume, m.T if inverse else m)
