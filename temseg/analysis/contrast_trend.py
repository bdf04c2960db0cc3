"""The onset trend across contrast: ln(onset_nm) = a + b ln(contrast), per (pixel size, N,
strategy).

Fitted by least squares (``scipy.stats.linregress``) over the plateau fits
(:func:`temseg.analysis.plateau.fit_plateaus`) with a measured onset; b < 0 means the onset
falls as contrast rises (the paper's hypothesis). Groups without RF dependence are left out of
the fit and counted (their onset is at most the smallest RF tested).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from temseg.analysis.plateau import FLAT, RISES

TREND_KEYS = ("pixel_size_nm", "num_blocks", "strategy")


def trend_members(group: pd.DataFrame) -> pd.DataFrame:
    """The plateau fits of one trend group that enter the onset regression: a rise whose
    onset lies inside the tested RFs (uncensored, finite) at a positive contrast."""
    c = group["contrast"].astype(float)
    cens = group["onset_censored"] if "onset_censored" in group else pd.Series("none", group.index)
    onset = group["onset_rf_nm"].astype(float)
    return group[(group["verdict"] == RISES) & np.isfinite(onset) & (c > 0) & (cens == "none")]


def onset_trend(plateaus: pd.DataFrame) -> pd.DataFrame:
    """Onset RF (nm) against measured contrast, per (pixel size, N, strategy): a power law.

    ln(onset_rf_nm) = intercept + slope * ln(contrast), least squares over the groups whose
    verdict is a rise with a finite onset and positive contrast. ``slope < 0``: onset falls
    as contrast rises. ``slope_se``/``p_value`` need >= 3 levels (NaN otherwise);
    ``n_flat`` counts levels without RF dependence (onset at most the smallest RF, not in
    the fit). Levels are compared at one pixel size: a contrast series is one sampling, and
    low- and high-resolution data differ in more than contrast (the paper's Figure 2).
    """
    keys = [k for k in TREND_KEYS if k in plateaus.columns]
    rows = []
    for group_key, g in plateaus.groupby(keys, dropna=False):
        key = dict(zip(keys, group_key, strict=True))
        cens = g["onset_censored"] if "onset_censored" in g else pd.Series("none", g.index)
        measured = trend_members(g)
        row = {
            **key,
            "num_blocks": int(key["num_blocks"]),
            "n_levels": len(g),
            "n_with_onset": len(measured),
            "n_flat": int((g["verdict"] == FLAT).sum()),
            # rises whose onset the grid does not resolve: left out of the regression
            "n_censored_above": int(((g["verdict"] == RISES) & (cens == "above")).sum()),
            "n_censored_below": int(((g["verdict"] == RISES) & (cens == "below")).sum()),
            "slope": np.nan,
            "slope_se": np.nan,
            "intercept": np.nan,
            "p_value": np.nan,
            "direction": "undetermined",
        }
        lx = np.log(measured["contrast"].astype(float).to_numpy())
        ly = np.log(measured["onset_rf_nm"].astype(float).to_numpy())
        if len(np.unique(lx)) >= 2:
            if len(lx) >= 3:
                res = stats.linregress(lx, ly)
                slope, icpt = float(res.slope), float(res.intercept)
                row.update(slope_se=float(res.stderr), p_value=float(res.pvalue))
            else:
                slope, icpt = np.polyfit(lx, ly, 1)
            row.update(slope=float(slope), intercept=float(icpt))
            word = "falls" if slope < 0 else "rises"
            sig = row["p_value"] < 0.05 if np.isfinite(row["p_value"]) else False
            row["direction"] = f"onset {word} as contrast rises" + (
                "" if sig else " (not significant)" if len(lx) >= 3 else " (2 levels, no test)"
            )
        rows.append(row)
    return pd.DataFrame(rows)
