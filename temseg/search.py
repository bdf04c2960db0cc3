"""Optuna search for the smallest, cheapest network whose receptive field is on the plateau.

The grid (:mod:`temseg.sweep`) trains every architecture with every seed: 30 x 5 per dataset
for the paper. A user with a new dataset wants the answer of that grid, the cheapest network
within a tolerance of the best dice, without paying for it. This module asks Optuna's TPE
sampler (Bergstra et al. 2011; multi-objective: Ozaki et al. 2020) for architectures one at a
time, trains each with the grid's trainable, stops unpromising ones early with ASHA (Li et al.
2020, on the epoch axis), and reports the Pareto front of validation dice against cost, the
recommended architecture, and how much of the grid's compute the search needed.

The space is define-by-run: N from ``blocks``, then one max-pool kernel per block from
``kernels``, and optionally one dilation per level (N encoder blocks and the bottleneck) from
``dilations``. A proposal whose RF is not below the patch size, or whose pool product does not
divide it, is never trained: it is told to the sampler as infeasible (an Optuna constraint,
so TPE learns to stop proposing it) and the sampler is asked again. An architecture already
trained in this search is not trained again either: its outcome is told once more and the
sampler is asked again. Both loops live in :class:`Proposer`, pure Optuna, so tests drive the
very code the Ray searcher (:class:`temseg.tune.ArchitectureSearcher`) runs, without Ray.

Layout: planning, the space, the proposer, costs, Pareto front, recommendation and the grid
comparison here (no Ray import; MLflow only read through :mod:`temseg.analysis.collect`);
every Ray call in :func:`temseg.tune.run_search`; every MLflow write in
:mod:`temseg.tracking`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import re
import sys
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temseg.config import ConfigError, check_distinct
from temseg.receptive_field import (  # forward_flops, train_gflop: re-exported
    Architecture,
    format_seq,
    forward_flops,
    parameter_count,
    parse_seq,
    pool_product,
    train_gflop,
)
from temseg.trial import TAG_SEARCH, TAG_STUDY

DICE = "best_val_hard_dice"  # what the trainable reports each epoch: best val dice so far
OBJECTIVES = ("dice", "dice-per-cost")
COSTS = ("flops", "params")
COST_METRIC = {"flops": "train_gflop", "params": "n_params"}
COST_WORDS = {"flops": "training GFLOP per patch", "params": "parameters"}
SEARCH_METHOD = "optuna"
CONSTRAINT = "rf_below_patch"


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SearchConfig:
    """The search's own knobs; datasets, protocol and resources come from the sweep profile.

    ``max_epochs`` and ``train_seed`` of ``None`` mean the profile's ``epochs`` and first
    seed; ``grace_period`` 0 means ``max(1, max_epochs // 4)``; ``max_concurrent`` 0 means as
    many trials as the cluster fits; ``n_startup_trials`` 0 means ``min(10, max(2, trials //
    3))`` random proposals before TPE models the results.
    """

    trials: int = 12
    max_epochs: int | None = None
    objective: str = "dice"
    cost: str = "flops"
    seeds: tuple[int, ...] = (0,)
    train_seed: int | None = None
    tolerance: float = 0.01
    # dilation choices per level (searched one level at a time); empty = the profile's own
    # dilation sets (all ones unless it names some)
    dilation_choices: tuple[int, ...] = ()
    grace_period: int = 0
    reduction_factor: int = 3
    max_concurrent: int = 0
    n_startup_trials: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {list(COSTS)}, got {self.cost!r}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must lie in [0, 1), got {self.tolerance}")
        if any(d < 1 for d in self.dilation_choices):
            raise ValueError(f"dilation_choices must be >= 1, got {list(self.dilation_choices)}")
        check_distinct("seeds", self.seeds)
        check_distinct("dilation_choices", self.dilation_choices)
        if self.reduction_factor < 2:
            raise ValueError(f"reduction_factor must be >= 2, got {self.reduction_factor}")
        for name in ("grace_period", "max_concurrent", "n_startup_trials"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def multi_objective(self) -> bool:
        return self.objective == "dice-per-cost"

    def startup_trials(self) -> int:
        return self.n_startup_trials or min(10, max(2, self.trials // 3))

    def grace(self, max_epochs: int) -> int:
        return min(max_epochs, self.grace_period or max(1, max_epochs // 4))


def study_name(dataset: str, scfg: SearchConfig, seed: int) -> str:
    """E.g. ``discs128/optuna-dice-s0`` or ``discs128/optuna-dice-per-flops-s1``."""
    what = f"dice-per-{scfg.cost}" if scfg.multi_objective else "dice"
    return f"{dataset}/{SEARCH_METHOD}-{what}-s{seed}"


# --------------------------------------------------------------------------------------------
# Cost of an architecture (pure arithmetic, like temseg.receptive_field)


def cost_of(arch: Architecture, cost: str, patch_size: int) -> float:
    """The cost objective: training GFLOP per patch (``flops``) or parameters (``params``)."""
    if cost == "flops":
        return train_gflop(arch, patch_size)
    if cost == "params":
        return float(parameter_count(arch.num_blocks))
    raise ValueError(f"cost must be one of {list(COSTS)}, got {cost!r}")


# --------------------------------------------------------------------------------------------
# The space


@dataclass(frozen=True)
class SearchSpace:
    """Define-by-run space: N, one pool kernel per block, then the dilations.

    Dilations come either as per-level choices (``dilations``: one value per level, each from
    these) or as whole sets (``dilation_sets``: one of the listed N + 1 tuples, asked only when
    N has more than one), or not at all (all ones). ``only``, when given, is the set of
    architectures the space may train (the profile's own grid), every other proposal being
    infeasible: so a search over a profile explores exactly the grid's architectures.
    """

    blocks: tuple[int, ...]
    kernels: tuple[int, ...]
    patch_size: int
    dilations: tuple[int, ...] = ()
    dilation_sets: tuple[tuple[int, ...], ...] = ()
    only: frozenset[Architecture] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(sorted({int(b) for b in self.blocks})))
        object.__setattr__(self, "kernels", tuple(sorted({int(k) for k in self.kernels})))
        object.__setattr__(self, "dilations", tuple(sorted({int(d) for d in self.dilations})))
        sets = tuple(sorted({tuple(int(d) for d in ds) for ds in self.dilation_sets}))
        object.__setattr__(self, "dilation_sets", sets)
        if self.only is not None:
            object.__setattr__(self, "only", frozenset(self.only))
        if self.dilations and self.dilation_sets:
            raise ConfigError("give dilation choices per level or dilation sets, not both")
        if not self.blocks or min(self.blocks) < 1:
            raise ConfigError(f"blocks must be >= 1, got {self.blocks}")
        if not self.kernels or min(self.kernels) < 2:
            raise ConfigError(f"pool kernels must be >= 2, got {self.kernels}")
        if not self.architectures():
            raise ConfigError(
                f"empty search space: no architecture with blocks {list(self.blocks)} and "
                f"kernels {list(self.kernels)} has RF below the {self.patch_size} px patch"
            )

    def _sets(self, n: int) -> list[tuple[int, ...]]:
        return [ds for ds in self.dilation_sets if len(ds) == n + 1] or [(1,) * (n + 1)]

    def sample(self, trial: Any) -> Architecture:
        """Ask ``trial`` (an ``optuna.Trial``) for N, then N kernels (and the dilations)."""
        n = trial.suggest_categorical("num_blocks", self.blocks)
        pools = tuple(trial.suggest_categorical(f"pool_{i}", self.kernels) for i in range(n))
        if self.dilations:
            dil = tuple(
                trial.suggest_categorical(f"dilation_{i}", self.dilations) for i in range(n + 1)
            )
        else:
            sets = self._sets(n)
            dil = sets[0]
            if len(sets) > 1:  # one parameter per N: Optuna needs one distribution per name
                chosen = trial.suggest_categorical(
                    f"dilations_n{n}", [format_seq(ds) for ds in sets]
                )
                dil = parse_seq(chosen)
        return Architecture(int(n), tuple(int(p) for p in pools), tuple(int(d) for d in dil))

    def violation(self, arch: Architecture) -> float:
        """0 for an architecture the patch can train; > 0 otherwise (how far out it is).

        RF >= P adds ``(RF - P + 1) / P``; a pool product that does not divide P adds 1; an
        architecture outside ``only`` adds 1.
        """
        out = 0.0
        if len(arch.pools) != arch.num_blocks or len(arch.dilations) != arch.num_blocks + 1:
            return 1.0
        if arch.rf_px >= self.patch_size:
            out += (arch.rf_px - self.patch_size + 1) / self.patch_size
        if self.patch_size % pool_product(arch.pools):
            out += 1.0
        if self.only is not None and arch not in self.only:
            out += 1.0
        return out

    def architectures(self) -> list[Architecture]:
        """Every architecture of the space the patch can train, ordered by N, pools, dilations."""
        out = []
        for n in self.blocks:
            if self.dilations:
                dil_sets = list(itertools.product(self.dilations, repeat=n + 1))
            else:
                dil_sets = self._sets(n)
            for pools in itertools.product(self.kernels, repeat=n):
                if self.patch_size % pool_product(pools):
                    continue
                for dil in dil_sets:
                    arch = Architecture(n, pools, tuple(dil))
                    if arch.rf_px < self.patch_size and (self.only is None or arch in self.only):
                        out.append(arch)
        return out


def space_for(sweep: Any, scfg: SearchConfig, patch_size: int) -> SearchSpace:
    """The search's space on one patch size: the profile's own, as its grid would train it.

    Without ``scfg.dilation_choices`` the space is exactly the grid's architectures
    (:func:`temseg.sweep.architectures`: its blocks, kernels or pool sequences, dilation sets
    and Figure 4 variants), so ``--compare-grid`` compares like with like. With them, each
    level's dilation is searched among those choices, over the profile's pool sequences.
    """
    from temseg.sweep import architectures

    if scfg.dilation_choices:
        pools = {parse_seq(p) for p in sweep.pools}
        space = SearchSpace(sweep.blocks, sweep.kernels, patch_size, scfg.dilation_choices)
        if not pools:
            return space
        only = frozenset(a for a in space.architectures() if a.pools in pools)
        return dataclasses.replace(space, only=only)
    try:
        grid = architectures(sweep, patch_size)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("empty grid", "empty search space")) from None
    sets = {a.dilations for a in grid}
    return SearchSpace(
        blocks=tuple(a.num_blocks for a in grid),
        kernels=tuple(k for a in grid for k in a.pools),
        patch_size=patch_size,
        dilation_sets=tuple(sets) if any(d != 1 for ds in sets for d in ds) else (),
        only=frozenset(grid),
    )


# --------------------------------------------------------------------------------------------
# Proposals and outcomes (pure Optuna: the Ray searcher and the tests drive the same code)


@dataclass(frozen=True)
class Outcome:
    """What training one architecture gave: Optuna state, objective values, dice per epoch."""

    state: str  # "complete" (trained to max_epochs), "pruned" (stopped early), "failed"
    values: tuple[float, ...] = ()
    intermediate: tuple[tuple[int, float], ...] = ()
    epochs: int = 0


def make_sampler(seed: int, *, n_startup_trials: int = 10) -> Any:
    """The search's seeded TPE sampler (multivariate, grouped for the conditional space).

    ``group=True`` lets the multivariate TPE model the pools of each N jointly (RF depends on
    their product); ``constant_liar`` keeps parallel workers off architectures still training.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per created study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=True,
            group=True,
            constant_liar=True,
        )


@dataclass(frozen=True)
class Proposer:
    """Asks an Optuna study for valid, new architectures and tells it their outcomes.

    ``factory`` turns an architecture into a trial config (``{"train", "meta"}``, see
    :class:`TrialFactory`); tests leave it ``None``.
    """

    space: SearchSpace
    objective: str = "dice"
    cost: str = "flops"
    max_epochs: int = 1
    factory: Any = None
    max_tries: int = 200

    @property
    def multi_objective(self) -> bool:
        return self.objective == "dice-per-cost"

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, mode) pairs for Ray's OptunaSearch: val dice, then the cost."""
        out = [(DICE, "max")]
        if self.multi_objective:
            out.append((COST_METRIC[self.cost], "min"))
        return out

    @functools.cached_property
    def size(self) -> int:
        """Number of valid architectures in the space (the search ends when all are trained)."""
        return len(self.space.architectures())

    def create_study(self, seed: int, *, n_startup_trials: int = 10) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            directions=self.directions,
            sampler=make_sampler(seed, n_startup_trials=n_startup_trials),
        )

    def config(self, arch: Architecture) -> dict[str, Any]:
        if self.factory is None:
            raise RuntimeError("this proposer has no trial factory")
        return self.factory(arch)

    def propose(
        self,
        study: Any,
        *,
        known: Mapping[Architecture, Outcome],
        running: Collection[Architecture] = (),
    ) -> tuple[Any, Architecture] | None:
        """The next architecture to train, with its open Optuna trial; ``None`` if none found.

        Infeasible proposals are told as constraint violations, repeats of a finished one are
        told its outcome again, repeats of one still training are told as failed; each time the
        study is asked again, at most ``max_tries`` times.
        """
        import optuna

        for _ in range(self.max_tries):
            trial = study.ask()
            arch = self.space.sample(trial)
            trial.set_user_attr("architecture", arch.name)
            violation = self.space.violation(arch)
            if violation > 0:
                trial.set_user_attr("proposal", "rejected")
                trial.set_constraint(CONSTRAINT, violation)
                study.tell(trial, self._worst(arch))
            elif arch in known:
                trial.set_user_attr("proposal", "repeat")
                trial.set_constraint(CONSTRAINT, 0.0)
                self.tell(study, trial, arch, known[arch])
            elif arch in running:
                trial.set_user_attr("proposal", "repeat-running")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                trial.set_user_attr("proposal", "new")
                trial.set_constraint(CONSTRAINT, 0.0)
                return trial, arch
        return None

    def _worst(self, arch: Architecture) -> list[float]:
        worst = [0.0]
        if self.multi_objective:
            # the cost of a network the patch cannot train is undefined; any value will do, as
            # TPE ranks infeasible trials by their violation alone
            worst.append(float(parameter_count(arch.num_blocks)))
        return worst

    def outcome(
        self,
        arch: Architecture,
        result: Mapping[str, Any] | None,
        *,
        history: Sequence[tuple[int, float]] = (),
        error: bool = False,
    ) -> Outcome:
        """The outcome of one trained trial from its last reported result.

        A trial that reported no dice or errored is ``failed``; one stopped before
        ``max_epochs`` is ``pruned`` (TPE ranks it below every complete one, later epochs
        first); otherwise ``complete`` with values (dice) or (dice, cost).
        """
        result = dict(result or {})
        dice = result.get(DICE)
        if dice is None:
            # a trial whose MLflow run had already finished reports that run's final metrics
            # (temseg.tune.trainable's skip path): the last val dice stands in for the best
            dice = result.get("val_hard_dice")
        epoch = int(result.get("epoch", 0) or 0)
        hist = tuple((int(s), float(v)) for s, v in history)
        if error or dice is None or not math.isfinite(float(dice)):
            return Outcome("failed", (), hist, epoch)
        finished = "test_hard_dice" in result or epoch >= self.max_epochs
        values = [float(dice)]
        if self.multi_objective:
            values.append(cost_of(arch, self.cost, self.space.patch_size))
        if not finished:
            hist = hist or ((epoch, float(dice)),)
            return Outcome("pruned", tuple(values), hist, epoch)
        return Outcome("complete", tuple(values), hist, epoch)

    def tell(self, study: Any, trial: Any, arch: Architecture, outcome: Outcome) -> None:
        """Tell ``study`` the outcome of ``arch`` on ``trial``."""
        import optuna

        trial.set_user_attr("epochs", outcome.epochs)
        if outcome.state == "failed":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif outcome.state == "pruned":
            if not self.multi_objective:  # Optuna has no intermediate values for several objectives
                for step, value in outcome.intermediate:
                    trial.report(value, step)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, list(outcome.values))


