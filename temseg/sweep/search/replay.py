"""Search strategies replayed against a recorded table (:mod:`temseg.sweep.search.table`), no training.

A replayed trial of architecture ``a`` with training seed ``s`` run to epoch ``k`` returns the
table's epoch 1..k values of that pair and costs ``k`` trial-epochs and the sum of those
epochs' seconds. One search (one search seed) trains one training seed, as the live search
does: ``table.seeds[search_seed % n_seeds]``, the same for every strategy, so 30 search seeds
on a 3-seed table use each seed 10 times.

Strategies (every one stops when each architecture of the table has been tried, or when the
proposer finds no new one in ``Proposer.max_tries`` asks, as the live searcher does):

- ``grid``: the architectures in the order :func:`temseg.sweep.space.architectures` trains them,
  each to the table's last epoch (one seed of the grid: at most 1/n_seeds of its compute);
- ``random``: a random order (seeded by the search seed), full epochs;
- ``tpe``: the live search's proposer: :class:`temseg.sweep.search.Proposer` over the
  :class:`temseg.sweep.search.SearchSpace` of the table's architectures, its seeded TPE sampler
  (:func:`temseg.sweep.search.make_sampler`, ``n_startup_trials`` as ``SearchConfig.startup_trials``
  gives for a search of every architecture), full epochs;
- ``tpe+asha``: the live search's default: the same, with asynchronous successive halving on
  the epoch axis with the live search's grace period and reduction factor
  (``SearchConfig.grace``, ``SearchConfig.reduction_factor``), the rule of Ray Tune's
  ``ASHAScheduler`` (one bracket; at each rung a trial stops when its metric is below the
  ``1 - 1/f`` percentile of the trials recorded at that rung before it) on the metric the live
  search reports, the running best validation dice. Stopped trials are told to TPE as pruned
  with their per-epoch values, as ``ArchitectureSearcher`` tells them. The replay is
  sequential, one trial at a time (the live search with ``--max-concurrent 1``); with
  several workers the live search's rung decisions see fewer finished trials;
- ``tpe+hyperband``: BOHB-style: the same TPE proposer, pruned by Optuna's
  ``HyperbandPruner`` (min resource = the grace period, max = the last epoch, the same
  reduction factor) on the running best validation dice;
- ``random+asha``: the random order with the same ASHA rule (successive halving over random
  configurations).

Incumbent: the best trial by (running best) validation dice among the trials trained to the
table's last epoch, as the live search recommends only from those (an early-stopped trial's
dice is that of a shorter training); ties keep the earlier one. Its test dice is its recorded
test dice at its best-validation epoch. A search *hits* when its incumbent's test dice first
comes within ``tolerance`` of the grid best's seed-mean; its cost until then is the compute of
every trial-epoch run up to and including the trial that made that incumbent, as a share of
the full grid's (all seeds); a search that never hits counts its whole compute (a miss).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from temseg.receptive_field import Architecture
from temseg.sweep.search.proposer import Outcome, Proposer, make_sampler
from temseg.sweep.search.space import DICE, SearchConfig, SearchSpace
from temseg.sweep.search.table import Table

STRATEGIES = ("grid", "random", "tpe", "tpe+asha", "tpe+hyperband", "random+asha")


def train_seed_for(table: Table, search_seed: int) -> int:
    """The training seed of one search: the table's seeds in turn."""
    return table.seeds[search_seed % len(table.seeds)]


def space_of(table: Table) -> SearchSpace:
    """The search space of the table's architectures, built as :func:`space_for` builds it."""
    archs = table.architectures
    sets = {a.dilations for a in archs}
    return SearchSpace(
        blocks=tuple(a.num_blocks for a in archs),
        kernels=tuple(k for a in archs for k in a.pools),
        patch_size=table.patch_size,
        dilation_sets=tuple(sets) if any(d != 1 for ds in sets for d in ds) else (),
        only=frozenset(archs),
    )


# ------------------------------------------------------------------------------ schedulers


class ASHA:
    """Ray Tune's ``ASHAScheduler`` stopping rule (one bracket, ``stop_last_trials``).

    Rungs at ``grace * f**k`` epochs, ``k = 0 .. int(log(max_t / grace) / log(f))``; a trial
    reaching a rung is recorded there and stopped when its value is below the
    ``(1 - 1/f) * 100`` percentile (``numpy.nanpercentile``) of the values recorded at that rung
    before it. A trial at ``max_t`` stops (it is done).
    """

    def __init__(self, grace: int, max_t: int, reduction_factor: int) -> None:
        self.max_t, self.rf = max_t, reduction_factor
        n = int(np.log(max_t / grace) / np.log(reduction_factor) + 1)
        self.rungs: list[tuple[int, dict[int, float]]] = [
            (grace * reduction_factor**k, {}) for k in reversed(range(n))
        ]

    @property
    def milestones(self) -> list[int]:
        """The rungs where a trial can be stopped before ``max_t``."""
        return sorted(m for m, _ in self.rungs if m < self.max_t)

    def keep_going(self, trial: int, epoch: int, value: float) -> bool:
        if epoch >= self.max_t:
            return False
        for milestone, recorded in self.rungs:
            if epoch < milestone or trial in recorded:
                continue
            stop = False
            if recorded:
                cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100)
                stop = value < cutoff
            recorded[trial] = value
            return not stop
        return True


