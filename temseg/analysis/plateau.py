"""Plateau fits of test dice against receptive field, and the onset trend across contrast.

The paper reads off plots that high-resolution dice "increases with larger receptive field
but then plateaus" and that the plateau starts at a larger RF when particle contrast is lower
(Sytwu, Groschner & Scott 2022, Figures 2-4). temseg turns both into fitted numbers with
uncertainty.

Model
-----
With x = ln(RF) and x0 = ln(RF_min), the smallest RF of the group,

    d(RF) = plateau - gain * exp(-(x - x0) / tau) = plateau - gain * (RF / RF_min) ** (-1 / tau)

an exponential approach in log RF (a power-law approach in RF). ``gain`` is the total change
from the smallest RF to the asymptote (negative when dice falls, as in the paper's
low-resolution data), ``plateau`` the asymptote, and the onset, where 95% of the gain is
reached, is RF_onset = RF_min * 20 ** tau (exp(-(x - x0)/tau) = 0.05).

Why this model:

- the RF grids of the study are geometric (pool kernels 2, 4, 8 multiply; dilations double),
  so log RF is the design coordinate and every grid point carries comparable leverage; an
  exponential in linear RF would put the whole rise between the first two points;
- it is smooth and monotone with three parameters, reduces to a constant when gain = 0 and
  gives the onset as a derived number; a hinge in log RF has its kink location unidentified
  anywhere between two grid points and a non-smooth objective, which fails on 4-point curves;
- it is unit-free in RF: px and nm differ by a constant factor, which only shifts x, so the
  onset in nm is the onset in px times the pixel size.

Fit: for fixed tau the model is linear in (plateau, gain), so the least-squares problem is
solved exactly for every tau on a log grid over [span / 50, span] (span = ln(RF_max /
RF_min)) and the best tau is refined with ``scipy.optimize.minimize_scalar`` (variable
projection: no starting values, no divergence, works on 3 points). Bounding tau by the span
keeps the curve identifiable: at the upper bound only 63% of the gain is realised inside the
grid, the onset lies beyond the largest RF and the fit says so (``plateau_reached`` False)
instead of extrapolating a plateau from a straight line. Every trial (RF, seed) is one point.

Uncertainty and verdict
-----------------------
- Seed noise sigma: the residual standard deviation of an additive model dice = RF effect +
  seed effect (``sigma_source = "seeds"``): seeds are paired blocks (one seed, same initial
  state, batch order and augmentation at every RF), so a seed's shared offset cancels in the
  gain and is not counted as noise. With one seed per RF there is none; the fit residual sqrt(SSE / (n - 3)) stands
  in (``"residual"``, lack of fit and seed noise together); with n = 3 points neither exists.
- SE(gain) = sigma / sqrt(sum (e_i - mean e)^2), e_i = exp(-(x_i - x0) / tau), the standard
  error of the gain given the fitted tau.
- Bootstrap over seeds: seeds are resampled with replacement as whole units (for one seed
  every architecture sees the same data, batch order and initial state, so a seed's trials
  are correlated and belong together), the curve is refitted, and the 2.5/97.5 percentiles
  of plateau, gain and onset give 95% intervals. Needs >= 3 seeds, and >= 3 trials at the
  median RF (``MIN_SEEDS_INTERVAL``); fewer gives NaN intervals.
- Bootstrap over test images, jointly: where every trial of the group logged its per-test-
  image pixel counts, each resample also draws the test images with replacement (one draw
  for all trials of a dataset, which share its test images) and recomputes every trial's
  pooled dice from the drawn images before the refit (:mod:`temseg.analysis.image_bootstrap`).
  The seed interval alone says how much another set of training seeds would move the
  numbers; this one adds which images happened to be in the test set. ``interval_over``
  says which kind a fit has.
- Verdict "rises with RF" / "falls with RF" when |gain| > t_{0.975, dof} * SE(gain) and, where
  a bootstrap interval exists, that interval excludes 0. Otherwise "no detectable dependence": the
  gain is not distinguishable from seed noise; this verdict needs replicate seeds (sigma from
  seeds). "undetermined" when there is no noise estimate, fewer than 3 distinct RFs, or one
  seed per RF and a gain not separable from the fit residual (one seed cannot tell a flat
  curve from seed noise; the point estimates are kept, without intervals). With "no RF
  dependence", ``plateau_dice`` is the mean dice of the group (its interval the bootstrap of
  that mean) and the onset is NaN (an onset of a rise that is not there has no meaning).

Bootstrap refits use the tau grid only (adjacent grid values differ by 3%, far below the
bootstrap spread). Choosing tau to fit the data makes the t-test somewhat liberal; the
bootstrap condition counters it. Measured on synthetic curves (40 draws each, noise
0.004-0.01): flat 9 RFs x 5 seeds gave "no detectable dependence" 36 times, flat 4 RFs x 3 seeds 39
times; rising curves were called rises 40/40; 95% intervals covered the true gain, plateau
and onset in 75-90% of draws (percentile intervals from 3-5 seeds run a little narrow).
(Measured with a plain within-RF sigma, before the paired seed model; those synthetic curves
had independent noise and no seed offsets, where the two estimates agree in expectation.)

Groups: one fit per (dataset, N, strategy). Pooling = the undilated trials; dilation = the
dilated trials plus the undilated ones with the same pools (the d = 1 start of the series).

Across contrast levels (:func:`temseg.analysis.contrast_trend.onset_trend`): ln(onset_nm) =
a + b ln(contrast), fitted by least squares (``scipy.stats.linregress``) over the groups with
a measured onset; b < 0 means the onset falls as contrast rises (the paper's hypothesis), per
(pixel size, N, strategy). Groups without RF dependence are left out of the fit and counted
(their onset is at most the smallest RF tested).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from temseg.analysis import image_bootstrap
from temseg.analysis.image_bootstrap import ImageCounts
from temseg.analysis.plateau_bootstrap import CONFIDENCE, bootstrap_intervals
from temseg.analysis.plateau_curve import fit_curve, observed_gain, onset_from_tau, seed_sigma

GAIN_FLOOR = 1e-6  # a dice change below this is numerically zero, whatever the noise
N_BOOT = 1000

RISES = "rises with RF"
FALLS = "falls with RF"
FLAT = "no detectable dependence"
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class PlateauFit:
    """One fitted dice-vs-RF curve (RF in px; multiply by the pixel size for nm)."""

    n_trials: int
    n_rfs: int
    n_seeds: int
    rf_min_px: float
    rf_max_px: float
    plateau_dice: float
    gain: float
    tau: float
    onset_rf_px: float
    plateau_dice_lo: float
    plateau_dice_hi: float
    gain_lo: float
    gain_hi: float
    onset_rf_px_lo: float
    onset_rf_px_hi: float
    gain_se: float
    sigma: float
    sigma_source: str
    dof: int
    observed_gain: float
    plateau_reached: bool
    verdict: str
    note: str
    # where the onset lies relative to the RFs tested: "none" (inside, measured), "above"
    # (still rising at the largest RF: onset > RF_max, no number), "below" (reached by the
    # second RF: onset <= RF_2, not resolved), "" (no rise, so no onset)
    onset_censored: str = ""
    # what the intervals resample: "seeds", "seeds and test images" (trials with a per-image
    # record, temseg.analysis.image_bootstrap), "" (no interval)
    interval_over: str = ""

    def predict(self, rf_px: np.ndarray | Sequence[float]) -> np.ndarray:
        """The fitted curve at ``rf_px`` (NaN where the fit is undetermined)."""
        rf = np.asarray(rf_px, dtype=float)
        if not np.isfinite(self.tau):
            return np.full(rf.shape, self.plateau_dice if self.verdict == FLAT else np.nan)
        if self.verdict == FLAT:
            return np.full(rf.shape, self.plateau_dice)
        return self.plateau_dice - self.gain * (rf / self.rf_min_px) ** (-1.0 / self.tau)

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)

def _nan_fit(rf: np.ndarray, y: np.ndarray, n_seeds: int, verdict: str, note: str) -> PlateauFit:
    nan = float("nan")
    return PlateauFit(
        n_trials=len(y),
        n_rfs=len(np.unique(rf)),
        n_seeds=n_seeds,
        rf_min_px=float(rf.min()) if len(rf) else nan,
        rf_max_px=float(rf.max()) if len(rf) else nan,
        plateau_dice=nan,
        gain=nan,
        tau=nan,
        onset_rf_px=nan,
        plateau_dice_lo=nan,
        plateau_dice_hi=nan,
        gain_lo=nan,
        gain_hi=nan,
        onset_rf_px_lo=nan,
        onset_rf_px_hi=nan,
        gain_se=nan,
        sigma=nan,
        sigma_source="none",
        dof=0,
        observed_gain=observed_gain(rf, y),
        plateau_reached=False,
        verdict=verdict,
        note=note,
    )


def fit_plateau(
    rf_px: Sequence[float] | np.ndarray,
    dice: Sequence[float] | np.ndarray,
    seeds: Sequence[int] | np.ndarray | None = None,
    *,
    n_boot: int = N_BOOT,
    rng: np.random.Generator | int | None = 0,
    counts: ImageCounts | None = None,
) -> PlateauFit:
    """Fit the saturating dice-vs-RF model to one group of trials.

    Parameters
    ----------
    rf_px
        Receptive field of each trial, px (any positive unit works; the onset comes back in
        the same unit).
    dice
        Test dice of each trial (one value per trial, not seed means).
    seeds
        Seed of each trial, for the seed noise and the bootstrap over seeds. ``None``
        treats every trial as its own seed.
    n_boot
        Bootstrap resamples of the seeds (0 disables the interval).
    rng
        Seed or generator of the bootstrap, so a report is reproducible.
    counts
        Per-test-image pixel counts of every trial (:mod:`temseg.analysis.image_bootstrap`): the
        bootstrap then resamples the test images jointly with the seeds, one image draw per
        replicate for all trials of a dataset. None: seeds only.

    Returns
    -------
    PlateauFit
        See the module docstring for the model, the intervals and the verdict rule.

    Notes
    -----
    d(RF) = plateau - gain * (RF / RF_min) ** (-1 / tau); onset = RF_min * 20 ** tau.

    Examples
    --------
    >>> rf = np.array([44, 120, 232, 392])
    >>> fit = fit_plateau(rf, 0.8 - 0.1 * (rf / 44) ** -2.0, n_boot=0)
    >>> round(fit.plateau_dice, 3), round(fit.gain, 3), round(fit.onset_rf_px)
    (0.8, 0.1, 197)
    """
    rf, y, seed_arr, counts = _finite_trials(rf_px, dice, seeds, counts)
    n_seeds = len(np.unique(seed_arr))
    n_rfs = len(np.unique(rf))
    if n_rfs < 3:
        note = f"{n_rfs} distinct RF(s): a plateau fit needs at least 3"
        return _nan_fit(rf, y, n_seeds, UNDETERMINED, note)

    plateau, gain, tau, sse = fit_curve(rf, y)
    onset = onset_from_tau(float(rf.min()), tau)
    sigma, dof, source, gain_se = _noise(rf, y, seed_arr, sse, tau)

    lo_hi, interval_over, notes = bootstrap_intervals(
        rf, y, seed_arr, counts, n_boot=n_boot, rng=rng
    )
    verdict = _verdict(gain, gain_se, sigma, dof, source, lo_hi["gain"], notes)

    nan = float("nan")
    if verdict == FLAT:
        plateau, onset = float(y.mean()), nan
        lo_hi["plateau"], lo_hi["onset"] = lo_hi["mean"], (nan, nan)
        reached = True
    else:
        reached = _onset_reached(onset, rf, notes)

    return PlateauFit(
        onset_censored=_censoring(verdict, onset, reached, rf),
        n_trials=len(y),
        n_rfs=n_rfs,
        n_seeds=n_seeds,
        rf_min_px=float(rf.min()),
        rf_max_px=float(rf.max()),
        plateau_dice=plateau,
        gain=gain,
        tau=tau,
        onset_rf_px=onset,
        plateau_dice_lo=lo_hi["plateau"][0],
        plateau_dice_hi=lo_hi["plateau"][1],
        gain_lo=lo_hi["gain"][0],
        gain_hi=lo_hi["gain"][1],
        onset_rf_px_lo=lo_hi["onset"][0],
        onset_rf_px_hi=lo_hi["onset"][1],
        gain_se=gain_se,
        sigma=sigma,
        sigma_source=source,
        dof=int(dof),
        observed_gain=observed_gain(rf, y),
        plateau_reached=reached,
        verdict=verdict,
        note="; ".join(notes),
        interval_over=interval_over if np.isfinite(lo_hi["gain"][0]) else "",
    )



def _finite_trials(
    rf_px: Sequence[float] | np.ndarray,
    dice: Sequence[float] | np.ndarray,
    seeds: Sequence[int] | np.ndarray | None,
    counts: ImageCounts | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ImageCounts | None]:
    """The trials of one group as flat arrays, checked, without non-finite RFs or dice."""
    rf = np.asarray(rf_px, dtype=float).ravel()
    y = np.asarray(dice, dtype=float).ravel()
    if rf.shape != y.shape:
        raise ValueError(f"rf_px has {rf.size} values but dice has {y.size}")
    seed_arr = np.arange(len(y)) if seeds is None else np.asarray(seeds).ravel()
    if seed_arr.shape != y.shape:
        raise ValueError(f"seeds has {seed_arr.size} values but dice has {y.size}")
    keep = np.isfinite(rf) & np.isfinite(y)
    if np.any(rf[keep] <= 0):
        raise ValueError(f"receptive fields must be > 0, got {sorted(set(rf[keep]))}")
    counts = counts.subset(keep) if counts is not None else None
    return rf[keep], y[keep], seed_arr[keep], counts


def _noise(
    rf: np.ndarray, y: np.ndarray, seed_arr: np.ndarray, sse: float, tau: float
) -> tuple[float, int, str, float]:
    """Noise of one trial's dice (sigma, dof, where it came from) and the SE of the gain.

    The seed noise where seeds repeat an RF; else the fit residual sqrt(SSE / (n - 3)); with
    3 points neither (NaN, "none").
    """
    sigma, dof = seed_sigma(rf, y, seed_arr)
    source = "seeds"
    if dof == 0:
        dof = len(y) - 3
        sigma, source = (math.sqrt(sse / dof), "residual") if dof > 0 else (float("nan"), "none")
    x = np.log(rf)
    e = np.exp(-(x - float(x.min())) / tau)
    gain_se = sigma / math.sqrt(float(((e - e.mean()) ** 2).sum()))
    return sigma, dof, source, gain_se


def _onset_reached(onset: float, rf: np.ndarray, notes: list[str]) -> bool:
    """Whether the onset lies within the RFs tested; notes an extrapolated or unresolved one."""
    reached = bool(np.isfinite(onset) and onset <= rf.max())
    if np.isfinite(onset) and not reached:
        notes.append("plateau not reached within the RFs tested: onset extrapolated")
    if np.isfinite(onset) and onset < np.unique(rf)[1]:
        notes.append("onset below the second-smallest RF: not resolved by the grid")
    return reached


def _censoring(verdict: str, onset: float, reached: bool, rf: np.ndarray) -> str:
    """Where a rise's onset lies relative to the RFs tested (``PlateauFit.onset_censored``)."""
    censored = ""
    if verdict == RISES and np.isfinite(onset):
        censored = "above" if not reached else "below" if onset <= np.unique(rf)[1] else "none"
    return censored