def propose_sequence(
    proposer: Proposer,
    evaluate: Any,
    *,
    n: int,
    seed: int,
    n_startup_trials: int = 10,
    remember: bool = True,
) -> list[Architecture]:
    """Run the proposer sequentially against ``evaluate(arch) -> result dict``, without Ray.

    The Ray searcher does the same with trainings running in parallel. With ``remember``
    false, outcomes are told but not remembered, so architectures may come back: every call
    then asks the sampler afresh (a stress test of the space).
    """
    study = proposer.create_study(seed, n_startup_trials=n_startup_trials)
    known: dict[Architecture, Outcome] = {}
    out = []
    for _ in range(n):
        got = proposer.propose(study, known=known if remember else {})
        if got is None:
            break
        trial, arch = got
        outcome = proposer.outcome(arch, evaluate(arch))
        proposer.tell(study, trial, arch, outcome)
        known[arch] = outcome
        out.append(arch)
        if remember and len(known) >= proposer.size:
            break
    return out


# --------------------------------------------------------------------------------------------
# Trials: each proposal becomes a trial config shaped exactly as the grid's


@dataclass(frozen=True)
class TrialFactory:
    """Architecture -> the grid's ``{"train", "meta"}`` trial dict, tagged with the study.

    Built by :func:`temseg.sweep.make_trial` exactly as the grid's. The trial key also holds
    the study, so two searches (another seed, another objective) never share a run, while a
    resumed search finds its own.
    """

    sweep: Any  # temseg.sweep.SweepConfig with epochs = max_epochs, seeds = (train seed,)
    dataset: Any  # temseg.trial.Dataset
    tracking_uri: str
    experiment_id: str
    study: str

    def __call__(self, arch: Architecture) -> dict[str, Any]:
        from temseg.sweep import make_trial

        trial = make_trial(
            self.sweep,
            self.dataset,
            arch,
            self.sweep.seeds[0],
            search=SEARCH_METHOD,
            study=self.study,
        )
        return trial.to_ray(
            tracking_uri=self.tracking_uri,
            experiment_id=self.experiment_id,
            gpus_per_trial=self.sweep.gpus_per_trial,
        )


