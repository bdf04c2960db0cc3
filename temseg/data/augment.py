"""The 8 dihedral transforms of a square patch (the paper's augmentation).

The dihedral group D4 of the square: 4 rotations by multiples of 90 degrees, each with or
without a mirror. The paper expands every split by all 8 (216 patches -> 1728), so an
augmented epoch is deterministic. Works on numpy arrays and torch tensors alike (the trainer
applies it to whole batches), on the last two axes, without importing torch.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

N_DIHEDRAL = 8
A = TypeVar("A")


def _check_k(k: int) -> int:
    k = int(k)
    if not 0 <= k < N_DIHEDRAL:
        raise ValueError(f"dihedral index k must lie in 0..7, got {k}")
    return k


def dihedral(x: A, k: int) -> A:
    """Apply the k-th of the 8 dihedral transforms to the last two axes of ``x``.

    Parameters
    ----------
    x
        numpy array or torch tensor, at least 2-D, square in its last two axes for the
        transforms to keep its shape (any shape works; odd k swap the last two sides).
    k
        0..7: rotate by ``k % 4`` quarter turns (counter-clockwise, as ``np.rot90``), then,
        for k >= 4, mirror left-right. k = 0 is the identity.

    Returns
    -------
    Same type as ``x``; numpy results are views (copy with ``np.ascontiguousarray``).

    Notes
    -----
    T_k(x) = F^(k // 4) R^(k % 4) x with R a quarter turn and F the left-right mirror; the
    8 are distinct on any array without symmetry, and masks follow images when both get
    the same k. :func:`dihedral_inverse` undoes T_k.

    Examples
    --------
    >>> a = np.arange(4).reshape(2, 2)
    >>> dihedral(a, 1).tolist(), dihedral(a, 4).tolist()
    ([[1, 3], [0, 2]], [[1, 0], [3, 2]])
    """
    k = _check_k(k)
    if isinstance(x, np.ndarray):
        y = np.rot90(x, k % 4, axes=(-2, -1))
        return np.flip(y, axis=-1) if k >= 4 else y
    # torch.Tensor (duck-typed so this module needs no torch import)
    y = x.rot90(k % 4, dims=(-2, -1)) if k % 4 else x
    return y.flip(-1) if k >= 4 else y


def dihedral_inverse(x: A, k: int) -> A:
    """Undo :func:`dihedral` with the same k (mirror back, then rotate back)."""
    k = _check_k(k)
    if isinstance(x, np.ndarray):
        y = np.flip(x, axis=-1) if k >= 4 else x
        return np.rot90(y, -(k % 4), axes=(-2, -1))
    y = x.flip(-1) if k >= 4 else x
    return y.rot90(-(k % 4), dims=(-2, -1)) if k % 4 else y