def _verdict(
    gain: float,
    gain_se: float,
    sigma: float,
    dof: int,
    source: str,
    gain_lo_hi: tuple[float, float],
    notes: list[str],
) -> str:
    """Rise, fall, flat or undetermined: the t-test on the gain and the bootstrap interval.

    Appends to ``notes`` why a verdict is undetermined or where its noise came from.
    """
    if not np.isfinite(sigma):
        verdict = UNDETERMINED
        notes.append("no noise estimate (one seed per RF and only 3 trials)")
    else:
        t_crit = float(stats.t.ppf((1 + CONFIDENCE) / 2, dof))
        separated = abs(gain) > max(t_crit * gain_se, GAIN_FLOOR)
        g_lo, g_hi = gain_lo_hi
        if np.isfinite(g_lo) and g_lo <= 0 <= g_hi:
            separated = False
        if separated:
            verdict = RISES if gain > 0 else FALLS
            if source == "residual":
                notes.append(f"noise from the fit residual ({dof} dof)")
        elif source == "seeds":
            verdict = FLAT
        else:
            # Without replicate seeds, "not separable from the residual" says nothing about
            # seed noise: no claim either way.
            verdict = UNDETERMINED
            notes.append(
                f"gain {gain:+.3f} not separable from the fit residual "
                f"(SE {gain_se:.3f}, t {t_crit:.1f} at {dof} dof)"
            )
    return verdict