# --------------------------------------------------------------------------------------------
# Pareto front and recommendation (pure)


def pareto_front(rows: Sequence[Mapping[str, Any]], *, dice: str, cost: str) -> list[dict]:
    """Rows not dominated in (higher ``dice``, lower ``cost``), cheapest first.

    Examples
    --------
    >>> rows = [{"d": 0.9, "c": 3}, {"d": 0.8, "c": 1}, {"d": 0.7, "c": 2}]
    >>> [r["c"] for r in pareto_front(rows, dice="d", cost="c")]
    [1, 3]
    """
    rows = [dict(r) for r in rows if _finite(r.get(dice)) and _finite(r.get(cost))]
    front = []
    for r in rows:
        dominated = any(
            o[dice] >= r[dice] and o[cost] <= r[cost] and (o[dice] > r[dice] or o[cost] < r[cost])
            for o in rows
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (r[cost], -r[dice]))


def recommend(
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
    >>> recommend(rows, dice="d", cost="c", tolerance=0.01)
    {'d': 0.895, 'c': 1}
    """
    ok = [dict(r) for r in rows if _finite(r.get(dice)) and _finite(r.get(cost))]
    if not ok:
        return None
    best = max(r[dice] for r in ok)
    within = [r for r in ok if r[dice] >= best - tolerance - 1e-12]
    return min(within, key=lambda r: (r[cost], -r[dice], *(r.get(k, 0) for k in tiebreak)))


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Reading a search and a grid back from MLflow (through the analysis reader)


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
        base = collect.run_row(run)
        hist = client.get_metric_history(run.info.run_id, "val_hard_dice")
        steps = {}
        for h in hist:  # one value per epoch (a retried trial never logs an epoch twice)
            steps.setdefault(int(h.step), (int(h.timestamp), float(h.value)))
        for step, (ts, value) in steps.items():
            events.append((ts, run.info.run_id, step, value))
        if run.info.status == "FINISHED" and _finite(base["test_hard_dice"]):
            status = "finished"
        elif run.info.status == "KILLED":  # stopped early by ASHA (or by a shutdown)
            status = "stopped"
        elif run.info.status == "RUNNING":
            status = "running"
        else:
            status = "failed"
        last_ts = max((ts for ts, _ in steps.values()), default=run.info.start_time)
        rows.append(
            {
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
            }
        )
    rows.sort(key=lambda r: r["start_ms"])
    events.sort()
    return rows, events


def grid_summary(tracking_uri: str, experiment: str, dataset: str) -> dict[str, Any]:
    """The grid's answer and its compute on one dataset, from a finished grid experiment.

    Best = the architecture with the highest mean over seeds of each run's best validation
    hard dice (max over its per-epoch history). Compute: ``trial_epochs`` (epochs logged by
    every grid run of the dataset), ``trial_seconds`` (sum of run durations) and
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
    hist = collect.load_histories(mine, metrics=("val_hard_dice",), client=client)
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
        .sort_values(["val_mean", "rf_px"], ascending=[False, True])
    )
    top = arch.iloc[0]
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
        "trial_seconds": float(mine["duration_s"].fillna(0).sum()),
        "wall_seconds": float(wall),
    }