def hyperband_rungs(grace: int, max_t: int, reduction_factor: int) -> list[int]:
    """Epochs where Optuna's ``HyperbandPruner`` (these resources) can stop a trial."""
    n_brackets = math.floor(math.log(max_t / grace, reduction_factor)) + 1
    out = set()
    for s in range(n_brackets):
        r = 0
        while grace * reduction_factor ** (s + r) < max_t:
            out.add(grace * reduction_factor ** (s + r))
            r += 1
    return sorted(out)


# ------------------------------------------------------------------------------ one search


@dataclass
class ReplayedTrial:
    """One replayed training: the architecture, the epochs it ran, what it gave."""

    arch: Architecture
    epochs: int
    complete: bool
    best_val: float
    test: float | None  # final test dice (best-validation epoch), complete trials only


@dataclass
class Search:
    """One replayed search: its trials in order and its compute up to the hit and in all."""

    strategy: str
    search_seed: int
    train_seed: int
    threshold: float
    max_epochs: int
    trials: list[ReplayedTrial] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # every epoch run, in order
    incumbent: ReplayedTrial | None = None
    hit_epochs: int | None = None
    hit_seconds: float | None = None

    @property
    def trial_epochs(self) -> int:
        return len(self.seconds)

    @property
    def total_seconds(self) -> float:
        return math.fsum(self.seconds)

    @property
    def hit(self) -> bool:
        return self.hit_epochs is not None

    def record(self, arch: Architecture, epochs: int, curve: Any) -> ReplayedTrial:
        """Account one trial of ``arch`` run for ``epochs`` epochs of ``curve``."""
        self.seconds.extend(curve.seconds[:epochs])
        complete = epochs >= self.max_epochs
        trial = ReplayedTrial(
            arch, epochs, complete, curve.best_val(epochs), curve.final_test if complete else None
        )
        self.trials.append(trial)
        if complete and (self.incumbent is None or trial.best_val > self.incumbent.best_val):
            self.incumbent = trial
        if (
            not self.hit
            and self.incumbent is not None
            and self.incumbent.test >= self.threshold - 1e-12
        ):
            self.hit_epochs, self.hit_seconds = self.trial_epochs, self.total_seconds
        return trial


Stopper = Callable[[int, int, float], bool]  # (trial number, epoch, running best) -> go on


def _run(search: Search, table: Table, arch: Architecture, go_on: Stopper | None) -> ReplayedTrial:
    """Train ``arch`` epoch by epoch until ``go_on`` says stop or the last epoch."""
    curve = table.curve(arch, search.train_seed)
    number = len(search.trials)
    k = 1
    while k < table.max_epochs and (go_on is None or go_on(number, k, curve.best_val(k))):
        k += 1
    return search.record(arch, k, curve)


def _ordered(search: Search, table: Table, order: Sequence[Architecture], asha: ASHA | None):
    for arch in order:
        _run(search, table, arch, None if asha is None else asha.keep_going)


def _outcome(proposer: Proposer, trial: ReplayedTrial, table: Table, seed: int) -> Outcome:
    """What the live searcher tells TPE for a trial: its last result and its dice history."""
    curve = table.curve(trial.arch, seed)
    result: dict[str, Any] = {DICE: trial.best_val, "epoch": trial.epochs}
    if trial.complete:
        result["test_hard_dice"] = trial.test
    history = [(k, curve.best_val(k)) for k in range(1, trial.epochs + 1)]
    return proposer.outcome(trial.arch, result, history=history)


def _proposed(
    search: Search,
    table: Table,
    proposer: Proposer,
    study: Any,
    run_one: Callable[[Any, Architecture], ReplayedTrial],
) -> None:
    known: dict[Architecture, Outcome] = {}
    while len(known) < proposer.size:
        got = proposer.propose(study, known=known)
        if got is None:  # only repeats and infeasible ones came back: the searcher ends
            break
        ot_trial, arch = got
        trial = run_one(ot_trial, arch)
        outcome = _outcome(proposer, trial, table, search.train_seed)
        with warnings.catch_warnings():  # hyperband: the epochs were reported already
            warnings.simplefilter("ignore")
            proposer.tell(study, ot_trial, arch, outcome)
        known[arch] = outcome


