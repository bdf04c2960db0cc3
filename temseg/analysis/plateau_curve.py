"""The dice-vs-RF curve of :mod:`temseg.analysis.plateau`: the model, its exact fit, seed noise.

d(RF) = plateau - gain * exp(-(x - x0) / tau), x = ln(RF), x0 = ln(RF_min): for fixed tau the
model is linear in (plateau, gain), so least squares is solved in closed form for every tau of
a log grid over [span / 50, span] (span = ln(RF_max / RF_min)) and the best tau is refined
between its grid neighbours (variable projection). The onset, where 95% of the gain is
reached, is RF_min * 20 ** tau. The seed noise treats seeds as paired blocks (an additive
RF + seed model). Why this model, and how the fits become verdicts: the docstring of
:mod:`temseg.analysis.plateau`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

ONSET_FRACTION = 0.95
TAU_MIN_FRACTION = 1 / 50  # of the log-RF span
TAU_MAX_FRACTION = 1.0
TAU_GRID_SIZE = 121

ONSET_LOG = math.log(1.0 / (1.0 - ONSET_FRACTION))  # ln 20


def onset_from_tau(rf_min_px: float, tau: float) -> float:
    """RF where 95% of the gain is reached: ``rf_min_px * 20 ** tau``.

    >>> round(onset_from_tau(44, 1.0), 6)
    880.0
    """
    return rf_min_px * math.exp(tau * ONSET_LOG)


def profile(
    x: np.ndarray, y: np.ndarray, x0: float, taus: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form weighted least squares of y = plateau - gain * e(tau) for every tau.

    x: (n,); y: (n,), or (B, n) for one set of values per weighting (a bootstrap over test
    images); taus: (T,); weights: (B, n). Returns SSE, plateau, gain, each (B, T); SSE is
    NaN where the basis has no spread under the weights.
    """
    e = np.exp(-(x[None, :] - x0) / taus[:, None])  # (T, n)
    sw = weights.sum(axis=1)[:, None]  # (B, 1)
    if y.ndim == 1:
        my = (weights @ y)[:, None] / sw
        vy = (weights @ (y * y))[:, None] / sw - my**2
        cov_sum = weights @ (e * y[None, :]).T
    else:
        wy = weights * y
        my = wy.sum(axis=1)[:, None] / sw
        vy = (wy * y).sum(axis=1)[:, None] / sw - my**2
        cov_sum = wy @ e.T
    me = weights @ e.T / sw  # (B, T)
    ve = weights @ (e * e).T / sw - me**2
    cov = cov_sum / sw - me * my
    ok = ve > 1e-12
    safe_ve = np.where(ok, ve, 1.0)
    slope = cov / safe_ve  # y = a + slope * e -> gain = -slope
    sse = np.where(ok, sw * np.maximum(vy - cov * cov / safe_ve, 0.0), np.nan)
    plateau = my - slope * me
    return sse, plateau, -slope


def tau_grid(span: float) -> np.ndarray:
    return np.geomspace(span * TAU_MIN_FRACTION, span * TAU_MAX_FRACTION, TAU_GRID_SIZE)


def best_on_grid(
    x: np.ndarray, y: np.ndarray, x0: float, taus: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sse, plateau, gain = profile(x, y, x0, taus, weights)
    valid = np.isfinite(sse).any(axis=1)
    idx = np.where(valid, np.nanargmin(np.where(np.isfinite(sse), sse, np.inf), axis=1), 0)
    rows = np.arange(len(weights))
    nan = np.full(len(weights), np.nan)
    return (
        np.where(valid, taus[idx], nan),
        np.where(valid, plateau[rows, idx], nan),
        np.where(valid, gain[rows, idx], nan),
    )


def refine_tau(x: np.ndarray, y: np.ndarray, x0: float, taus: np.ndarray, tau: float) -> float:
    """Refine the grid optimum of tau between its grid neighbours (bounded scalar search)."""
    i = int(np.searchsorted(taus, tau))
    lo, hi = math.log(taus[max(i - 1, 0)]), math.log(taus[min(i + 1, len(taus) - 1)])
    if hi <= lo:
        return tau
    ones = np.ones((1, len(x)))

    def sse(log_tau: float) -> float:
        value = profile(x, y, x0, np.array([math.exp(log_tau)]), ones)[0][0, 0]
        return float(value) if np.isfinite(value) else math.inf

    res = optimize.minimize_scalar(sse, bounds=(lo, hi), method="bounded")
    return math.exp(res.x) if res.fun <= sse(math.log(tau)) else tau


def fit_curve(rf: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares plateau, gain, tau and SSE of the model for one group of trials.

    The best tau of the grid over the log-RF span, refined between its neighbours; every
    trial weighs 1.

    >>> rf = np.array([44.0, 120.0, 232.0, 392.0])
    >>> [round(v, 3) for v in fit_curve(rf, 0.8 - 0.1 * (rf / 44) ** -2.0)[:3]]
    [0.8, 0.1, 0.5]
    """
    x = np.log(rf)
    x0, span = float(x.min()), float(x.max() - x.min())
    taus = tau_grid(span)
    ones = np.ones((1, len(y)))
    tau0 = float(best_on_grid(x, y, x0, taus, ones)[0][0])
    tau = refine_tau(x, y, x0, taus, tau0)
    sse, plateau, gain = profile(x, y, x0, np.array([tau]), ones)
    return float(plateau[0, 0]), float(gain[0, 0]), tau, float(sse[0, 0])


def observed_gain(rf: np.ndarray, y: np.ndarray) -> float:
    """Mean dice at the largest RF minus mean dice at the smallest RF (no model)."""
    if len(np.unique(rf)) < 2:
        return float("nan")
    return float(y[rf == rf.max()].mean() - y[rf == rf.min()].mean())


def seed_sigma(rf: np.ndarray, y: np.ndarray, seeds: np.ndarray) -> tuple[float, int]:
    """Seed noise of one trial's dice, with seeds as paired blocks, and its degrees of freedom.

    One seed gives every architecture the same initial state, batch order and augmentation,
    so a seed that trains well does so at every RF: dice = RF effect + seed effect + noise.
    The residual of that additive two-way model (least squares with one indicator per RF and
    one per seed) is the noise a comparison between RFs sees; dof = n - rank. A seed's shared
    offset is not noise in the gain (it cancels between RFs), and counting it, as a plain
    within-RF standard deviation does, understates what the seeds resolve. With one trial per
    RF there is no replicate: (NaN, 0).
    """
    rf_levels, rf_idx = np.unique(rf, return_inverse=True)
    seed_levels, seed_idx = np.unique(seeds, return_inverse=True)
    if len(y) <= len(rf_levels):
        return float("nan"), 0
    design = np.zeros((len(y), len(rf_levels) + len(seed_levels)))
    design[np.arange(len(y)), rf_idx] = 1.0
    design[np.arange(len(y)), len(rf_levels) + seed_idx] = 1.0
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(y) - int(np.linalg.matrix_rank(design))
    if dof <= 0:
        return float("nan"), 0
    resid = y - design @ coef
    return math.sqrt(float(resid @ resid) / dof), dof
