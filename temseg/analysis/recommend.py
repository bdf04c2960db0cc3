"""Which network to use: per dataset from a sweep, and for a new store from the onset trend.

Two questions, answered from the plateau fits (:mod:`temseg.analysis.plateau`):

1. :func:`recommend`, per dataset of a sweep: the networks whose seed-mean test dice lies
   within (or above) the 95% interval of the dataset's plateau are as good as the plateau;
   among them, the one with the **smallest receptive field** (Eq. 1) and the **cheapest** one
   (fewest parameters, then fewest forward FLOPs per input pixel, then smallest RF). The
   reference plateau is the dataset's highest fitted plateau with a verdict ("rises with RF"
   or "no detectable dependence"). Where the plateau is not inside the tested RFs the answer
   says what that implies instead of naming a plateau network:

   - ``plateau``: a rise that reaches its plateau inside the grid, with an interval;
   - ``onset`` (fewer than 3 seeds, so no interval; or no seed mean inside the interval, as
     when the curve approaches its plateau from below): the tested RFs at or above the onset;
   - ``flat`` (no detectable dependence): the smallest RF tested is as good as any tested;
   - ``above`` (still rising at the largest RF): nothing tested reaches a plateau; the
     largest RF tested is the best available, not enough;
   - ``falls``: dice falls with RF: the smallest RF tested is the best;
   - ``undetermined``: no fit with a verdict: no recommendation.

2. For a new store, the onset trend across contrast and its prediction:
   :mod:`temseg.analysis.onset_prediction`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from temseg.analysis import plateau
from temseg.receptive_field import (
    Architecture,
    forward_flops,
    parameter_count,
    parse_seq,
    pool_product,
)

RECOMMENDATION_COLUMNS = [
    "dataset",
    "contrast",
    "pixel_size_nm",
    "status",
    "reference_num_blocks",
    "reference_strategy",
    "plateau_dice",
    "plateau_dice_lo",
    "plateau_dice_hi",
    "n_candidates",
    "note",
    "smallest_rf_network",
    "smallest_rf_px",
    "smallest_rf_nm",
    "smallest_rf_dice_mean",
    "smallest_rf_dice_std",
    "smallest_rf_n_seeds",
    "cheapest_network",
    "cheapest_rf_px",
    "cheapest_rf_nm",
    "cheapest_n_params",
    "cheapest_mflop_per_px",
    "cheapest_dice_mean",
    "cheapest_dice_std",
    "cheapest_n_seeds",
    "sentence",
]


# --------------------------------------------------------------------------- per dataset


def mflop_per_px(num_blocks: int, pools: tuple[int, ...], dilations: tuple[int, ...]) -> float:
    """Forward MFLOP per input pixel (:func:`temseg.receptive_field.forward_flops` / P^2, which does
    not depend on P: every layer's cost scales with its side squared)."""
    side = pool_product(pools)
    return forward_flops(Architecture(num_blocks, pools, dilations), side) / side**2 / 1e6


def network_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Seed statistics per dataset x network (finished trials): ``network`` (e.g.
    ``N2-p4.4-d1.1.1``), ``rf_px``, ``n_params``, ``mflop_per_px``, ``dice_mean``,
    ``dice_std`` (ddof 1), ``n_seeds``."""
    ok = trials[(trials["status"] == "FINISHED") & np.isfinite(trials["test_hard_dice"])]
    keys = ["dataset", "num_blocks", "pools", "dilations", "rf_px"]
    g = ok.groupby(keys, dropna=False)["test_hard_dice"]
    out = g.agg(dice_mean="mean", dice_std="std", n_seeds="count").reset_index()
    archs = [
        Architecture(int(r.num_blocks), parse_seq(r.pools), parse_seq(r.dilations))
        for r in out.itertuples()
    ]
    out["network"] = [a.name for a in archs]
    out["n_params"] = [parameter_count(a.num_blocks) for a in archs]
    out["mflop_per_px"] = [mflop_per_px(a.num_blocks, a.pools, a.dilations) for a in archs]
    out["rf_px"] = out["rf_px"].astype(float)
    return out


def _series_networks(nets: pd.DataFrame, trials: pd.DataFrame, ref: pd.Series) -> pd.DataFrame:
    """Networks of the reference fit's own series (same membership as the fit)."""
    level = trials[
        (trials["dataset"] == ref["dataset"]) & (trials["num_blocks"] == ref["num_blocks"])
    ]
    members = plateau._strategy_members(level).get(ref["strategy"], level[:0])
    keys = set(zip(members["pools"], members["dilations"], strict=True))
    mask = [
        (r.num_blocks == ref["num_blocks"]) and ((r.pools, r.dilations) in keys)
        for r in nets.itertuples()
    ]
    return nets[np.asarray(mask, dtype=bool)] if len(nets) else nets


def _reference(fits: pd.DataFrame) -> tuple[pd.Series | None, str]:
    usable = fits[fits["verdict"].isin([plateau.RISES, plateau.FLAT])]
    if len(usable):
        ref = usable.sort_values(
            ["plateau_dice", "num_blocks", "strategy"], ascending=[False, True, True]
        ).iloc[0]
        if ref["verdict"] == plateau.FLAT:
            return ref, "flat"
        if ref.get("onset_censored", "") == "above":
            return ref, "above"
        lo = float(ref["plateau_dice_lo"])
        return ref, "plateau" if np.isfinite(lo) else "onset"
    falls = fits[fits["verdict"] == plateau.FALLS]
    if len(falls):
        return falls.sort_values(["num_blocks", "strategy"]).iloc[0], "falls"
    return None, "undetermined"


def recommend(trials: pd.DataFrame, plateaus: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the smallest-RF and the cheapest network as good as the plateau.

    ``trials``: :func:`temseg.analysis.collect.load_runs` output; ``plateaus``:
    :func:`temseg.analysis.plateau.fit_plateaus` output. One row per dataset
    (:data:`RECOMMENDATION_COLUMNS`); see the module docstring for the rule and statuses.
    """
    ok = trials[(trials["status"] == "FINISHED") & np.isfinite(trials["test_hard_dice"])]
    nets = network_table(ok)
    rows = []
    levels = plateaus.drop_duplicates("dataset").sort_values(["contrast", "dataset"])
    for level in levels.itertuples():
        fits = plateaus[plateaus["dataset"] == level.dataset]
        ds_nets = nets[nets["dataset"] == level.dataset]
        ref, status = _reference(fits)
        row = {k: math.nan for k in RECOMMENDATION_COLUMNS}
        row.update(
            dataset=level.dataset,
            contrast=float(level.contrast),
            pixel_size_nm=float(level.pixel_size_nm),
            status=status,
            reference_num_blocks=math.nan if ref is None else int(ref["num_blocks"]),
            reference_strategy="" if ref is None else ref["strategy"],
            smallest_rf_network="",
            cheapest_network="",
            note="",
            n_candidates=0,
        )
        if ref is not None:
            row.update(
                plateau_dice=float(ref["plateau_dice"]),
                plateau_dice_lo=float(ref["plateau_dice_lo"]),
                plateau_dice_hi=float(ref["plateau_dice_hi"]),
            )
            series = _series_networks(ds_nets, ok, ref)
            cands = _candidates(status, ref, ds_nets, series)
            if status == "plateau" and cands.empty:
                # no seed mean reaches the interval (the curve approaches it from below)
                status = row["status"] = "onset"
                row["note"] = "no seed-mean dice reaches the plateau's 95% interval"
                cands = _candidates(status, ref, ds_nets, series)
            row["n_candidates"] = len(cands)
            if len(cands):
                small = cands.sort_values(
                    ["rf_px", "n_params", "mflop_per_px", "dice_mean"],
                    ascending=[True, True, True, False],
                ).iloc[0]
                cheap = cands.sort_values(
                    ["n_params", "mflop_per_px", "rf_px", "dice_mean"],
                    ascending=[True, True, True, False],
                ).iloc[0]
                px = row["pixel_size_nm"]
                for prefix, pick in (("smallest_rf", small), ("cheapest", cheap)):
                    row[f"{prefix}_network"] = pick["network"]
                    row[_rf_key(prefix, "px")] = float(pick["rf_px"])
                    row[_rf_key(prefix, "nm")] = float(pick["rf_px"]) * px
                    row[f"{prefix}_dice_mean"] = float(pick["dice_mean"])
                    row[f"{prefix}_dice_std"] = float(pick["dice_std"])
                    row[f"{prefix}_n_seeds"] = int(pick["n_seeds"])
                row["cheapest_n_params"] = int(cheap["n_params"])
                row["cheapest_mflop_per_px"] = float(cheap["mflop_per_px"])
        row["sentence"] = _sentence(row, ref)
        rows.append(row)
    return pd.DataFrame(rows, columns=RECOMMENDATION_COLUMNS)


def _candidates(
    status: str, ref: pd.Series, nets: pd.DataFrame, series: pd.DataFrame
) -> pd.DataFrame:
    lo = float(ref["plateau_dice_lo"])
    if status == "flat":
        # no detectable dependence: no RF of the series is detectably better than another,
        # so every one qualifies (a seed mean below the interval of the overall mean is
        # not evidence against it: that interval is for the mean, not for each RF)
        return series
    if status == "plateau" and np.isfinite(lo):
        # within the plateau's interval, or above it: as good as the plateau
        return nets[nets["dice_mean"] >= lo]
    if status == "onset":  # no interval: the tested RFs at or above the onset
        rfs = np.sort(series["rf_px"].unique())
        if ref.get("onset_censored", "") == "below" and len(rfs) > 1:
            enough = rfs[1]
        else:
            at_or_above = rfs[rfs >= float(ref["onset_rf_px"])]
            enough = at_or_above.min() if len(at_or_above) else math.nan
        return series[series["rf_px"] >= enough]
    if status == "above":  # nothing reaches a plateau: the best available is the largest RF
        return series[series["rf_px"] == series["rf_px"].max()]
    if status == "falls":
        return series[series["rf_px"] == series["rf_px"].min()]
    return nets[:0]


def _rf_key(prefix: str, unit: str) -> str:
    """``smallest_rf_px`` / ``cheapest_rf_px`` (and ``_nm``)."""
    return f"{prefix}_{unit}" if prefix.endswith("_rf") else f"{prefix}_rf_{unit}"


def _pick_text(row: dict, prefix: str) -> str:
    std = row[f"{prefix}_dice_std"]
    return (
        f"{Architecture.from_name(row[f'{prefix}_network']).label}, "
        f"RF {row[_rf_key(prefix, 'px')]:.0f} px "
        f"({row[_rf_key(prefix, 'nm')]:.2f} nm), dice {row[f'{prefix}_dice_mean']:.3f}"
        + (f" +- {std:.3f}" if np.isfinite(std) else " (one seed)")
        + f" over {row[f'{prefix}_n_seeds']} seed(s)"
    )


def _sentence(row: dict, ref: pd.Series | None) -> str:
    head = f"{row['dataset']} (measured contrast {row['contrast']:.3g}): "
    status = row["status"]
    if ref is None:
        return head + (
            "no recommendation: no plateau fit has a verdict (too few seeds or RFs to tell "
            "a rise from noise)."
        )
    series = f"N={int(ref['num_blocks'])} {ref['strategy']}"
    if not row["smallest_rf_network"]:
        return head + f"no network qualifies ({status}, reference {series})."
    small, cheap = _pick_text(row, "smallest_rf"), _pick_text(row, "cheapest")
    same = row["smallest_rf_network"] == row["cheapest_network"]
    picks = (
        f"smallest RF and cheapest: {small}" if same else f"smallest RF: {small}; cheapest: {cheap}"
    ) + f" ({row['cheapest_n_params']} parameters, {row['cheapest_mflop_per_px']:.4f} MFLOP/px)"
    interval = (
        f"{row['plateau_dice']:.3f} [{row['plateau_dice_lo']:.3f}, {row['plateau_dice_hi']:.3f}]"
    )
    if status == "plateau":
        return head + (
            f"{row['n_candidates']} network(s) have a seed-mean dice within or above the "
            f"plateau's 95% interval ({series}: {interval}); {picks}."
        )
    if status == "flat":
        return head + (
            f"no detectable dependence on RF ({series}): the smallest RF tested is as good "
            f"as any tested; {picks}."
        )
    if status == "onset":
        why = row.get("note") or "the plateau has no interval (fewer than 3 seeds)"
        return head + (
            f"{why}; the tested RFs at or above the fitted onset ({series}: plateau "
            f"{row['plateau_dice']:.3f}) qualify; {picks}."
        )
    if status == "above":
        return head + (
            f"dice is still rising at the largest RF tested ({series}): nothing tested "
            f"reaches a plateau, so no network is known to be enough; the best available is "
            f"the largest RF, {small}. Test larger RFs."
        )
    return head + f"dice falls with RF ({series}): the smallest RF tested is the best; {small}."


# --------------------------------------------------------------------------- registry

VAL_METRIC = "best_val_hard_dice"
_ARCH = ["num_blocks", "pools", "dilations"]
RECOMMENDED_COLUMNS = [
    "dataset",
    "run_id",
    "seed",
    "num_blocks",
    "pools",
    "dilations",
    "rf_px",
    "pixel_size_nm",
    VAL_METRIC,
    "test_hard_dice",
    "reason",
]


def _best_arch(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials of the architecture with the best seed-mean validation dice (ties: fewer
    parameters, then the smaller RF)."""
    means = trials.groupby(_ARCH, dropna=False)[VAL_METRIC].mean().reset_index(name="_mean")
    means = means.merge(trials[_ARCH + ["rf_px", "n_params"]].drop_duplicates(_ARCH), on=_ARCH)
    best = means.sort_values(["_mean", "n_params", "rf_px"], ascending=[False, True, True])
    key = best.iloc[0][_ARCH]
    return trials[(trials[_ARCH] == key.values).all(axis=1)]


def recommended_trials(trials: pd.DataFrame, recommendation: pd.DataFrame) -> pd.DataFrame:
    """The trial whose checkpoint is registered per dataset (:data:`RECOMMENDED_COLUMNS`).

    The network is the report's: the row's ``cheapest_network`` of :func:`recommend` (as
    good as the plateau, fewest parameters and FLOPs). Where the report names none (no
    verdict), the architecture with the best seed-mean validation dice stands in, and the
    ``reason`` says so. Among the network's seeds, the best validation dice wins (ties: the
    lower seed): validation, never test dice, so the test split stays a fair estimate of the
    registered network. ``trials`` needs ``dataset, num_blocks, pools, dilations, rf_px,
    n_params, seed, status, run_id, pixel_size_nm, test_hard_dice`` and
    ``best_val_hard_dice``.
    """
    ok = trials[(trials["status"] == "FINISHED") & np.isfinite(trials[VAL_METRIC].astype(float))]
    picks = {r.dataset: r for r in recommendation.itertuples(index=False)}
    rows = []
    for dataset, ds_trials in ok.groupby("dataset", sort=True):
        rec = picks.get(dataset)
        network = (
            "" if rec is None or not isinstance(rec.cheapest_network, str) else rec.cheapest_network
        )
        names = [
            Architecture(int(t.num_blocks), parse_seq(t.pools), parse_seq(t.dilations)).name
            for t in ds_trials.itertuples(index=False)
        ]
        chosen = ds_trials[np.asarray(names) == network] if network else ds_trials[:0]
        if len(chosen):
            label = Architecture.from_name(network).label
            reason = f"the report's recommendation ({rec.status}): cheapest network {label}"
        else:
            status = "no report row" if rec is None else rec.status
            chosen = _best_arch(ds_trials)
            reason = f"no recommended network ({status}): best seed-mean validation dice"
        best = chosen.sort_values([VAL_METRIC, "seed"], ascending=[False, True]).iloc[0]
        rows.append({**{c: best[c] for c in RECOMMENDED_COLUMNS[:-1]}, "reason": reason})
    return pd.DataFrame(rows, columns=RECOMMENDED_COLUMNS)
