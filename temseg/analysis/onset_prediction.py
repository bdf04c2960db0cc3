"""Which receptive field a new store needs: the onset trend across contrast, and a heuristic.

For a new store (:func:`fit_trend`, :meth:`TrendFit.predict`): the onset of the plateau (nm)
against measured contrast is a power law, ln(onset_nm) = a + b ln(contrast), fitted over
the levels whose onset lies inside the tested RFs (as :func:`contrast_trend.onset_trend`);
the prediction at the new store's contrast has a 95% prediction interval (t with n - 2 dof,
s sqrt(1 + 1/n + (x0 - xbar)^2 / Sxx) in log space) from 3 levels on; with 2 levels the
line passes through both and has no interval; with fewer the trend is undetermined.
:func:`leave_one_level_out` scores it: each level with a measured onset is predicted from
the others and compared with the heuristic of :func:`heuristic_rf_nm`.

Heuristic (Loos, Pardasani & Awasthi 2024, J. Med. Imaging 11(5) 054004): the RF should be
the object size when the histogram contrast is at least 0.1, else the object size x 0.1 /
contrast. temseg applies it to its own contrast score (:mod:`temseg.data.contrast`, a
standardized median gap), which is not necessarily the scale on which Loos et al. set 0.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from temseg.analysis import contrast_trend, plateau

HEURISTIC_CONTRAST = 0.1  # Loos et al. 2024


# --------------------------------------------------------------------------- heuristic


def heuristic_rf_nm(object_size_nm: float, contrast: float) -> float:
    """Loos et al. (2024): RF = object size if contrast >= 0.1, else object size x 0.1 /
    contrast (nm in, nm out; NaN for an unknown size or a contrast <= 0).

    >>> heuristic_rf_nm(2.2, 0.5), heuristic_rf_nm(2.2, 0.1), round(heuristic_rf_nm(2.2, 0.04), 6)
    (2.2, 2.2, 5.5)
    """
    if not (np.isfinite(object_size_nm) and object_size_nm > 0):
        return math.nan
    if not (np.isfinite(contrast) and contrast > 0):
        return math.nan
    if contrast >= HEURISTIC_CONTRAST:
        return float(object_size_nm)
    return float(object_size_nm) * HEURISTIC_CONTRAST / float(contrast)


# --------------------------------------------------------------------------- onset trend


@dataclass(frozen=True)
class TrendFit:
    """ln(onset_nm) = intercept + slope ln(contrast) over the measured onsets of one group."""

    pixel_size_nm: float
    num_blocks: int
    strategy: str
    n_levels: int
    n_with_onset: int
    n_flat: int
    n_censored_above: int
    n_censored_below: int
    slope: float
    intercept: float
    resid_sd: float  # in ln(nm); NaN with 2 levels
    x_mean: float
    sxx: float
    contrast_min: float
    contrast_max: float
    reason: str  # why the trend is undetermined; "" when it is fitted

    @property
    def determined(self) -> bool:
        return not self.reason

    def predict(self, contrast: float) -> tuple[float, float, float]:
        """Onset (nm) at ``contrast`` and its 95% prediction interval (NaN without one)."""
        if not self.determined or not (np.isfinite(contrast) and contrast > 0):
            return math.nan, math.nan, math.nan
        x0 = math.log(contrast)
        y0 = self.intercept + self.slope * x0
        if not np.isfinite(self.resid_sd):
            return math.exp(y0), math.nan, math.nan
        n = self.n_with_onset
        t = float(stats.t.ppf(0.975, n - 2))
        half = t * self.resid_sd * math.sqrt(1 + 1 / n + (x0 - self.x_mean) ** 2 / self.sxx)
        return math.exp(y0), math.exp(y0 - half), math.exp(y0 + half)


def fit_trend(group: pd.DataFrame, like: pd.Series | None = None) -> TrendFit:
    """The onset trend of one (pixel size, N, strategy) group of plateau fits; ``like`` (a
    row of the group) names the group when ``group`` is empty (a level held out of one)."""
    g = group
    ref = like if like is not None else g.iloc[0]
    measured = contrast_trend.trend_members(g)
    cens = g["onset_censored"] if "onset_censored" in g else pd.Series("none", g.index)
    rises = g["verdict"] == plateau.RISES
    base = dict(
        pixel_size_nm=float(ref["pixel_size_nm"]),
        num_blocks=int(ref["num_blocks"]),
        strategy=str(ref["strategy"]),
        n_levels=len(g),
        n_with_onset=len(measured),
        n_flat=int((g["verdict"] == plateau.FLAT).sum()),
        n_censored_above=int((rises & (cens == "above")).sum()),
        n_censored_below=int((rises & (cens == "below")).sum()),
    )
    nan = math.nan
    lx = np.log(measured["contrast"].astype(float).to_numpy())
    ly = np.log(measured["onset_rf_nm"].astype(float).to_numpy())
    if len(np.unique(lx)) < 2:
        reason = (
            f"{len(measured)} of {len(g)} level(s) have an onset inside the tested RFs "
            f"(2 at distinct contrasts needed; {base['n_flat']} with no detectable dependence, "
            f"{base['n_censored_above']} still rising at the largest RF, "
            f"{base['n_censored_below']} reaching the plateau by the second RF, "
            f"{len(g) - len(measured) - base['n_flat'] - base['n_censored_above'] - base['n_censored_below']}"
            " undetermined or falling)"
        )
        return TrendFit(
            **base,
            slope=nan,
            intercept=nan,
            resid_sd=nan,
            x_mean=nan,
            sxx=nan,
            contrast_min=nan,
            contrast_max=nan,
            reason=reason,
        )
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    sd = math.sqrt(float(resid @ resid) / (len(lx) - 2)) if len(lx) > 2 else nan
    return TrendFit(
        **base,
        slope=float(slope),
        intercept=float(intercept),
        resid_sd=sd,
        x_mean=float(lx.mean()),
        sxx=float(((lx - lx.mean()) ** 2).sum()),
        contrast_min=float(np.exp(lx.min())),
        contrast_max=float(np.exp(lx.max())),
        reason="",
    )


def trend_groups(plateaus: pd.DataFrame) -> list[TrendFit]:
    """:func:`fit_trend` for every (pixel size, N, strategy) group, most onsets first."""
    groups = plateaus.groupby(list(contrast_trend.TREND_KEYS), dropna=False)
    fits = [fit_trend(g) for _, g in groups]
    return sorted(
        fits, key=lambda t: (-t.n_with_onset, t.num_blocks, t.strategy != "pooling", t.strategy)
    )


LOO_COLUMNS = [
    "pixel_size_nm",
    "num_blocks",
    "strategy",
    "dataset",
    "contrast",
    "onset_censored",
    "onset_nm",
    "predicted_nm",
    "predicted_nm_lo",
    "predicted_nm_hi",
    "object_size_nm",
    "heuristic_nm",
    "trend_error_nm",
    "trend_error_px",
    "heuristic_error_nm",
    "heuristic_error_px",
    "status",
]


def leave_one_level_out(
    plateaus: pd.DataFrame, object_size_nm: dict[str, float] | None = None
) -> pd.DataFrame:
    """Each level of each trend group predicted by the trend fitted without it.

    Levels whose onset is inside the tested RFs are scored (``trend_error_*`` = predicted -
    measured, likewise the heuristic's); other levels are listed with their censoring and no
    error. ``object_size_nm`` maps a dataset to its object size for the heuristic (missing:
    unknown, NaN). ``status``: ``scored``, ``trend undetermined: <reason>`` or ``no measured
    onset (<censoring or verdict>)``.
    """
    sizes = object_size_nm or {}
    rows = []
    for _, g in plateaus.groupby(list(contrast_trend.TREND_KEYS), dropna=False):
        measured_idx = set(contrast_trend.trend_members(g).index)
        for i, level in g.iterrows():
            rest = fit_trend(g.drop(index=i), like=level)
            c = float(level["contrast"])
            pred, lo, hi = rest.predict(c)
            size = float(sizes.get(level["dataset"], math.nan))
            heur = heuristic_rf_nm(size, c)
            px = float(level["pixel_size_nm"])
            onset = float(level["onset_rf_nm"]) if i in measured_idx else math.nan
            if not rest.determined:
                status = f"trend undetermined: {rest.reason}"
            elif i not in measured_idx:
                why = level.get("onset_censored", "") or level["verdict"]
                status = f"no measured onset ({why})"
            else:
                status = "scored"
            t_err = pred - onset if status == "scored" else math.nan
            h_err = heur - onset if np.isfinite(onset) else math.nan
            rows.append(
                {
                    "pixel_size_nm": px,
                    "num_blocks": int(level["num_blocks"]),
                    "strategy": level["strategy"],
                    "dataset": level["dataset"],
                    "contrast": c,
                    "onset_censored": level.get("onset_censored", ""),
                    "onset_nm": onset,
                    "predicted_nm": pred,
                    "predicted_nm_lo": lo,
                    "predicted_nm_hi": hi,
                    "object_size_nm": size,
                    "heuristic_nm": heur,
                    "trend_error_nm": t_err,
                    "trend_error_px": t_err / px,
                    "heuristic_error_nm": h_err,
                    "heuristic_error_px": h_err / px,
                    "status": status,
                }
            )
    return pd.DataFrame(rows, columns=LOO_COLUMNS)


def object_sizes(trials: pd.DataFrame) -> dict[str, float]:
    """Object size (nm) per dataset from its store's provenance: the synthetic generator's
    particle diameter (``generator.diameter_nm``); stores that are absent or real are left
    out (the heuristic then says the size is unknown)."""
    out = {}
    for r in trials.drop_duplicates("dataset").itertuples():
        size = store_object_size(str(r.data_path))
        if np.isfinite(size):
            out[r.dataset] = size
    return out


def store_object_size(path: str) -> float:
    """``generator.diameter_nm`` (or ``simulation.diameter_nm``) of a patch store, NaN when
    absent or unreadable."""
    try:
        from temseg.data.store import read_attrs

        attrs = read_attrs(path)
        gen = attrs.get("generator") or attrs.get("simulation") or {}
        return float(gen.get("diameter_nm", math.nan))
    except Exception:  # no store there, not a store, or no zarr: the size is unknown
        return math.nan