GROUP_KEYS = ("dataset", "contrast", "pixel_size_nm", "num_blocks", "strategy")


def _strategy_members(group: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Trials of one (dataset, N) split into the pooling and dilation RF series.

    Membership follows the architecture, not the tag: pooling = every trial without
    dilation; dilation = every dilated trial plus the undilated trials with the same pools
    (the d = 1 start of the dilation series, as in the paper's Figure 4).
    """
    undilated = group["dilations"].map(lambda d: set(str(d).split("-")) <= {"1"})
    out = {}
    if undilated.any():
        out["pooling"] = group[undilated]
    if (~undilated).any():
        dil_pools = set(group.loc[~undilated, "pools"])
        out["dilation"] = group[~undilated | (undilated & group["pools"].isin(dil_pools))]
    return out


def rf_series(trials: pd.DataFrame) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Every RF series of a trial table, one per (dataset, contrast, N, strategy): its
    :data:`GROUP_KEYS` values (the first columns of a fit's row) and its member trials."""
    keys = list(GROUP_KEYS[:-1])
    for (dataset, contrast, pixel_size, n_blocks), level in trials.groupby(keys, dropna=False):
        for strategy, members in _strategy_members(level).items():
            group = {
                "dataset": dataset,
                "contrast": contrast,
                "pixel_size_nm": pixel_size,
                "num_blocks": int(n_blocks),
                "strategy": strategy,
            }
            yield group, members


def fit_plateaus(
    trials: pd.DataFrame,
    *,
    n_boot: int = N_BOOT,
    rng: int = 0,
    metric: str = "test_hard_dice",
    images: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fit one plateau per (dataset, contrast, N, strategy) from a per-trial table.

    ``trials`` is :func:`temseg.analysis.collect.load_runs` output (finished trials with a
    finite ``metric`` are used). With ``images`` (:func:`temseg.analysis.collect.
    load_test_images`) and the test dice as ``metric``, a group whose every trial has a
    per-image record gets intervals over seeds and test images (``interval_over``).
    Columns: the group keys, the :class:`PlateauFit` fields, and
    the RF columns again in nm (``*_rf_nm*`` = px times the dataset's pixel size).
    """
    need = {
        "dataset",
        "contrast",
        "pixel_size_nm",
        "num_blocks",
        "pools",
        "dilations",
        "rf_px",
        "seed",
        metric,
    }
    missing = sorted(need - set(trials.columns))
    if missing:
        raise ValueError(f"trial table lacks column(s) {missing}")
    ok = trials[np.isfinite(pd.to_numeric(trials[metric], errors="coerce").astype(float))]
    if "status" in ok.columns:
        ok = ok[ok["status"] == "FINISHED"]
    rows = []
    for group, members in rf_series(ok):
        fit = fit_plateau(
            members["rf_px"].astype(float).to_numpy(),
            members[metric].astype(float).to_numpy(),
            members["seed"].to_numpy(),
            n_boot=n_boot,
            rng=rng,
            counts=image_bootstrap.counts_for(members, images)
            if metric == "test_hard_dice"
            else None,
        )
        rows.append({**group, **fit.as_dict()})
    cols = list(GROUP_KEYS) + list(PlateauFit.__dataclass_fields__)
    out = pd.DataFrame(rows, columns=cols)
    # An onset the grid does not resolve ("above": still rising; "below": reached by the
    # second RF) is a bound, not a measurement: no number in the table. A zero-width
    # interval (a fit pinned at a bound in every resample) is no interval either.
    onset_cols = ["onset_rf_px", "onset_rf_px_lo", "onset_rf_px_hi"]
    out.loc[out["onset_censored"].isin(["above", "below"]), onset_cols] = np.nan
    for name in ("onset_rf_px", "gain", "plateau_dice"):
        lo, hi = f"{name}_lo", f"{name}_hi"
        pinned = out[lo].astype(float) >= out[hi].astype(float)
        out.loc[pinned, [lo, hi]] = np.nan
    pixel_size = out["pixel_size_nm"].astype(float)
    for px_col in ("rf_min_px", "rf_max_px", "onset_rf_px", "onset_rf_px_lo", "onset_rf_px_hi"):
        out[px_col.replace("_px", "_nm")] = out[px_col].astype(float) * pixel_size
    return out.sort_values(["num_blocks", "strategy", "contrast", "dataset"], ignore_index=True)
