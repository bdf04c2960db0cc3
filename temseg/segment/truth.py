"""Segmented sizes against true ones (``--truth``), each difference with a 95 % interval.

Three numbers over the particles not touching the border: the D50 bias
``D50(segmented) - D50(true)`` (number-weighted, :mod:`temseg.segment.sizes`), the
Kolmogorov-Smirnov distance ``sup_x |F_seg(x) - F_true(x)|`` of the two empirical
distributions of equivalent-circle diameters, and the count error ``n_seg - n_true``
(also in % of ``n_true``).

Intervals: a spatial block bootstrap. Each image is cut into :data:`BLOCKS` x :data:`BLOCKS`
blocks and every particle (segmented or true) goes to the block of its centroid; a replicate
draws blocks with replacement (as many as there are) and compares the segmented and true
particles of the drawn blocks. Drawing blocks, not particles, keeps each segmented particle
with its true counterpart and gives the count error an interval at all.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from temseg.segment.sizes import DEFAULT_BOOT, LEVEL

BLOCKS = 4
TRUTH_INTERVAL_COLUMNS = [
    f"{n}{s}" for n in ("d50_bias_nm", "ks", "count_error_pct") for s in ("", "_lo", "_hi")
]


def d50(d: np.ndarray) -> float:
    """Number-weighted D50, the inverted empirical CDF at 0.5 (NaN when empty)."""
    return float(np.quantile(d, 0.5, method="inverted_cdf")) if len(d) else math.nan


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``sup |F_a - F_b|`` of two samples' empirical CDFs (scipy's ``ks_2samp`` statistic).

    >>> round(ks_distance(np.array([1.0, 2, 3]), np.array([2.0, 3, 4])), 6)
    0.333333
    """
    if not len(a) or not len(b):
        return math.nan
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / a.size
    fb = np.searchsorted(b, x, side="right") / b.size
    return float(np.abs(fa - fb).max())


def block_ids(table: pd.DataFrame, width_nm: float, height_nm: float, offset: int) -> np.ndarray:
    """Block of each particle's centroid, numbered from ``offset`` (one image's blocks)."""
    bx = np.clip((table["centroid_x_nm"] / width_nm * BLOCKS).astype(int), 0, BLOCKS - 1)
    by = np.clip((table["centroid_y_nm"] / height_nm * BLOCKS).astype(int), 0, BLOCKS - 1)
    return offset + (by * BLOCKS + bx).to_numpy()


def _compare(d: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    pct = 100.0 * (len(d) - len(t)) / len(t) if len(t) else math.nan
    return d50(d) - d50(t), ks_distance(d, t), pct


def compare_sizes(
    seg: tuple[np.ndarray, np.ndarray],
    true: tuple[np.ndarray, np.ndarray],
    n_blocks: int,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> dict[str, float]:
    """D50 bias, KS distance and count error in % (:data:`TRUTH_INTERVAL_COLUMNS`).

    ``seg`` and ``true`` are ``(diameters_nm, block_ids)`` of the interior particles;
    ``n_blocks`` the number of blocks over all images.
    """
    (d, bd), (t, bt) = seg, true
    point = _compare(d, t)
    rng = np.random.default_rng(seed)
    by_d = [d[bd == k] for k in range(n_blocks)]
    by_t = [t[bt == k] for k in range(n_blocks)]
    reps = []
    for _ in range(n_boot):
        pick = rng.integers(0, n_blocks, n_blocks)
        reps.append(
            _compare(
                np.concatenate([by_d[k] for k in pick]), np.concatenate([by_t[k] for k in pick])
            )
        )
    reps = np.asarray(reps)
    tail = 100 * (1 - LEVEL) / 2
    out = {}
    for j, name in enumerate(("d50_bias_nm", "ks", "count_error_pct")):
        ok = reps[:, j][np.isfinite(reps[:, j])]
        lo, hi = np.percentile(ok, [tail, 100 - tail]) if ok.size else (math.nan, math.nan)
        out.update({name: point[j], f"{name}_lo": float(lo), f"{name}_hi": float(hi)})
    return out
