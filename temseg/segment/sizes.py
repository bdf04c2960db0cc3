"""Size statistics a lab can publish: D10 / D50 / D90 and means with 95 % bootstrap intervals.

Pure numpy / pandas. The sizes are those of particles not touching the image border (a cut
particle's size is not its own): the equivalent-circle diameter ``d`` and the maximum Feret
diameter ``f`` of :func:`temseg.particles.particle_table`.

Statistics (ISO 9276-2 notation; ``x`` is ``d`` or ``f``, sorted ascending):

* number-weighted quantile ``Dq`` (``d10``, ``d50``, ``d90``): the smallest ``x_(k)`` whose
  cumulative share of particles ``k / n`` reaches ``q`` (the inverted empirical CDF,
  ``numpy.quantile(method="inverted_cdf")``);
* volume-weighted quantile ``Dv q`` (``dv10``, ``dv50``, ``dv90``): the same with each
  particle weighted by the volume of its equivalent sphere, ``w_i = d_i**3``: the smallest
  ``x_(k)`` with ``sum_{j<=k} w_j / sum_j w_j >= q``;
* ``dmean = sum x_i / n`` (D[1,0]) and the volume-weighted mean
  ``dvmean = sum w_i x_i / sum w_i`` (for ``x = d``: D[4,3] = sum d^4 / sum d^3);
* ``gsd = exp(sd(ln d))``, the geometric standard deviation, the spread ISO 13322-1 quotes.

Feret statistics carry the same names with ``feret`` for ``d`` (``feret50``, ``feretv50``,
...), volume weights still from ``d``. Columns: ``<statistic>_nm`` with its interval in
``<statistic>_lo_nm`` and ``<statistic>_hi_nm``.

Intervals. A percentile bootstrap (2.5 and 97.5 % of ``n_boot`` replicates, one seeded
generator): each replicate draws the particles with replacement. With a seed ensemble each
particle also has a size per network (``members``, n x K); each replicate then also draws K
networks with replacement and moves every particle's size by the drawn networks' mean
deviation from the all-network mean, so the interval holds the between-network spread too.
Over images (:func:`image_bootstrap`), each replicate draws whole images, and their particles.

Particles needed (after ISO 13322-1, whose Annex A gives counts for log-normal sizes: for a
geometric spread of 1.6, more than 6,000 for a repeatable volume mean and about 61,000 for
D90). Here the count is read from the measured interval, whose width shrinks as 1/sqrt(n):
``needed = n * (half_width / (PRECISION * value))**2`` particles for a 95 % interval within
+-5 % of the statistic (a count below ``n`` means the measurement already has that precision).
It is read from the bootstrap's interval, never from one widened by a term that does not
shrink with ``n`` (:func:`widen`, the boundary error of :mod:`temseg.segment.calibration`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

QUANTILES = {"10": 0.10, "50": 0.50, "90": 0.90}
DEFAULT_BOOT = 1000
LEVEL = 0.95
PRECISION = 0.05  # the relative half-width "particles needed" aims at
NEEDED_FOR = ("d50", "d90", "dvmean")  # summary.csv columns needed_<statistic>


def statistic_names() -> list[str]:
    """``d10 d50 d90 dmean dv10 dv50 dv90 dvmean`` and the same with ``feret`` for ``d``."""
    names = []
    for measure in ("d", "feret"):
        for weight in ("", "v"):
            names += [f"{measure}{weight}{q}" for q in QUANTILES] + [f"{measure}{weight}mean"]
    return names


STATISTICS = statistic_names()


def interval_columns(names: list[str] = STATISTICS) -> list[str]:
    """``<name>_nm, <name>_lo_nm, <name>_hi_nm`` for each statistic."""
    return [f"{n}{s}_nm" for n in names for s in ("", "_lo", "_hi")]


def _weighted(values: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Quantiles and mean of each row of ``values`` (…, n) with ``weights`` (same shape)."""
    order = np.argsort(values, axis=-1, kind="stable")
    v = np.take_along_axis(values, order, -1)
    w = np.take_along_axis(weights, order, -1)
    cum = np.cumsum(w, axis=-1)
    total = cum[..., -1:]
    out = {}
    for key, q in QUANTILES.items():
        # first k with cum_k >= q total; the tolerance keeps k/n == q exact (n = 10, q = 0.1)
        k = np.argmax(cum >= q * total * (1 - 1e-12), axis=-1)
        out[key] = np.take_along_axis(v, k[..., None], -1)[..., 0]
    out["mean"] = (w * v).sum(-1) / total[..., 0]
    return out