def compute_to_reach(
    rows: Sequence[Mapping[str, Any]], events: Sequence[tuple], threshold: float
) -> dict[str, Any]:
    """The search's compute until any trial first logged a val dice >= ``threshold``.

    ``events`` are ``(timestamp_ms, run_id, epoch, value)``; ``rows`` carry ``run_id``,
    ``start_ms`` and ``end_ms``. Until the first qualifying event at time t*: trial-epochs =
    epochs logged by any run at or before t*; trial-seconds = sum over runs of the part of
    [start, end] before t*; wall seconds = t* - the first run's start. ``reached`` is False
    (and the totals of the whole search are given) when no epoch reached the threshold.

    Examples
    --------
    >>> rows = [{"run_id": "a", "start_ms": 0, "end_ms": 4000},
    ...         {"run_id": "b", "start_ms": 1000, "end_ms": 5000}]
    >>> ev = [(2000, "a", 1, 0.5), (3000, "b", 1, 0.9), (4000, "a", 2, 0.95)]
    >>> r = compute_to_reach(rows, ev, 0.9)
    >>> r["trial_epochs"], r["trial_seconds"], r["wall_seconds"]
    (2, 5.0, 3.0)
    """
    events = sorted(events)
    if not rows:
        return {"reached": False, "trial_epochs": 0, "trial_seconds": 0.0, "wall_seconds": 0.0}
    t0 = min(r["start_ms"] for r in rows)
    hit = next((e for e in events if e[3] >= threshold), None)
    reached = hit is not None
    t_star = hit[0] if reached else max([r["end_ms"] for r in rows] + [e[0] for e in events])
    epochs = sum(1 for e in events if e[0] <= t_star)
    seconds = sum(max(0, min(r["end_ms"], t_star) - r["start_ms"]) for r in rows) / 1000
    out = {
        "reached": reached,
        "trial_epochs": int(epochs),
        "trial_seconds": float(seconds),
        "wall_seconds": float((t_star - t0) / 1000),
    }
    if reached:
        out["run_id"], out["epoch"], out["value"] = hit[1], int(hit[2]), float(hit[3])
    return out