@dataclass(frozen=True)
class Settings:
    """The live search's knobs the replay uses (defaults: :class:`SearchConfig`'s)."""

    grace: int
    reduction_factor: int
    n_startup_trials: int
    tolerance: float = 0.01

    @classmethod
    def live(cls, table: Table, tolerance: float = 0.01) -> Settings:
        scfg = SearchConfig(trials=len(table.architectures), tolerance=tolerance)
        return cls(
            grace=scfg.grace(table.max_epochs),
            reduction_factor=scfg.reduction_factor,
            n_startup_trials=scfg.startup_trials(),
            tolerance=tolerance,
        )


def replay(table: Table, strategy: str, search_seed: int, settings: Settings) -> Search:
    """Replay one search of ``strategy`` with ``search_seed`` against ``table``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    _, best_mean = table.grid_best
    search = Search(
        strategy,
        search_seed,
        train_seed_for(table, search_seed),
        best_mean - settings.tolerance,
        table.max_epochs,
    )
    max_t, rf, grace = table.max_epochs, settings.reduction_factor, settings.grace
    if strategy in ("grid", "random", "random+asha"):
        order = table.grid_order()
        if strategy != "grid":
            random.Random(search_seed).shuffle(order)
        asha = ASHA(grace, max_t, rf) if strategy == "random+asha" else None
        _ordered(search, table, order, asha)
        return search

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    proposer = Proposer(space_of(table), "dice", "flops", max_t)
    sampler = make_sampler(search_seed, n_startup_trials=settings.n_startup_trials)
    if strategy == "tpe+hyperband":
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=grace, max_resource=max_t, reduction_factor=rf
        )
        # the pruner's bracket of a trial hashes the study name: fixed, so replays repeat
        study = optuna.create_study(
            directions=proposer.directions,
            sampler=sampler,
            pruner=pruner,
            study_name=f"replay-{strategy}-s{search_seed}",
        )

        def run_one(ot_trial: Any, arch: Architecture) -> ReplayedTrial:
            def go_on(_: int, epoch: int, value: float) -> bool:
                ot_trial.report(value, epoch)
                return not ot_trial.should_prune()

            return _run(search, table, arch, go_on)

    else:
        study = optuna.create_study(
            directions=proposer.directions,
            sampler=sampler,
            study_name=f"replay-{strategy}-s{search_seed}",
        )
        asha = ASHA(grace, max_t, rf) if strategy == "tpe+asha" else None

        def run_one(ot_trial: Any, arch: Architecture) -> ReplayedTrial:
            return _run(search, table, arch, None if asha is None else asha.keep_going)

    _proposed(search, table, proposer, study, run_one)
    return search


# ------------------------------------------------------------------------------ many searches


def rungs_of(strategy: str, table: Table, settings: Settings) -> list[int]:
    """Epochs where ``strategy`` can stop a trial early (none for full-epoch strategies)."""
    if strategy.endswith("+asha"):
        return ASHA(settings.grace, table.max_epochs, settings.reduction_factor).milestones
    if strategy.endswith("+hyperband"):
        return hyperband_rungs(settings.grace, table.max_epochs, settings.reduction_factor)
    return []


def rung_correlation(table: Table, epoch: int) -> dict[str, Any]:
    """Spearman correlation over every (arch, seed) of the table between the running best
    validation dice after ``epoch`` (what a rung compares) and the final test dice."""
    from scipy.stats import spearmanr

    pairs = [table.curve(a, s) for a in table.architectures for s in table.seeds]
    res = spearmanr([c.best_val(epoch) for c in pairs], [c.final_test for c in pairs])
    return {"epoch": epoch, "rho": float(res.statistic), "p": float(res.pvalue), "n": len(pairs)}


def _q(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def _r6(v: float) -> float:
    return float(f"{v:.6g}")


def summarize_strategy(table: Table, searches: Sequence[Search], settings: Settings) -> dict:
    """Median and IQR of the share of the full grid's compute to the hit, match and hit rates."""
    best, _ = table.grid_best
    ep = [(s.hit_epochs if s.hit else s.trial_epochs) / table.grid_trial_epochs for s in searches]
    sec = [(s.hit_seconds if s.hit else s.total_seconds) / table.grid_seconds for s in searches]
    n = len(searches)
    strategy = searches[0].strategy
    rungs = rungs_of(strategy, table, settings)
    return {
        "strategy": strategy,
        "median_share": _r6(_q(ep, 50)),
        "q25": _r6(_q(ep, 25)),
        "q75": _r6(_q(ep, 75)),
        "iqr": _r6(_q(ep, 75) - _q(ep, 25)),
        "median_share_seconds": _r6(_q(sec, 50)),
        "q25_seconds": _r6(_q(sec, 25)),
        "q75_seconds": _r6(_q(sec, 75)),
        "iqr_seconds": _r6(_q(sec, 75) - _q(sec, 25)),
        "hit_rate": _r6(sum(s.hit for s in searches) / n),
        "misses": sum(not s.hit for s in searches),
        "match_rate": _r6(
            sum(s.incumbent is not None and s.incumbent.arch == best for s in searches) / n
        ),
        "final_within_rate": _r6(
            sum(
                s.incumbent is not None and s.incumbent.test >= s.threshold - 1e-12
                for s in searches
            )
            / n
        ),
        "mean_total_share": _r6(
            sum(s.trial_epochs for s in searches) / n / table.grid_trial_epochs
        ),
        "mean_trials": _r6(sum(len(s.trials) for s in searches) / n),
        "mean_complete": _r6(sum(sum(t.complete for t in s.trials) for s in searches) / n),
        "rungs": rungs,
        "rung_spearman": [_r6(rung_correlation(table, k)["rho"]) for k in rungs],
        "searches": n,
    }


