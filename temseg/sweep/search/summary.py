"""The outcome of a search, in numbers and words: Pareto front, recommendation, compute
against a grid, the summary table, and the files a search writes. Pure except the writer."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from temseg.receptive_field import (
    Architecture,
    network_label,
    parse_seq,
    train_gflop,
)
from temseg.sweep.search.space import COST_METRIC, COST_WORDS, SearchConfig
from temseg.tables import print_table


def pareto_front(rows: Sequence[Mapping[str, Any]], *, dice: str, cost: str) -> list[dict]:
    """Rows not dominated in (higher ``dice``, lower ``cost``), cheapest first.

    Examples
    --------
    >>> rows = [{"d": 0.9, "c": 3}, {"d": 0.8, "c": 1}, {"d": 0.7, "c": 2}]
    >>> [r["c"] for r in pareto_front(rows, dice="d", cost="c")]
    [1, 3]
    """
    rows = [dict(r) for r in rows if is_finite(r.get(dice)) and is_finite(r.get(cost))]
    front = []
    for r in rows:
        dominated = any(
            o[dice] >= r[dice] and o[cost] <= r[cost] and (o[dice] > r[dice] or o[cost] < r[cost])
            for o in rows
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (r[cost], -r[dice]))


def cheapest_within(
    rows: Sequence[Mapping[str, Any]],
    *,
    dice: str,
    cost: str,
    tolerance: float = 0.01,
    tiebreak: Sequence[str] = (),
) -> dict | None:
    """The cheapest row whose ``dice`` is within ``tolerance`` of the best one.

    Ties in cost go to the higher dice, then to the lower values of ``tiebreak`` columns.

    Examples
    --------
    >>> rows = [{"d": 0.90, "c": 3}, {"d": 0.895, "c": 1}, {"d": 0.80, "c": 0.5}]
    >>> cheapest_within(rows, dice="d", cost="c", tolerance=0.01)
    {'d': 0.895, 'c': 1}
    """
    ok = [dict(r) for r in rows if is_finite(r.get(dice)) and is_finite(r.get(cost))]
    if not ok:
        return None
    best = max(r[dice] for r in ok)
    within = [r for r in ok if r[dice] >= best - tolerance - 1e-12]
    return min(within, key=lambda r: (r[cost], -r[dice], *(r.get(k, 0) for k in tiebreak)))


def is_finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _epoch_seconds(rows: Sequence[Mapping[str, Any]], events: Sequence[tuple]) -> float | None:
    """The sum of the recorded ``epoch_seconds`` of ``events``; None if any lacks one."""
    per_run = {r["run_id"]: r.get("epoch_seconds") or {} for r in rows}
    out = []
    for e in events:
        value = per_run.get(e[1], {}).get(e[2])
        if value is None:
            return None
        out.append(value)
    return math.fsum(out)


def incumbent_to_reach(
    rows: Sequence[Mapping[str, Any]],
    events: Sequence[tuple],
    threshold: float,
    *,
    max_epochs: int,
) -> dict[str, Any]:
    """The search's compute until its incumbent first had test dice >= ``threshold``.

    The definitions of the replay (:mod:`temseg.sweep.search.replay`): the incumbent is the trial
    with the highest best validation dice among those trained to ``max_epochs``
    (``status`` finished), in the order they finished (``end_ms``; ties keep the earlier);
    its test dice is the run's final ``test_hard_dice`` (test at its best-validation epoch).
    At t*, the end of the run that made the first incumbent within reach: trial-epochs =
    epochs logged by any run at or before t*; trial-seconds = the sum of those epochs'
    recorded ``epoch_seconds`` (rows' ``epoch_seconds``; for runs without them, the part of
    each run's [start, end] before t*); wall seconds = t* - the
    first start. Sequentially, with one trial at a time, this is exactly the replay's count.
    ``reached`` False: the totals of the whole search.

    Examples
    --------
    >>> rows = [{"run_id": "a", "start_ms": 0, "end_ms": 2000, "status": "finished",
    ...          "epochs": 2, "best_val_dice": 0.8, "test_hard_dice": 0.7,
    ...          "epoch_seconds": {1: 1.0, 2: 1.0}},
    ...         {"run_id": "b", "start_ms": 2000, "end_ms": 3000, "status": "stopped",
    ...          "epochs": 1, "best_val_dice": 0.9, "test_hard_dice": float("nan"),
    ...          "epoch_seconds": {1: 1.0}},
    ...         {"run_id": "c", "start_ms": 3000, "end_ms": 5000, "status": "finished",
    ...          "epochs": 2, "best_val_dice": 0.85, "test_hard_dice": 0.8,
    ...          "epoch_seconds": {1: 0.5, 2: 1.5}}]
    >>> ev = [(1000, "a", 1, 0.7), (2000, "a", 2, 0.8), (3000, "b", 1, 0.9),
    ...       (4000, "c", 1, 0.8), (5000, "c", 2, 0.85)]
    >>> r = incumbent_to_reach(rows, ev, 0.75, max_epochs=2)
    >>> r["reached"], r["run_id"], r["trial_epochs"], r["trial_seconds"], r["wall_seconds"]
    (True, 'c', 5, 5.0, 5.0)
    """
    events = sorted(events)
    if not rows:
        return {"reached": False, "trial_epochs": 0, "trial_seconds": 0.0, "wall_seconds": 0.0}
    t0 = min(r["start_ms"] for r in rows)
    last = {}
    for e in events:
        last[e[1]] = max(last.get(e[1], e[0]), e[0])
    done = [
        r
        for r in rows
        if r["status"] == "finished"
        and int(r["epochs"]) >= max_epochs
        and is_finite(r["best_val_dice"])
    ]
    done.sort(key=lambda r: (max(r["end_ms"], last.get(r["run_id"], 0)), r["start_ms"]))
    incumbent, hit = None, None
    for r in done:
        if incumbent is None or r["best_val_dice"] > incumbent["best_val_dice"]:
            incumbent = r
        if (
            is_finite(incumbent["test_hard_dice"])
            and incumbent["test_hard_dice"] >= threshold - 1e-12
        ):
            hit = incumbent
            break
    reached = hit is not None
    if reached:
        t_star = max(hit["end_ms"], last.get(hit["run_id"], 0))
    else:
        t_star = max([r["end_ms"] for r in rows] + [e[0] for e in events])
    until = [e for e in events if e[0] <= t_star]
    seconds = _epoch_seconds(rows, until)
    if seconds is None:
        seconds = sum(max(0, min(r["end_ms"], t_star) - r["start_ms"]) for r in rows) / 1000
    out = {
        "reached": reached,
        "trial_epochs": len(until),
        "trial_seconds": float(seconds),
        "wall_seconds": float((t_star - t0) / 1000),
    }
    if reached:
        out["run_id"], out["epoch"], out["value"] = (
            hit["run_id"],
            int(hit["epochs"]),
            float(hit["test_hard_dice"]),
        )
    return out


def compare_with_grid(
    rows: Sequence[Mapping[str, Any]],
    events: Sequence[tuple],
    grid: Mapping[str, Any],
    *,
    tolerance: float,
    max_epochs: int | None = None,
) -> dict[str, Any]:
    """Search compute to come within ``tolerance`` of the grid's best, as grid fractions.

    The replay's accounting (:mod:`temseg.sweep.search.replay`): the target is the grid's best
    architecture's seed-mean test dice (:func:`temseg.sweep.search.grid_summary`) less
    ``tolerance``, reached when the search's incumbent's test dice first gets there
    (:func:`incumbent_to_reach`); the grid's compute is every trial-epoch it logged and the sum
    of their ``epoch_seconds``.
    """
    threshold = grid["best"]["test_dice_mean"] - tolerance
    if max_epochs is None:
        max_epochs = grid["best"]["epochs"]
    reach = incumbent_to_reach(rows, events, threshold, max_epochs=max_epochs)
    total = incumbent_to_reach(rows, events, math.inf, max_epochs=max_epochs)  # never reached

    def frac(a: float, b: float) -> float:
        return float(a / b) if b else float("nan")

    return {
        "threshold": threshold,
        "tolerance": tolerance,
        **reach,
        "fraction_trial_epochs": frac(reach["trial_epochs"], grid["trial_epochs"]),
        "fraction_trial_seconds": frac(reach["trial_seconds"], grid["trial_seconds"]),
        "fraction_wall_seconds": frac(reach["wall_seconds"], grid["wall_seconds"]),
        "search_total": {k: total[k] for k in ("trial_epochs", "trial_seconds", "wall_seconds")},
        "grid": {k: grid[k] for k in ("trial_epochs", "trial_seconds", "wall_seconds")},
    }


def summarize_study(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: Any,
    scfg: SearchConfig,
    study: str,
    max_epochs: int,
) -> dict[str, Any]:
    """Trial table with costs, Pareto front and recommendation of one finished search.

    The front and the recommendation use the trials trained to ``max_epochs`` (an early
    stopped trial's dice is that of a shorter training); cost is ``scfg.cost``, ties broken
    by training FLOPs, then RF.
    """
    table = []
    for r in rows:
        arch = Architecture(
            int(r["num_blocks"]),
            parse_seq(str(r["pools"])),
            parse_seq(str(r["dilations"])),
        )
        table.append(
            {
                **{k: r[k] for k in ("run_name", "num_blocks", "pools", "dilations")},
                "architecture": arch.name,
                "rf_px": r["rf_px"],
                "rf_nm": r["rf_nm"],
                "n_params": r["n_params"],
                "train_gflop": round(train_gflop(arch, dataset.patch_size), 4),
                "epochs": r["epochs"],
                "best_val_dice": r["best_val_dice"],
                "test_hard_dice": r["test_hard_dice"],
                "status": r["status"],
            }
        )
    cost = COST_METRIC[scfg.cost]
    full = [t for t in table if t["status"] == "finished" and t["epochs"] >= max_epochs]
    front = pareto_front(full, dice="best_val_dice", cost=cost)
    rec = cheapest_within(
        full,
        dice="best_val_dice",
        cost=cost,
        tolerance=scfg.tolerance,
        tiebreak=("train_gflop", "rf_px"),
    )
    best = max(full, key=lambda t: (t["best_val_dice"], -t["rf_px"]), default=None)
    return {
        "dataset": dataset.name,
        "data_path": dataset.path,
        "pixel_size_nm": dataset.pixel_size_nm,
        "patch_size": dataset.patch_size,
        "study": study,
        "objective": scfg.objective,
        "cost": scfg.cost,
        "tolerance": scfg.tolerance,
        "max_epochs": max_epochs,
        "trained": len(table),
        "finished": len(full),
        "stopped": sum(t["status"] == "stopped" for t in table),
        "failed": sum(t["status"] in ("failed", "running") for t in table),
        "trials": table,
        "pareto_front": front,
        "best": best,
        "recommended": rec,
    }


def answer_in_words(summary: Mapping[str, Any], comparison: Mapping[str, Any] | None = None) -> str:
    """The best-RF answer of one search in plain words."""
    ds, px = summary["dataset"], summary["pixel_size_nm"]
    rec, best = summary["recommended"], summary["best"]
    if rec is None:
        return (
            f"On {ds}: no trial finished its {summary['max_epochs']} epochs, so the search "
            "has no answer yet (see the trial table)."
        )
    cost_words = COST_WORDS[summary["cost"]]
    cost_val = rec[COST_METRIC[summary["cost"]]]
    if summary["cost"] == "flops":
        other = f"{rec['n_params']} parameters"
    else:
        other = f"{rec['train_gflop']:g} training GFLOP per patch"

    def arch_words(t: Mapping[str, Any]) -> str:
        return network_label(t["num_blocks"], t["pools"], t["dilations"])

    lines = [
        f"On {ds} ({px:g} nm/px, {summary['patch_size']} px patches): use {arch_words(rec)}, "
        f"a receptive field of {rec['rf_px']} px = {rec['rf_px'] * px:.3g} nm. It reached "
        f"validation dice {rec['best_val_dice']:.4f} (test {rec['test_hard_dice']:.4f}) in "
        f"{summary['max_epochs']} epochs at {cost_val:g} {cost_words} ({other}): the cheapest "
        f"of the {summary['finished']} fully trained architectures within "
        f"{summary['tolerance']:g} of the best."
    ]
    if best is not None and best["architecture"] != rec["architecture"]:
        lines.append(
            f"The best validation dice, {best['best_val_dice']:.4f}, came from "
            f"{arch_words(best)} (RF {best['rf_px']} px = {best['rf_px'] * px:.3g} nm), which "
            f"costs {best[COST_METRIC[summary['cost']]]:g} {cost_words}."
        )
    if comparison is not None:
        g = comparison["grid_best"]
        diff = rec["test_hard_dice"] - g["test_dice_mean"]
        lines.append(
            f"The grid's best on this dataset was {arch_words(g)} (RF {g['rf_px']} px = "
            f"{g['rf_nm']:.3g} nm), mean test dice {g['test_dice_mean']:.4f} over "
            f"{g['n_seeds']} seed(s) (validation {g['val_dice_mean']:.4f}); the recommendation's "
            f"test dice is {abs(diff):.4f} {'above' if diff >= 0 else 'below'} it"
            + (
                f" and {'the same' if rec['rf_px'] == g['rf_px'] else 'a ' + ('smaller' if rec['rf_px'] < g['rf_px'] else 'larger')} receptive field."
            )
        )
        c = comparison
        if c["reached"]:
            lines.append(
                f"The search's best network (by validation) first had test dice within "
                f"{c['tolerance']:g} of the grid's best after "
                f"{c['trial_epochs']} trial-epochs ({c['fraction_trial_epochs']:.0%} of the "
                f"grid's {c['grid']['trial_epochs']}), {c['trial_seconds']:.0f} trial-seconds "
                f"({c['fraction_trial_seconds']:.0%}) and {c['wall_seconds']:.0f} s of wall time "
                f"({c['fraction_wall_seconds']:.0%})."
            )
        else:
            lines.append(
                f"The search's best network (by validation) never had test dice within "
                f"{c['tolerance']:g} of the grid's best; it used "
                f"{c['trial_epochs']} trial-epochs ({c['fraction_trial_epochs']:.0%} of the grid's)."
            )
    return "\n".join(lines)


def seeds_overview(summaries: Sequence[Mapping[str, Any]]) -> str:
    """Fractions of the grid's compute per dataset and search seed, with mean and range."""
    lines = [
        "fraction of the grid's compute the search needed to come within "
        f"{summaries[0]['tolerance']:g} of the grid's best:"
    ]
    rows = []
    for s in summaries:
        c = s.get("comparison")
        if not c:
            continue
        rows.append(
            {
                "dataset": s["dataset"],
                "seed": s["seed"],
                "reached": c["reached"],
                "trial_epochs": f"{c['trial_epochs']}/{c['grid']['trial_epochs']}",
                "frac_epochs": c["fraction_trial_epochs"],
                "frac_trial_s": c["fraction_trial_seconds"],
                "frac_wall": c["fraction_wall_seconds"],
            }
        )
    import io

    buf = io.StringIO()
    print_table(rows, list(rows[0]) if rows else [], file=buf)
    lines.append(buf.getvalue().rstrip())
    for key, words in (
        ("frac_epochs", "trial-epochs"),
        ("frac_trial_s", "trial-seconds"),
        ("frac_wall", "wall time"),
    ):
        vals = [r[key] for r in rows if r["reached"]]
        if vals:
            lines.append(
                f"{words}: mean {sum(vals) / len(vals):.0%} (range {min(vals):.0%}-"
                f"{max(vals):.0%}) over {len(vals)} search(es) that reached it"
            )
    missed = sum(not r["reached"] for r in rows)
    if missed:
        lines.append(f"{missed} search(es) never came within the tolerance")
    return "\n".join(lines)


TABLE_COLS = (
    "architecture",
    "rf_px",
    "rf_nm",
    "n_params",
    "train_gflop",
    "epochs",
    "best_val_dice",
    "test_hard_dice",
    "status",
)


def print_summary(summary: Mapping[str, Any]) -> None:
    print(
        f"\n{summary['study']}: {summary['trained']} architectures trained, "
        f"{summary['finished']} to {summary['max_epochs']} epochs, {summary['stopped']} stopped "
        f"early, {summary['failed']} failed"
        + (
            f" ({summary['warm_started']} of them told from --warm-start, not retrained)"
            if summary.get("warm_started")
            else ""
        ),
        flush=True,
    )
    print_table(sorted(summary["trials"], key=lambda t: (t["num_blocks"], t["rf_px"])), TABLE_COLS)
    cost = COST_METRIC[summary["cost"]]
    if summary["pareto_front"]:
        print(f"\nPareto front (validation dice up, {COST_WORDS[summary['cost']]} down):")
        print_table(summary["pareto_front"], ("architecture", "rf_px", cost, "best_val_dice"))
    print("\n" + summary["answer"], flush=True)
    print(f"report: {summary['report_dir']}", flush=True)


def write_summary(summary: Mapping[str, Any], out_dir: Path) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", summary["study"])
    path = Path(out_dir) / safe
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(_plain(summary), indent=2))
    (path / "answer.md").write_text(summary["answer"] + "\n")
    import csv

    cols = list(TABLE_COLS) + ["run_name"]
    with open(path / "trials.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(summary["trials"])
    return path


def _plain(v: Any) -> Any:
    """JSON-ready copy: numpy scalars cast, NaN as null."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
