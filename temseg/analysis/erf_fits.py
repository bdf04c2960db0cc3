"""Dice against the effective receptive field: does dice track the ERF more tightly than RF?

Each finished trial logs the effective receptive field of its best checkpoint
(:mod:`temseg.erf`: ``erf95_px``, the radius of the disc holding 95% of the input-gradient
mass at the patch centre). Its diameter, ``2 * erf95_px``, is on the scale of the receptive
field, so the plateau model of :mod:`temseg.analysis.plateau` can be fitted against it in
place of RF (Eq. 1). Both fits are made on the same trials (those with an ERF), and their
fit residual standard deviations, sqrt(SSE / (n - 3)), are compared: the smaller one is the
coordinate dice follows more tightly. The RF coordinate takes one value per architecture,
the ERF one value per trial (seeds of one architecture differ), so only this residual
measure, not the seed-noise sigma of the RF fit, is comparable between the two.

Runs logged before temseg measured the ERF have NaN there and are left out (and counted).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from temseg.analysis import plateau

ERF_FIT_COLUMNS = [
    "dataset",
    "contrast",
    "pixel_size_nm",
    "num_blocks",
    "strategy",
    "n_trials",
    "n_without_erf",
    "verdict_rf",
    "verdict_erf",
    "sigma_rf",
    "sigma_erf",
    "onset_erf_px",
    "onset_erf_censored",
    "tracks",
    "sentence",
]
TIE = 0.05  # residual sds within 5% of each other: neither coordinate is tighter


def erf_diameter(trials: pd.DataFrame) -> pd.Series:
    """``2 * erf95_px`` per trial (NaN where the run has no ERF metric)."""
    if "erf95_px" not in trials:
        return pd.Series(np.nan, index=trials.index)
    return 2.0 * pd.to_numeric(trials["erf95_px"], errors="coerce").astype(float)


def residual_sd(fit: plateau.PlateauFit, x: np.ndarray, y: np.ndarray) -> float:
    """sqrt(SSE / (n - 3)) of a plateau fit on its points (NaN without a fitted curve)."""
    if len(y) <= 3:
        return math.nan
    r = y - fit.predict(x)
    if not np.all(np.isfinite(r)):
        return math.nan
    return math.sqrt(float(r @ r) / (len(y) - 3))


def erf_fits(trials: pd.DataFrame, *, n_boot: int = 0, rng: int = 0) -> pd.DataFrame:
    """One row per (dataset, N, strategy): plateau fits of dice against RF and against ERF
    diameter on the same trials, their residual sds and which one dice tracks more tightly."""
    done = trials[(trials["status"] == "FINISHED") & np.isfinite(trials["test_hard_dice"])]
    done = done.assign(erf_diameter_px=erf_diameter(done))
    rows = []
    for group, g in plateau.rf_series(done):
        has = g[np.isfinite(g["erf_diameter_px"]) & (g["erf_diameter_px"] > 0)]
        row = {**group, "n_trials": len(has), "n_without_erf": len(g) - len(has)}
        y = has["test_hard_dice"].astype(float).to_numpy()
        seeds = has["seed"].to_numpy()
        x_rf = has["rf_px"].astype(float).to_numpy()
        x_erf = has["erf_diameter_px"].to_numpy()
        fit_rf = plateau.fit_plateau(x_rf, y, seeds, n_boot=n_boot, rng=rng)
        fit_erf = plateau.fit_plateau(x_erf, y, seeds, n_boot=n_boot, rng=rng)
        row.update(
            verdict_rf=fit_rf.verdict,
            verdict_erf=fit_erf.verdict,
            sigma_rf=residual_sd(fit_rf, x_rf, y),
            sigma_erf=residual_sd(fit_erf, x_erf, y),
            onset_erf_px=fit_erf.onset_rf_px if fit_erf.onset_censored == "none" else math.nan,
            onset_erf_censored=fit_erf.onset_censored,
        )
        row["tracks"] = _tracks(row["sigma_rf"], row["sigma_erf"])
        row["sentence"] = _sentence(row)
        rows.append(row)
    return pd.DataFrame(rows, columns=ERF_FIT_COLUMNS)


def _tracks(sigma_rf: float, sigma_erf: float) -> str:
    if not (np.isfinite(sigma_rf) and np.isfinite(sigma_erf)):
        return "undetermined"
    if abs(sigma_erf - sigma_rf) <= TIE * max(sigma_rf, sigma_erf):
        return "equally"
    return "erf" if sigma_erf < sigma_rf else "rf"


def _sentence(row: dict) -> str:
    head = f"{row['dataset']}, N={row['num_blocks']} {row['strategy']}: "
    if row["n_trials"] == 0:
        return head + "no trial has ERF metrics (runs logged before temseg measured them)."
    sds = f"residual sd {row['sigma_erf']:.4f} against ERF, {row['sigma_rf']:.4f} against RF"
    n = f" over {row['n_trials']} trial(s)"
    if row["tracks"] == "undetermined":
        return head + f"no comparison (too few trials or RFs for both fits{n})."
    word = {
        "erf": "dice tracks the ERF more tightly than the theoretical RF",
        "rf": "dice tracks the theoretical RF more tightly than the ERF",
        "equally": f"dice tracks ERF and RF equally (residual sds within {TIE:.0%})",
    }[row["tracks"]]
    return head + f"{word}: {sds}{n}."