def _replay_task(args: tuple[Table, str, int, Settings]) -> Search:
    return replay(*args)


def bench(
    table: Table,
    search_seeds: Sequence[int],
    *,
    strategies: Sequence[str] = STRATEGIES,
    tolerance: float = 0.01,
    jobs: int = 1,
) -> dict[str, Any]:
    """Every strategy replayed once per search seed: the summary the script prints and saves.

    ``jobs`` > 1 replays in that many processes; each search is independent and seeded, so
    the result is the same for any ``jobs``.
    """
    settings = Settings.live(table, tolerance)
    best, mean = table.grid_best
    tasks = [(table, strategy, seed, settings) for strategy in strategies for seed in search_seeds]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(_replay_task, tasks, chunksize=1))
    else:
        done = [_replay_task(t) for t in tasks]
    out_strategies = []
    n = len(search_seeds)
    for i, _ in enumerate(strategies):
        out_strategies.append(summarize_strategy(table, done[i * n : (i + 1) * n], settings))
    all_rungs = sorted({k for r in out_strategies for k in r["rungs"]} | {table.max_epochs})
    return {
        "table": {
            "architectures": len(table.architectures),
            "seeds": list(table.seeds),
            "max_epochs": table.max_epochs,
            "trial_epochs": table.grid_trial_epochs,
            "seconds": _r6(table.grid_seconds),
        },
        "grid_best": {"arch": best.name, "rf_px": best.rf_px, "seed_mean_test": _r6(mean)},
        "tolerance": tolerance,
        "threshold": _r6(mean - tolerance),
        "search_seeds": list(search_seeds),
        "settings": {
            "grace_period": settings.grace,
            "reduction_factor": settings.reduction_factor,
            "n_startup_trials": settings.n_startup_trials,
        },
        "spearman": [
            {
                k: (_r6(v) if isinstance(v, float) else v)
                for k, v in rung_correlation(table, e).items()
            }
            for e in all_rungs
        ],
        "strategies": out_strategies,
    }


def markdown(result: dict[str, Any]) -> str:
    """The strategies as a markdown table, with the grid's best and the rung correlations."""
    t, g = result["table"], result["grid_best"]
    lines = [
        f"Table: {t['architectures']} architectures x {len(t['seeds'])} seeds x "
        f"{t['max_epochs']} epochs = {t['trial_epochs']} trial-epochs, {t['seconds']:.0f} s. "
        f"Grid's best: {Architecture.from_name(g['arch']).label} (RF {g['rf_px']} px), "
        "seed-mean test dice "
        f"{g['seed_mean_test']:.4f}; target: test dice >= {result['threshold']:.4f} "
        f"(tolerance {result['tolerance']:g}). {len(result['search_seeds'])} search seeds.",
        "",
        "| strategy | median share (trial-epochs) | IQR | median share (seconds) | IQR | "
        "hit rate | match rate | final within | trials | rungs (Spearman rho) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["strategies"]:
        rungs = ", ".join(
            f"{k}: {rho:.3f}" for k, rho in zip(r["rungs"], r["rung_spearman"], strict=True)
        )
        lines.append(
            f"| {r['strategy']} | {r['median_share']:.1%} | {r['q25']:.1%}-{r['q75']:.1%} | "
            f"{r['median_share_seconds']:.1%} | {r['q25_seconds']:.1%}-{r['q75_seconds']:.1%} | "
            f"{r['hit_rate']:.0%} | {r['match_rate']:.0%} | {r['final_within_rate']:.0%} | "
            f"{r['mean_trials']:.1f} ({r['mean_complete']:.1f} full) | {rungs or '-'} |"
        )
    lines += [
        "",
        "Spearman rho over all (architecture, seed) pairs, running best validation dice after "
        "epoch k vs final test dice: "
        + ", ".join(f"k={s['epoch']}: {s['rho']:.3f}" for s in result["spearman"])
        + ".",
    ]
    return "\n".join(lines) + "\n"
