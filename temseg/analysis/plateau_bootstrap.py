"""Bootstrap intervals of a plateau fit (:mod:`temseg.analysis.plateau`) over seeds and test
images.

Seeds are resampled with replacement as whole units (one seed gives every architecture the
same data, batch order and initial state, so its trials belong together); where every trial
logged per-test-image pixel counts, each replicate also draws the test images
(:mod:`temseg.analysis.image_bootstrap`). Each replicate is refitted on the tau grid and the
2.5/97.5 percentiles give 95% intervals; fewer than ``MIN_SEEDS_INTERVAL`` seeds per RF give
none.
"""

from __future__ import annotations

import numpy as np

from temseg.analysis import image_bootstrap
from temseg.analysis.image_bootstrap import ImageCounts
from temseg.analysis.plateau_curve import ONSET_LOG, best_on_grid, tau_grid

MIN_SEEDS_INTERVAL = 3
CONFIDENCE = 0.95


def bootstrap_intervals(
    rf: np.ndarray,
    y: np.ndarray,
    seed_arr: np.ndarray,
    counts: ImageCounts | None,
    *,
    n_boot: int,
    rng: np.random.Generator | int | None,
) -> tuple[dict[str, tuple[float, float]], str, list[str]]:
    """Percentile intervals of plateau, gain, onset and mean dice over resampled seeds.

    Seeds are drawn with replacement as whole units (and the test images with them where
    ``counts`` is given); each replicate is refitted on the tau grid. Returns the (lo, hi)
    per quantity (NaN without an interval), what was resampled, and a note when the seeds
    are too few for an interval.
    """
    nan = float("nan")
    lo_hi = {k: (nan, nan) for k in ("plateau", "gain", "onset", "mean")}
    interval_over = ""
    notes = []
    x = np.log(rf)
    x0 = float(x.min())
    taus = tau_grid(float(x.max() - x.min()))
    per_rf = float(np.median(np.unique(rf, return_counts=True)[1]))
    n_seeds = len(np.unique(seed_arr))
    if n_boot > 0 and n_seeds >= MIN_SEEDS_INTERVAL and per_rf >= MIN_SEEDS_INTERVAL:
        gen = np.random.default_rng(rng)
        labels, seed_idx = np.unique(seed_arr, return_inverse=True)
        draws = gen.integers(0, len(labels), size=(n_boot, len(labels)))
        drawn = np.zeros((n_boot, len(labels)))
        np.add.at(drawn, (np.arange(n_boot)[:, None], draws), 1.0)
        weights = drawn[:, seed_idx]  # (B, n): times each trial's seed was drawn
        rf_levels, rf_idx = np.unique(rf, return_inverse=True)
        present = np.zeros((len(y), len(rf_levels)))
        present[np.arange(len(y)), rf_idx] = 1.0
        enough = ((weights @ present) > 0).sum(axis=1) >= 3
        b_y, interval_over = image_bootstrap.replicate_dice(y, counts, n_boot, gen)
        b_y = y if counts is None else b_y[enough]
        b_tau, b_plateau, b_gain = best_on_grid(x, b_y, x0, taus, weights[enough])
        b_onset = float(rf.min()) * np.exp(b_tau * ONSET_LOG)
        w = weights[enough]
        b_mean = (w @ y if counts is None else (w * b_y).sum(axis=1)) / w.sum(axis=1)
        q = [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2]
        resampled = (("plateau", b_plateau), ("gain", b_gain), ("onset", b_onset), ("mean", b_mean))
        for key, values in resampled:
            values = values[np.isfinite(values)]
            if len(values):
                lo_hi[key] = tuple(float(v) for v in np.percentile(values, q))
    elif n_boot > 0:
        notes.append(f"no interval: {per_rf:g} seed(s) per RF, needs {MIN_SEEDS_INTERVAL}")
    return lo_hi, interval_over, notes
