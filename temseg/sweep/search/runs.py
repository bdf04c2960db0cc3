"""Reading a search and a grid back from MLflow (through :mod:`temseg.analysis.collect`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from temseg.receptive_field import (
    Architecture,
    parse_seq,
)
from temseg.sweep.search.space import SEARCH_METHOD
from temseg.sweep.search.summary import is_finite
from temseg.trial import TAG_STUDY

# what a search reads of its trial runs besides collect's columns (temseg.schema's names)
READ_METRICS = ("val_hard_dice", "epoch_seconds")
READ_TAGS = (TAG_STUDY,)


def search_trials(tracking_uri: str, experiment: str, study: str) -> tuple[list[dict], list]:
    """The trained trials of one study: rows (one per run) and its dice events.

    Each row: ``run_id, run_name, num_blocks, pools, dilations, rf_px, rf_nm, n_params,
    pixel_size_nm, epochs, best_val_dice, test_hard_dice, status`` (``finished``,
    ``stopped`` or ``failed``), ``start_ms, end_ms``. Events: ``(timestamp_ms, run_id, epoch,
    val_hard_dice)`` for every logged epoch, in time order.
    """
    from temseg.analysis import collect

    client = collect.client_for(tracking_uri)
    exp = collect.get_experiment(client, experiment)
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{TAG_STUDY}` = '{study}'", max_results=5000
    )
    rows, events = [], []
    for run in runs:
        row, mine = _trial_row(client, run)
        rows.append(row)
        events.extend(mine)
    rows.sort(key=lambda r: r["start_ms"])
    events.sort()
    return rows, events


def _trial_row(client: Any, run: Any) -> tuple[dict[str, Any], list[tuple]]:
    """One run as a search trial row (see :func:`search_trials`), and its dice events."""
    from temseg.analysis import collect

    base = collect.run_row(run)
    hist = client.get_metric_history(run.info.run_id, "val_hard_dice")
    steps = {}
    for h in hist:  # one value per epoch (a retried trial never logs an epoch twice)
        steps.setdefault(int(h.step), (int(h.timestamp), float(h.value)))
    events = [(ts, run.info.run_id, step, value) for step, (ts, value) in steps.items()]
    seconds: dict[int, float] = {}
    for h in client.get_metric_history(run.info.run_id, "epoch_seconds"):
        seconds.setdefault(int(h.step), float(h.value))
    if run.info.status == "FINISHED" and is_finite(base["test_hard_dice"]):
        status = "finished"
    elif run.info.status == "KILLED":  # stopped early by ASHA (or by a shutdown)
        status = "stopped"
    elif run.info.status == "RUNNING":
        status = "running"
    else:
        status = "failed"
    last_ts = max((ts for ts, _ in steps.values()), default=run.info.start_time)
    row = {
        "run_id": run.info.run_id,
        "run_name": base["run_name"],
        "num_blocks": int(base["num_blocks"]),
        "pools": base["pools"],
        "dilations": base["dilations"],
        "rf_px": int(base["rf_px"]),
        "rf_nm": float(base["rf_nm"]),
        "pixel_size_nm": float(base["pixel_size_nm"]),
        "n_params": int(base["n_params"]),
        "epochs": len(steps),
        "best_val_dice": max((v for _, v in steps.values()), default=float("nan")),
        "test_hard_dice": float(base["test_hard_dice"]),
        "status": status,
        "start_ms": int(run.info.start_time or 0),
        "end_ms": int(run.info.end_time or last_ts or 0),
        # per-epoch training + validation seconds (runs before epoch_seconds: empty)
        "epoch_seconds": {e: seconds[e] for e in sorted(seconds) if e in steps},
    }
    return row, events


def warm_start_rows(
    tracking_uri: str, experiment: str, dataset: str, seed: int
) -> list[dict[str, Any]]:
    """The FINISHED runs of ``experiment`` on ``dataset`` with training seed ``seed``.

    Rows as :func:`search_trials` gives them (grid and search runs alike), oldest first;
    only runs with a final test dice (trained to their last epoch). ``ValueError`` listing the
    experiments there when ``experiment`` does not exist.
    """
    from temseg.analysis import collect

    client = collect.client_for(tracking_uri)
    exp = collect.get_experiment(client, experiment)
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=(
            f"attributes.status = 'FINISHED' and params.dataset = '{dataset}' "
            f"and params.seed = '{int(seed)}'"
        ),
        max_results=50000,
    )
    rows = [_trial_row(client, run)[0] for run in runs]
    rows = [r for r in rows if r["status"] == "finished"]
    rows.sort(key=lambda r: (r["start_ms"], r["run_id"]))
    return rows


def grid_summary(tracking_uri: str, experiment: str, dataset: str) -> dict[str, Any]:
    """The grid's answer and its compute on one dataset, from a finished grid experiment.

    Best = the architecture with the highest mean over seeds of its finished runs' final test
    hard dice (the test dice of each run's best-validation checkpoint), as the replay
    (:mod:`temseg.sweep.search.table`) defines it; ties go to the higher mean best validation dice,
    then the smaller RF. Compute: ``trial_epochs`` (epochs logged by every grid run of the
    dataset), ``trial_seconds`` (the sum of every logged epoch's ``epoch_seconds``; for grids
    logged before those existed, the sum of run durations: ``seconds_from`` says which) and
    ``wall_seconds`` (first start to last end).
    """
    import pandas as pd

    from temseg.analysis import collect

    client = collect.client_for(tracking_uri)
    trials = collect.load_runs(experiment, client=client)
    if trials.empty:
        raise ValueError(f"grid experiment {experiment!r} has no runs")
    trials = trials[trials["search"] != SEARCH_METHOD]
    datasets = sorted(set(trials["dataset"].dropna()))
    mine = trials[trials["dataset"] == dataset]
    if mine.empty:
        raise ValueError(
            f"grid experiment {experiment!r} has no runs on dataset {dataset!r}; "
            f"its datasets: {datasets}"
        )
    hists = collect.load_histories(mine, metrics=READ_METRICS, client=client)
    hist = hists[hists["metric"] == "val_hard_dice"]
    secs = hists[hists["metric"] == "epoch_seconds"]
    best_val = hist.groupby("run_id")["value"].max()
    mine = mine.assign(best_val=mine["run_id"].map(best_val))
    ok = collect.finished(mine)
    ok = ok[ok["best_val"].notna()]
    if ok.empty:
        raise ValueError(f"grid experiment {experiment!r} has no finished run on {dataset!r}")
    keys = ["num_blocks", "pools", "dilations", "rf_px", "rf_nm", "n_params"]
    arch = (
        ok.groupby(keys, dropna=False)
        .agg(
            val_mean=("best_val", "mean"),
            test_mean=("test_hard_dice", "mean"),
            n_seeds=("seed", "nunique"),
            epochs=("epochs", "max"),
        )
        .reset_index()
        .sort_values(["test_mean", "val_mean", "rf_px"], ascending=[False, False, True])
    )
    top = arch.iloc[0]
    logged = set(zip(hist["run_id"], hist["step"], strict=True))
    timed = secs[[k in logged for k in zip(secs["run_id"], secs["step"], strict=True)]]
    timed = timed.drop_duplicates(["run_id", "step"])
    if len(timed) == len(logged):
        seconds, seconds_from = math.fsum(timed["value"]), "epoch_seconds"
    else:
        seconds, seconds_from = float(mine["duration_s"].fillna(0).sum()), "run durations"
    starts = mine["start_time"].dropna()
    ends = starts + pd.to_timedelta(mine.loc[starts.index, "duration_s"].fillna(0), unit="s")
    wall = (ends.max() - starts.min()).total_seconds() if len(starts) else float("nan")
    return {
        "experiment": experiment,
        "dataset": dataset,
        "architectures": int(len(arch)),
        "runs": int(len(mine)),
        "best": {
            "name": Architecture(
                int(top["num_blocks"]), parse_seq(top["pools"]), parse_seq(str(top["dilations"]))
            ).name,
            "num_blocks": int(top["num_blocks"]),
            "pools": top["pools"],
            "dilations": top["dilations"],
            "rf_px": int(top["rf_px"]),
            "rf_nm": float(top["rf_nm"]),
            "n_params": int(top["n_params"]),
            "val_dice_mean": float(top["val_mean"]),
            "test_dice_mean": float(top["test_mean"]),
            "n_seeds": int(top["n_seeds"]),
            "epochs": int(top["epochs"]),
        },
        "trial_epochs": int(len(hist)),
        "trial_seconds": seconds,
        "seconds_from": seconds_from,
        "wall_seconds": float(wall),
    }


def study_has_runs(tracking_uri: str, experiment: str, study: str) -> bool:
    from temseg.analysis import collect

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[10:]).is_file():
        return False  # no store yet, so no runs
    client = collect.client_for(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return False
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{TAG_STUDY}` = '{study}'", max_results=1
    )
    return bool(runs)
