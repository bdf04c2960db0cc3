"""The study's answer in words: per contrast level, how much a larger receptive field gains,
with its 95 % interval, where the gain stops, and which tested RF is enough.

Pure pandas on the per-trial table (:func:`temseg.analysis.collect.load_runs`) and the plateau
fits (:func:`temseg.analysis.plateau.fit_plateaus`); the report and the sweep's last lines put
these sentences first.

Definitions (one place, used by the report and the README's numbers):

- seeds agreeing: per seed, dice at the largest tested RF minus dice at the smallest (seeds
  are paired: one seed gives every architecture the same initial state, data order and
  augmentation); "k of n seeds gain" counts those above zero. ``observed_gain`` is their
  mean, with the 2.5-97.5 % interval of a bootstrap over seeds (coarse with 3 seeds), and
  over the test images too where every trial logged its per-image counts
  (:mod:`temseg.analysis.image_bootstrap`; ``interval_over`` says which).
- gain: where the plateau is reached inside the tested RFs, the plateau fit's gain (dice at
  the plateau minus at the smallest RF) with its bootstrap interval (the fit's); where
  the curve is still rising at the largest RF (onset censored "above"), the fitted plateau is
  an extrapolation, so the answer gives the observed gain instead, as "at least".
- where the plateau starts: the fitted onset (95 % of the gain) with its interval when it lies
  inside the tested RFs; "beyond the largest RF" (still rising) or "by the second RF" (not
  resolved by the grid), with no number, otherwise.
- enough RF: the smallest tested RF at or above the onset ("none": the onset; "below": the
  second RF); none when the curve is still rising (the largest tested RF is then the best
  available, not a plateau).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from temseg.analysis import image_bootstrap, plateau, plateau_bootstrap
from temseg.analysis.image_bootstrap import ImageCounts

ANSWER_COLUMNS = [
    "dataset",
    "contrast",
    "pixel_size_nm",
    "num_blocks",
    "strategy",
    "verdict",
    "gain",
    "gain_lo",
    "gain_hi",
    "observed_gain",
    "observed_gain_lo",
    "observed_gain_hi",
    "n_seeds",
    "n_seeds_gaining",
    "seed_gains",
    "onset_censored",
    "onset_rf_px",
    "onset_rf_px_lo",
    "onset_rf_px_hi",
    "enough_rf_px",
    "enough_rf_nm",
    "enough_dice_mean",
    "enough_dice_std",
    "plateau_dice",
    "plateau_dice_lo",
    "plateau_dice_hi",
    "resolvable_gain",
    "interval_over",
    "sentence",
]


def still_improving(trials: pd.DataFrame, histories: pd.DataFrame | None = None) -> pd.DataFrame:
    """Finished trials whose best validation epoch is their last: training may not have
    converged (raise ``--epochs``); their dice may understate what the architecture can do.

    With ``histories`` (:func:`temseg.analysis.collect.load_histories` of ``val_hard_dice``)
    the column ``last_epoch_gain`` says by how much the last epoch beat every earlier one: a
    few thousandths at the end of a decayed learning rate is convergence, not a trend.
    """
    done = trials[(trials["status"] == "FINISHED") & np.isfinite(trials["best_epoch"])]
    last = done[done["best_epoch"].astype(float) >= done["epochs"].astype(float)].copy()
    last["last_epoch_gain"] = math.nan
    if histories is not None and len(last):
        val = histories[histories["metric"] == "val_hard_dice"]
        for i, r in last.iterrows():
            h = val[val["run_id"] == r["run_id"]].sort_values("step")["value"].to_numpy()
            if len(h) >= 2:
                last.loc[i, "last_epoch_gain"] = float(h[-1] - h[:-1].max())
    return last


def _seed_gains(members: pd.DataFrame, dice: np.ndarray | None = None) -> np.ndarray:
    """Per seed with both RFs: dice at the largest RF minus dice at the smallest, (R, seeds)
    for R rows of per-trial ``dice`` (columns in ``members``' row order; default its test
    dice, R = 1)."""
    y = members["test_hard_dice"].to_numpy(float)[None, :] if dice is None else dice
    rf, seeds = members["rf_px"].to_numpy(), members["seed"].to_numpy()
    out = []
    for s in np.unique(seeds):
        a, b = (seeds == s) & (rf == rf.min()), (seeds == s) & (rf == rf.max())
        if a.any() and b.any():
            out.append(y[:, b].mean(axis=1) - y[:, a].mean(axis=1))
    return np.stack(out, axis=1) if out else np.zeros((len(y), 0))


def _observed_gain(
    members: pd.DataFrame, counts: ImageCounts | None, n_boot: int = 2000
) -> tuple[float, float, float]:
    """Seed mean of the per-seed gains and the 2.5-97.5 % interval of a bootstrap over the
    seeds, jointly over the test images where ``counts`` are given (the same image draw for
    every trial of a replicate: :mod:`temseg.analysis.image_bootstrap`)."""
    v = _seed_gains(members)[0]
    if not len(v):
        return math.nan, math.nan, math.nan
    if len(v) < plateau_bootstrap.MIN_SEEDS_INTERVAL:
        return float(v.mean()), math.nan, math.nan
    gen = np.random.default_rng(0)
    draws = gen.integers(0, len(v), size=(n_boot, len(v)))
    y = members["test_hard_dice"].to_numpy(float)
    per_draw = _seed_gains(members, image_bootstrap.replicate_dice(y, counts, n_boot, gen)[0])
    lo, hi = np.percentile(np.take_along_axis(per_draw, draws, axis=1).mean(axis=1), [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def _px_nm(px: float, pixel_size: float) -> str:
    return f"{px:.0f} px ({px * pixel_size:.2f} nm)"


def _level_name(row: pd.Series) -> str:
    return f"{row['dataset']} (measured contrast {float(row['contrast']):.3g})"


def level_answers(
    trials: pd.DataFrame, plateaus: pd.DataFrame, images: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per plateau fit: the answer's numbers and its sentence (see module docstring).

    ``images`` (:func:`temseg.analysis.collect.load_test_images`): the observed gain's
    interval then resamples test images too, as the fits given were made with them."""
    ok = trials[(trials["status"] == "FINISHED") & np.isfinite(trials["test_hard_dice"])]
    rows = []
    for p in plateaus.itertuples(index=False):
        p = pd.Series(p._asdict())
        level = ok[(ok["dataset"] == p["dataset"]) & (ok["num_blocks"] == p["num_blocks"])]
        # the same membership as the fit (a dilation series starts at its undilated network)
        g = plateau._strategy_members(level).get(p["strategy"], level[:0])
        if g.empty:
            continue
        px = float(p["pixel_size_nm"])
        means = g.groupby("rf_px")["test_hard_dice"].agg(["mean", "std", "count"]).sort_index()
        gains = _seed_gains(g)[0]
        censored = p.get("onset_censored", "")
        rfs = means.index.to_numpy(dtype=float)
        if censored == "none":
            enough_rf = float(rfs[rfs >= p["onset_rf_px"]].min())
        elif censored == "below" and len(rfs) > 1:
            enough_rf = float(rfs[1])
        else:
            enough_rf = math.nan
        enough = means.loc[[enough_rf]] if np.isfinite(enough_rf) else means[:0]
        obs, obs_lo, obs_hi = _observed_gain(g, image_bootstrap.counts_for(g, images))
        t_crit = (
            float(plateau.stats.t.ppf((1 + plateau.CONFIDENCE) / 2, p["dof"]))
            if p["dof"] > 0
            else math.nan
        )
        row = {
            **{k: p[k] for k in ("dataset", "contrast", "pixel_size_nm", "num_blocks")},
            "strategy": p["strategy"],
            "verdict": p["verdict"],
            "gain": p["gain"],
            "gain_lo": p["gain_lo"],
            "gain_hi": p["gain_hi"],
            "observed_gain": obs,
            "observed_gain_lo": obs_lo,
            "observed_gain_hi": obs_hi,
            "n_seeds": len(gains),
            "n_seeds_gaining": int(sum(v > 0 for v in gains)),
            "seed_gains": " ".join(f"{v:+.3f}" for v in gains),
            "onset_censored": censored,
            "onset_rf_px": p["onset_rf_px"],
            "onset_rf_px_lo": p["onset_rf_px_lo"],
            "onset_rf_px_hi": p["onset_rf_px_hi"],
            "enough_rf_px": float(enough.index[0]) if len(enough) else math.nan,
            "enough_rf_nm": float(enough.index[0]) * px if len(enough) else math.nan,
            "enough_dice_mean": float(enough["mean"].iloc[0]) if len(enough) else math.nan,
            "enough_dice_std": float(enough["std"].iloc[0]) if len(enough) else math.nan,
            "plateau_dice": p["plateau_dice"],
            "plateau_dice_lo": p["plateau_dice_lo"],
            "plateau_dice_hi": p["plateau_dice_hi"],
            "resolvable_gain": t_crit * p["gain_se"] if np.isfinite(t_crit) else math.nan,
            "interval_over": p.get("interval_over", "") or "",
        }
        row["sentence"] = _sentence(row, p, means)
        rows.append(row)
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