def size_statistics(d: np.ndarray, feret: np.ndarray) -> dict[str, float]:
    """The point estimates of :data:`STATISTICS` and ``gsd`` (NaN for no particles).

    Examples
    --------
    >>> s = size_statistics(np.array([1.0, 2, 3, 4, 10]), np.array([1.0, 2, 3, 4, 10]))
    >>> s["d50"], s["dv50"], round(s["dvmean"], 4)  # D[4,3] = 10354 / 1100
    (3.0, 10.0, 9.4127)
    """
    d, feret = np.asarray(d, float), np.asarray(feret, float)
    if d.size == 0:
        return {**dict.fromkeys(STATISTICS, math.nan), "gsd": math.nan}
    return {
        **_all_statistics(d[None], feret[None], (d**3)[None], index=0),
        "gsd": float(np.exp(np.log(d).std(ddof=1))) if d.size > 1 else math.nan,
    }


def _all_statistics(d, feret, volume, *, index=None) -> dict:
    out = {}
    for measure, x in (("d", d), ("feret", feret)):
        for weight, w in (("", np.ones_like(volume)), ("v", volume)):
            for key, value in _weighted(x, w).items():
                out[f"{measure}{weight}{key}"] = value if index is None else float(value[index])
    return out


def _percentiles(replicates: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    tail = 100 * (1 - LEVEL) / 2
    return {
        k: tuple(float(x) for x in np.percentile(v, [tail, 100 - tail]))
        for k, v in replicates.items()
    }


def particle_bootstrap(
    d: np.ndarray,
    feret: np.ndarray,
    *,
    members_d: np.ndarray | None = None,
    members_feret: np.ndarray | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of every statistic, drawing particles (and networks).

    ``members_d`` / ``members_feret`` (n x K): each particle's size in each network of an
    ensemble (module docstring); ``None`` or K = 1 draws particles only. Deterministic for
    a seed; NaN intervals for fewer than 2 particles.
    """
    d, feret = np.asarray(d, float), np.asarray(feret, float)
    n = d.size
    if n < 2:
        return dict.fromkeys(STATISTICS, (math.nan, math.nan))
    rng = np.random.default_rng(seed)
    net_rng = np.random.default_rng([seed, 1])  # networks drawn apart: same particle draws
    dev_d = dev_f = None
    if members_d is not None and np.asarray(members_d).shape[1] > 1:
        dev_d = members_d - members_d.mean(1, keepdims=True)  # (n, K)
        dev_f = members_feret - members_feret.mean(1, keepdims=True)
    reps: dict[str, list] = {k: [] for k in STATISTICS}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, (b, n))
        bd, bf = d[idx], feret[idx]
        if dev_d is not None:
            k = dev_d.shape[1]
            share = net_rng.multinomial(k, np.full(k, 1 / k), size=b) / k  # (b, K)
            bd = bd + (share @ dev_d.T)[np.arange(b)[:, None], idx]
            bf = bf + (share @ dev_f.T)[np.arange(b)[:, None], idx]
        for key, v in _all_statistics(bd, bf, np.clip(bd, 0, None) ** 3).items():
            reps[key].append(v)
    return _percentiles({k: np.concatenate(v) for k, v in reps.items()})


def image_bootstrap(
    groups: list[tuple[np.ndarray, np.ndarray]], *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95 % intervals over images: each replicate draws whole images (their ``(d, feret)``)
    with replacement and pools their particles. NaN for fewer than 2 images."""
    groups = [(np.asarray(d, float), np.asarray(f, float)) for d, f in groups if len(d)]
    if len(groups) < 2:
        return dict.fromkeys(STATISTICS, (math.nan, math.nan))
    rng = np.random.default_rng(seed)
    reps: dict[str, list] = {k: [] for k in STATISTICS}
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        d = np.concatenate([groups[i][0] for i in pick])
        f = np.concatenate([groups[i][1] for i in pick])
        for key, v in _all_statistics(d[None], f[None], (d**3)[None], index=0).items():
            reps[key].append(v)
    return _percentiles({k: np.asarray(v) for k, v in reps.items()})


def particles_needed(value: float, lo: float, hi: float, n: int) -> float:
    """Particles for a 95 % interval within +-:data:`PRECISION` of ``value``, from an
    interval measured on ``n`` particles (width proportional to 1 / sqrt(n)).

    >>> particles_needed(2.0, 1.8, 2.2, 100)  # half-width 10 %: 4x the particles for 5 %
    400.0
    """
    half = (hi - lo) / 2
    if not (n and value > 0 and np.isfinite(half)):
        return math.nan
    return float(math.ceil(round(n * (half / (PRECISION * value)) ** 2, 6)))


def statistics_row(
    d: np.ndarray, feret: np.ndarray, intervals: dict[str, tuple[float, float]], sampling=None
) -> dict[str, float]:
    """One summary.csv row: ``gsd``, every ``<stat>_nm`` with its interval,
    and ``needed_<stat>`` for :data:`NEEDED_FOR`, read from the ``sampling`` intervals (the
    bootstrap's, which shrink with n; default ``intervals``) when those are widened."""
    sampling = sampling or intervals
    point = size_statistics(d, feret)
    row: dict[str, float] = {"gsd": point["gsd"]}
    for name in STATISTICS:
        lo, hi = intervals[name]
        row.update({f"{name}_nm": point[name], f"{name}_lo_nm": lo, f"{name}_hi_nm": hi})
    for name in NEEDED_FOR:
        row[f"needed_{name}"] = particles_needed(point[name], *sampling[name], len(d))
    return row


SIZES_COLUMNS = [
    "scope", "over", "interval_over", "statistic", "value_nm", "lo_nm", "hi_nm", "n", "needed",
]  # fmt: skip
BOUNDARY = "+boundary"  # interval_over's mark of a widened interval


def long_table(
    scope: str, over: str, row: dict, intervals: dict, n: int, widened=(), sampling=None
) -> pd.DataFrame:
    """sizes.csv rows (:data:`SIZES_COLUMNS`): one per statistic of a scope (an image or
    ``all``), ``over`` ``particles`` or ``images`` (what the interval draws);
    ``interval_over`` adds :data:`BOUNDARY` for the statistics in ``widened``; ``needed``
    from the ``sampling`` intervals (as :func:`statistics_row`)."""
    sampling = sampling or intervals
    rows = []
    for name in STATISTICS:
        lo, hi = intervals[name]
        value = row[f"{name}_nm"]
        kind = over + (BOUNDARY if name in widened else "")
        needed = particles_needed(value, *sampling[name], n)
        rows.append([scope, over, kind, name, value, lo, hi, n, needed])
    return pd.DataFrame(rows, columns=SIZES_COLUMNS)


def widen(value: float, lo: float, hi: float, extra: float) -> tuple[float, float]:
    """Widen an interval by ``extra`` in quadrature on the log scale: each side's log
    half-width ``a`` (``ln(value / lo)``, ``ln(hi / value)``; 0 if the side is inverted)
    becomes ``sqrt(a**2 + extra**2)``. NaN stays NaN; ``extra = 0`` returns the interval.

    >>> [round(x, 6) for x in widen(2.0, 2.0 * math.exp(-0.03), 2.0 * math.exp(0.04), 0.03)]
    [1.916922, 2.102542]
    """
    if not (np.isfinite([value, lo, hi, extra]).all() and value > 0 and lo > 0):
        return lo, hi
    a_lo, a_hi = max(math.log(value / lo), 0.0), max(math.log(hi / value), 0.0)
    return (
        value * math.exp(-math.hypot(a_lo, extra)),
        value * math.exp(math.hypot(a_hi, extra)),
    )


def widen_intervals(
    d: np.ndarray, feret: np.ndarray, intervals: dict, extra: dict[str, float] | None
) -> dict[str, tuple[float, float]]:
    """``intervals`` with each statistic of ``extra`` widened by its term (:func:`widen`)
    around the point estimate of the sizes ``d``, ``feret``; the others unchanged."""
    if not extra:
        return intervals
    point = size_statistics(d, feret)
    return {**intervals, **{k: widen(point[k], *intervals[k], e) for k, e in extra.items()}}