def compare_with_grid(
    rows: Sequence[Mapping[str, Any]],
    events: Sequence[tuple],
    grid: Mapping[str, Any],
    *,
    tolerance: float,
) -> dict[str, Any]:
    """Search compute to come within ``tolerance`` of the grid's best, as grid fractions."""
    threshold = grid["best"]["val_dice_mean"] - tolerance
    reach = compute_to_reach(rows, events, threshold)
    total = compute_to_reach(rows, events, math.inf)

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


# --------------------------------------------------------------------------------------------
# The summary of one search


def summarize(
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
    rec = recommend(
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
        dil = (
            "" if set(str(t["dilations"]).split("-")) == {"1"} else f", dilations {t['dilations']}"
        )
        return f"N={t['num_blocks']}, pools {t['pools']}{dil}"

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
        diff = rec["best_val_dice"] - g["val_dice_mean"]
        lines.append(
            f"The grid's best on this dataset was {g['name']} (RF {g['rf_px']} px = "
            f"{g['rf_nm']:.3g} nm), mean validation dice {g['val_dice_mean']:.4f} over "
            f"{g['n_seeds']} seed(s) (test {g['test_dice_mean']:.4f}); the recommendation is "
            f"{abs(diff):.4f} {'above' if diff >= 0 else 'below'} it"
            + (
                f" and {'the same' if rec['rf_px'] == g['rf_px'] else 'a ' + ('smaller' if rec['rf_px'] < g['rf_px'] else 'larger')} receptive field."
            )
        )
        c = comparison
        if c["reached"]:
            lines.append(
                f"The search first came within {c['tolerance']:g} of the grid's best after "
                f"{c['trial_epochs']} trial-epochs ({c['fraction_trial_epochs']:.0%} of the "
                f"grid's {c['grid']['trial_epochs']}), {c['trial_seconds']:.0f} trial-seconds "
                f"({c['fraction_trial_seconds']:.0%}) and {c['wall_seconds']:.0f} s of wall time "
                f"({c['fraction_wall_seconds']:.0%})."
            )
        else:
            lines.append(
                f"The search never came within {c['tolerance']:g} of the grid's best; it used "
                f"{c['trial_epochs']} trial-epochs ({c['fraction_trial_epochs']:.0%} of the grid's)."
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Orchestration


def _max_concurrent(scfg: SearchConfig, sweep: Any, cluster: Mapping[str, float]) -> int:
    if scfg.max_concurrent:
        return scfg.max_concurrent
    fit = int(cluster.get("CPU", 1) // max(sweep.cpus_per_trial, 1e-9))
    if sweep.gpus_per_trial > 0:
        fit = min(fit, int(cluster.get("GPU", 0) // sweep.gpus_per_trial))
    return max(1, fit)


def _ray_name(storage_path: str, experiment: str, study: str, resume: bool) -> str:
    """Ray's run folder of one study: a fresh one per search; ``--resume`` picks the latest."""
    from temseg.campaign import ray_run_name

    return ray_run_name(storage_path, f"{experiment}_{study}", resume)


def _mark_stopped(meta: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Close the MLflow run of a trial ASHA stopped, as KILLED.

    The trainable closes it itself when Ray ends its thread; this covers a trial whose worker
    died before it could (the driver sees every stop).
    """
    from temseg.tracking import TrialRun

    run = TrialRun.from_meta(dict(meta))
    if not run.finished:
        run.stop()


def _study_has_runs(tracking_uri: str, experiment: str, study: str) -> bool:
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


def print_rows(rows: Sequence[Mapping[str, Any]], cols: Sequence[str], file=sys.stdout) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=file)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=file)


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


def plan(scfg: SearchConfig, sweep: Any, datasets: Sequence[Any]) -> list[dict[str, Any]]:
    """Space size and RF range per dataset (what ``--dry-run`` prints)."""
    out = []
    for ds in datasets:
        space = space_for(sweep, scfg, ds.patch_size)
        archs = space.architectures()
        for n in space.blocks:
            mine = [a for a in archs if a.num_blocks == n]
            if not mine:
                continue
            out.append(
                {
                    "dataset": ds.name,
                    "num_blocks": n,
                    "architectures": len(mine),
                    "rf_px": f"{min(a.rf_px for a in mine)}-{max(a.rf_px for a in mine)}",
                    "n_params": parameter_count(n),
                    "train_gflop": f"{min(train_gflop(a, ds.patch_size) for a in mine):.3g}-"
                    f"{max(train_gflop(a, ds.patch_size) for a in mine):.3g}",
                }
            )
    return out


@dataclass
class SearchStrategy:
    """The search as a :class:`temseg.campaign.Strategy`: one study per dataset and seed.

    ``experiment`` is the MLflow experiment of the search runs; ``compare_grid`` a finished
    grid experiment in the same store. ``studies`` and ``grids`` are filled by the preflight.
    """

    scfg: SearchConfig
    experiment: str
    compare_grid: str | None = None
    studies: list[tuple[Any, int, str]] = dataclasses.field(default_factory=list)
    grids: dict[str, Any] = dataclasses.field(default_factory=dict)

    def max_epochs(self, sweep: Any) -> int:
        return self.scfg.max_epochs or sweep.epochs

    def plan(self, sweep: Any, datasets: Sequence[Any]) -> None:
        from temseg.sweep import print_table

        print_table(plan(self.scfg, sweep, datasets))
        print(
            f"\n{len(datasets)} dataset(s) x {len(self.scfg.seeds)} search seed(s), up to "
            f"{self.scfg.trials} trials of {self.max_epochs(sweep)} epochs each; nothing run.",
            flush=True,
        )

    def check_space(self, sweep: Any, patch_size: int) -> None:
        space_for(sweep, self.scfg, patch_size)

    def preflight(self, sweep: Any, where: Any) -> None:
        if self.compare_grid:
            from temseg.analysis import collect

            collect.get_experiment(collect.client_for(where.tracking_uri), self.compare_grid)

    def check_datasets(self, sweep: Any, where: Any, datasets: Sequence[Any]) -> None:
        scfg, uri = self.scfg, where.tracking_uri
        studies = [(ds, s, study_name(ds.name, scfg, s)) for ds in datasets for s in scfg.seeds]
        if not where.resume:
            taken = [s for _, _, s in studies if _study_has_runs(uri, self.experiment, s)]
            if taken:
                raise ConfigError(
                    f"experiment {self.experiment!r} already holds runs of {taken}; continue "
                    "them with --resume, or start afresh with another --seed or --experiment"
                )
        if self.compare_grid:
            self.grids = {ds.name: grid_summary(uri, self.compare_grid, ds.name) for ds in datasets}
        self.studies = studies

    def run(
        self, sweep: Any, where: Any, cluster: Mapping[str, float], datasets: Sequence[Any]
    ) -> list[dict[str, Any]]:
        from temseg import tracking
        from temseg import tune as ttune

        scfg, uri, experiment = self.scfg, where.tracking_uri, self.experiment
        max_epochs = self.max_epochs(sweep)
        train_seed = sweep.seeds[0] if scfg.train_seed is None else scfg.train_seed
        protocol = dataclasses.replace(sweep, epochs=max_epochs, seeds=(train_seed,))
        experiment_id = tracking.ensure_experiment(uri, experiment)
        concurrent = _max_concurrent(scfg, sweep, cluster)
        summaries: list[dict[str, Any]] = []
        for ds, seed, study in self.studies:
            space = space_for(sweep, scfg, ds.patch_size)
            factory = TrialFactory(protocol, ds, uri, experiment_id, study)
            proposer = Proposer(space, scfg.objective, scfg.cost, max_epochs, factory)
            dil = ""
            if space.dilations:
                dil = f", dilations {list(space.dilations)}"
            elif space.dilation_sets:
                dil = f", dilation sets {[format_seq(d) for d in space.dilation_sets]}"
            print(
                f"\nsearch {study}: up to {scfg.trials} trials of {max_epochs} epochs over "
                f"{proposer.size} architectures (N in {list(space.blocks)}, kernels "
                f"{list(space.kernels)}{dil}, RF < {ds.patch_size} px); objective "
                f"{scfg.objective}"
                f"{' (' + COST_WORDS[scfg.cost] + ')' if scfg.multi_objective else ''}; "
                f"TPE seed {seed}; ASHA grace period {scfg.grace(max_epochs)} epoch(s), factor "
                f"{scfg.reduction_factor}; {concurrent} trial(s) at a time on {where.where}",
                flush=True,
            )
            name = _ray_name(where.storage_path, experiment, study, where.resume)
            ttune.run_search(
                proposer,
                sampler=make_sampler(seed, n_startup_trials=scfg.startup_trials()),
                study_name=study,
                trials=scfg.trials,
                max_epochs=max_epochs,
                name=name,
                storage_path=where.storage_path,
                cpus_per_trial=sweep.cpus_per_trial,
                gpus_per_trial=sweep.gpus_per_trial,
                resume=where.resume,
                max_failures=sweep.max_failures,
                max_concurrent=concurrent,
                grace_period=scfg.grace(max_epochs),
                reduction_factor=scfg.reduction_factor,
                on_stopped=_mark_stopped,
            )
            rows, events = search_trials(uri, experiment, study)
            summary = summarize(rows, dataset=ds, scfg=scfg, study=study, max_epochs=max_epochs)
            summary.update(
                seed=seed, experiment=experiment, ray_results=str(Path(where.storage_path) / name)
            )
            comparison = None
            if self.compare_grid:
                grid = self.grids[ds.name]
                comparison = compare_with_grid(rows, events, grid, tolerance=scfg.tolerance)
                comparison["grid_best"] = grid["best"]
                comparison["grid_experiment"] = self.compare_grid
                if grid["best"]["epochs"] != max_epochs:
                    print(
                        f"note: the grid trained {grid['best']['epochs']} epochs, the search "
                        f"{max_epochs}",
                        flush=True,
                    )
            summary["comparison"] = comparison
            summary["answer"] = answer_in_words(summary, comparison)
            out = where.report_path(experiment)
            summary["report_dir"] = str(_write_summary(summary, out))
            _print_summary(summary)
            summaries.append(summary)
        return summaries

    def report(self, sweep: Any, where: Any, results: list[dict[str, Any]], seconds: float) -> None:
        if self.compare_grid and len(results) > 1:
            print("\n" + seeds_overview(results), flush=True)
        print(
            f"\nMLflow: {where.tracking_uri} (experiment {self.experiment!r}, runs tagged "
            f"{TAG_SEARCH}={SEARCH_METHOD}); browse with\n"
            f"  mlflow ui --backend-store-uri {where.tracking_uri} --host 127.0.0.1 --port 5000",
            flush=True,
        )


def run_optuna_search(
    scfg: SearchConfig,
    sweep: Any,
    *,
    project_dir: Path,
    experiment: str | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    report_dir: str | None = None,
    resume: bool = False,
    dry_run: bool = False,
    compare_grid: str | None = None,
    num_cpus: int | None = None,
) -> list[dict[str, Any]]:
    """Search every dataset of ``sweep`` once per seed of ``scfg``; return one summary each.

    Parameters
    ----------
    scfg
        The search (trials, epochs, objective, seeds, tolerance, ASHA).
    sweep
        A :class:`temseg.sweep.SweepConfig` (profile + flags): datasets, the space (blocks,
        kernels or pool sequences, dilation sets), protocol (lr, batch size, augmentation,
        precision) and resources per trial.
    experiment
        MLflow experiment of the search runs (default ``<profile experiment>-optuna``).
    compare_grid
        A finished grid experiment in the same tracking store: each summary then carries
        ``comparison`` (compute to come within ``scfg.tolerance`` of the grid's best, as
        fractions of the grid's compute).

    Returns
    -------
    One dict per dataset x seed: :func:`summarize`'s fields, ``comparison`` (or None),
    ``answer`` (plain words), ``report_dir``. The orchestration (preflight, Ray runtime,
    data) is :func:`temseg.campaign.run_campaign`'s, shared with the grid.
    """
    from temseg.campaign import placement, run_campaign

    where = placement(
        project_dir,
        address=address,
        tracking_uri=tracking_uri,
        storage_path=storage_path,
        report_dir=report_dir,
        num_cpus=num_cpus,
        resume=resume,
    )
    strategy = SearchStrategy(
        scfg,
        experiment=experiment or f"{sweep.experiment_name}-{SEARCH_METHOD}",
        compare_grid=compare_grid,
    )
    return run_campaign(sweep, strategy, where, dry_run=dry_run)


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
    print_rows(rows, list(rows[0]) if rows else [], file=buf)
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


def _print_summary(summary: Mapping[str, Any]) -> None:
    print(
        f"\n{summary['study']}: {summary['trained']} architectures trained, "
        f"{summary['finished']} to {summary['max_epochs']} epochs, {summary['stopped']} stopped "
        f"early, {summary['failed']} failed",
        flush=True,
    )
    print_rows(sorted(summary["trials"], key=lambda t: (t["num_blocks"], t["rf_px"])), TABLE_COLS)
    cost = COST_METRIC[summary["cost"]]
    if summary["pareto_front"]:
        print(f"\nPareto front (validation dice up, {COST_WORDS[summary['cost']]} down):")
        print_rows(summary["pareto_front"], ("architecture", "rf_px", cost, "best_val_dice"))
    print("\n" + summary["answer"], flush=True)
    print(f"report: {summary['report_dir']}", flush=True)


def _write_summary(summary: Mapping[str, Any], out_dir: Path) -> Path:
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


def search_config(values: Mapping[str, Any]) -> SearchConfig:
    """A :class:`SearchConfig` from CLI values (None = default), through ``from_dict``."""
    from temseg.config import from_dict

    return from_dict(SearchConfig, {k: v for k, v in values.items() if v is not None})


__all__ = [
    "SearchConfig",
    "SearchSpace",
    "SearchStrategy",
    "space_for",
    "Proposer",
    "Outcome",
    "TrialFactory",
    "make_sampler",
    "propose_sequence",
    "forward_flops",
    "train_gflop",
    "cost_of",
    "pareto_front",
    "recommend",
    "compute_to_reach",
    "compare_with_grid",
    "grid_summary",
    "search_trials",
    "summarize",
    "answer_in_words",
    "run_optuna_search",
    "search_config",
]