INTERVAL_WORDS = {  # what an interval resamples, as the sentences say it
    image_bootstrap.SEEDS_ONLY: "95% seed interval",
    image_bootstrap.SEEDS_AND_IMAGES: "95% interval over seeds and test images",
}


def _interval(lo: float, hi: float, fmt: str, over: str) -> str:
    if np.isfinite(lo) and np.isfinite(hi):
        return f" [{INTERVAL_WORDS.get(over, '95% interval')} {lo:{fmt}}, {hi:{fmt}}]"
    return " (no interval: fewer than 3 seeds)"


def _sentence(row: dict, p: pd.Series, means: pd.DataFrame) -> str:
    px = float(p["pixel_size_nm"])
    rf_min, rf_max = float(means.index.min()), float(means.index.max())
    rf_2 = float(means.index[1]) if len(means) > 1 else rf_max
    head = f"{_level_name(p)}, N={p['num_blocks']} {p['strategy']}: "
    seeds = (
        f"{row['n_seeds_gaining']} of {row['n_seeds']} seeds gain from "
        f"{rf_min:.0f} to {rf_max:.0f} px ({row['seed_gains']})"
        if row["n_seeds"]
        else "no seed has both the smallest and the largest RF"
    )
    verdict = row["verdict"]
    if verdict == plateau.FLAT:
        res = row["resolvable_gain"]
        return (
            head
            + f"no detectable dependence on RF (gain {row['gain']:+.3f}"
            + _interval(row["gain_lo"], row["gain_hi"], "+.3f", row["interval_over"])
            + (
                f"; gains below {res:.3f} are not resolvable with these seeds"
                if np.isfinite(res)
                else ""
            )
            + f"); {seeds}. No RF tested is detectably better than the smallest, "
            + f"{_px_nm(rf_min, px)}."
        )
    if verdict == plateau.UNDETERMINED:
        return (
            head
            + f"undetermined ({p['note'] or 'too few seeds or RFs'}); dice "
            + f"{means['mean'].iloc[0]:.3f} at {_px_nm(rf_min, px)} and "
            + f"{means['mean'].iloc[-1]:.3f} at {_px_nm(rf_max, px)}; {seeds}."
        )
    word = "rises" if verdict == plateau.RISES else "falls"
    censored = row["onset_censored"]
    if censored == "above":
        return (
            head
            + f"dice {word} with RF and is still {'rising' if word == 'rises' else 'falling'} "
            + f"at the largest RF tested, {_px_nm(rf_max, px)}: a gain of at least "
            + f"{row['observed_gain']:+.3f}"
            + _interval(
                row["observed_gain_lo"], row["observed_gain_hi"], "+.3f", row["interval_over"]
            )
            + f" from {_px_nm(rf_min, px)} (dice {means['mean'].iloc[0]:.3f} -> "
            + f"{means['mean'].iloc[-1]:.3f}); {seeds}. The plateau lies beyond the RFs "
            + "tested (the fitted one is an extrapolation): no tested RF is enough, the largest "
            + "is the best available; test larger RFs."
        )
    text = (
        head
        + f"dice {word} with RF by {row['gain']:+.3f}"
        + _interval(row["gain_lo"], row["gain_hi"], "+.3f", row["interval_over"])
        + f" from {_px_nm(rf_min, px)} to a plateau of {row['plateau_dice']:.3f}"
        + (
            f" [{row['plateau_dice_lo']:.3f}, {row['plateau_dice_hi']:.3f}]"
            if np.isfinite(row["plateau_dice_lo"])
            else ""
        )
    )
    if censored == "none":
        lo, hi = row["onset_rf_px_lo"], row["onset_rf_px_hi"]
        text += f", reached at {_px_nm(row['onset_rf_px'], px)}" + (
            f" [{lo:.0f}, {hi:.0f} px]" if np.isfinite(lo) and np.isfinite(hi) else ""
        )
    elif censored == "below":
        text += f", reached by the second RF tested ({_px_nm(rf_2, px)}; not resolved further)"
    text += f"; {seeds}."
    if np.isfinite(row["enough_rf_px"]) and verdict == plateau.RISES:
        text += (
            f" Enough: RF {_px_nm(row['enough_rf_px'], px)}, dice "
            f"{row['enough_dice_mean']:.3f}"
            + (f" +- {row['enough_dice_std']:.3f}" if np.isfinite(row["enough_dice_std"]) else "")
            + " (seed mean +- sd)."
        )
    return text
