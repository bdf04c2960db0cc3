"""The search as a :class:`temseg.sweep.campaign.Strategy`: per dataset and seed, one study.

``temseg search`` hands :class:`SearchStrategy` to :func:`temseg.sweep.campaign.run_campaign`
(preflight, Ray runtime, data, report: shared with the grid); every Ray call is in
:func:`temseg.sweep.runtime.run_search`, every MLflow write in :mod:`temseg.tracking`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temseg.config import ConfigError
from temseg.receptive_field import (
    Architecture,
    format_seq,
    network_label,
    parameter_count,
    parse_seq,
    train_gflop,
)
from temseg.sweep.search.proposer import Outcome, Proposer, make_sampler
from temseg.sweep.search.runs import grid_summary, search_trials, study_has_runs, warm_start_rows
from temseg.sweep.search.space import (
    COST_WORDS,
    DICE,
    SEARCH_METHOD,
    SearchConfig,
    space_for,
    study_name,
)
from temseg.sweep.search.summary import (
    answer_in_words,
    compare_with_grid,
    print_summary,
    seeds_overview,
    summarize_study,
    write_summary,
)
from temseg.tables import print_table
from temseg.trial import TAG_SEARCH, RayTrial


@dataclass(frozen=True)
class TrialFactory:
    """Architecture -> the grid's ``{"train", "meta"}`` trial dict, tagged with the study.

    Built by :func:`temseg.sweep.space.make_trial` exactly as the grid's. The trial key also holds
    the study, so two searches (another seed, another objective) never share a run, while a
    resumed search finds its own.
    """

    sweep: Any  # temseg.sweep.profile.SweepConfig with epochs = max_epochs, seeds = (train seed,)
    dataset: Any  # temseg.trial.Dataset
    tracking_uri: str
    experiment_id: str
    study: str
    parent_run_id: str | None = None  # the search's MLflow parent run

    def __call__(self, arch: Architecture) -> dict[str, Any]:
        from temseg.sweep.space import make_trial

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
            parent_run_id=self.parent_run_id,
        )


def _max_concurrent(scfg: SearchConfig, sweep: Any, cluster: Mapping[str, float]) -> int:
    if scfg.max_concurrent:
        return scfg.max_concurrent
    fit = int(cluster.get("CPU", 1) // max(sweep.cpus_per_trial, 1e-9))
    if sweep.gpus_per_trial > 0:
        fit = min(fit, int(cluster.get("GPU", 0) // sweep.gpus_per_trial))
    return max(1, fit)


def _ray_name(storage_path: str, experiment: str, study: str, resume: bool) -> str:
    """Ray's run folder of one study: a fresh one per search; ``--resume`` picks the latest."""
    from temseg.sweep.runtime import ray_run_name

    return ray_run_name(storage_path, f"{experiment}_{study}", resume)


def _mark_stopped(trial: RayTrial, result: Mapping[str, Any]) -> None:
    """Close the MLflow run of a trial ASHA stopped, as KILLED.

    The trainable closes it itself when Ray ends its thread; this covers a trial whose worker
    died before it could (the driver sees every stop).
    """
    from temseg.tracking import TrialRun

    run = TrialRun.for_trial(trial)
    if not run.finished:
        run.stop()


def _describe(scfg: SearchConfig, proposer: Proposer, ds: Any, max_epochs: int) -> str:
    """The study in words: trials, space, objective, ASHA."""
    space = proposer.space
    dil = ""
    if space.dilations:
        dil = f", dilations {list(space.dilations)}"
    elif space.dilation_sets:
        dil = f", dilation sets {[format_seq(d) for d in space.dilation_sets]}"
    cost = f" ({COST_WORDS[scfg.cost]})" if scfg.multi_objective else ""
    return (
        f"up to {scfg.trials} trials of {max_epochs} epochs over {proposer.size} architectures "
        f"(N in {list(space.blocks)}, kernels {list(space.kernels)}{dil}, RF < "
        f"{ds.patch_size} px); objective {scfg.objective}{cost}; ASHA grace period "
        f"{scfg.grace(max_epochs)} epoch(s), factor {scfg.reduction_factor}"
    )


def warm_outcomes(
    proposer: Proposer, rows: Sequence[Mapping[str, Any]], max_epochs: int
) -> tuple[dict[Architecture, Outcome], list[dict[str, Any]], dict[str, int]]:
    """The outcomes a search is warm-started with, from finished runs (:func:`warm_start_rows`).

    A run is used when it was trained for the search's ``max_epochs`` and its architecture is
    in the search's space; of two runs of one architecture the older one. Its outcome is the
    one the searcher would have told had it trained the run itself: complete, with the run's
    best validation dice (and cost). Returns the outcomes, the rows used, and the count of
    rows left out per reason.
    """
    out: dict[Architecture, Outcome] = {}
    used: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for r in rows:
        arch = Architecture(
            int(r["num_blocks"]), parse_seq(str(r["pools"])), parse_seq(str(r["dilations"]))
        )
        if int(r["epochs"]) != max_epochs:
            why = f"not trained for {max_epochs} epochs"
        elif proposer.space.violation(arch) > 0:
            why = "outside the search space"
        elif arch in out:
            why = "a second run of one architecture"
        else:
            result = {DICE: r["best_val_dice"], "epoch": r["epochs"]}
            result["test_hard_dice"] = r["test_hard_dice"]
            out[arch] = proposer.outcome(arch, result)
            used.append(dict(r))
            continue
        skipped[why] = skipped.get(why, 0) + 1
    return out, used, skipped


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
    """The search as a :class:`temseg.sweep.campaign.Strategy`: one study per dataset and seed.

    Every dataset of the sweep config (a :class:`temseg.sweep.profile.SweepConfig`: datasets, the
    space, the protocol, resources per trial) is searched once per seed of ``scfg`` (trials,
    epochs, objective, seeds, tolerance, ASHA). ``experiment`` is the MLflow experiment of the
    search runs; ``compare_grid`` a finished grid experiment in the same store (each summary
    then carries ``comparison``: compute to come within ``scfg.tolerance`` of the grid's best,
    as fractions of the grid's); ``warm_start`` an experiment in the same store whose finished
    runs (same dataset, the search's training seed, trained for ``max_epochs``) are told to the
    sampler, not retrained. ``studies``, ``grids`` and ``warm`` are filled by the preflight.
    """

    scfg: SearchConfig
    experiment: str
    compare_grid: str | None = None
    warm_start: str | None = None
    studies: list[tuple[Any, int, str]] = dataclasses.field(default_factory=list)
    grids: dict[str, Any] = dataclasses.field(default_factory=dict)
    warm: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    name = "search"  # the kind of the search's parent run

    def experiment_of(self, sweep: Any) -> str:
        return self.experiment

    def identity(self) -> dict[str, Any]:
        from temseg.config import to_dict

        return {"search": to_dict(self.scfg), "warm_start": self.warm_start}

    def max_epochs(self, sweep: Any) -> int:
        return self.scfg.max_epochs or sweep.epochs

    def plan(self, sweep: Any, datasets: Sequence[Any]) -> None:
        print_table(plan(self.scfg, sweep, datasets))
        print(
            f"\n{len(datasets)} dataset(s) x {len(self.scfg.seeds)} search seed(s), up to "
            f"{self.scfg.trials} trials of {self.max_epochs(sweep)} epochs each; nothing run.",
            flush=True,
        )

    def check_space(self, sweep: Any, patch_size: int) -> None:
        space_for(sweep, self.scfg, patch_size)

    def train_seed(self, sweep: Any) -> int:
        return sweep.seeds[0] if self.scfg.train_seed is None else self.scfg.train_seed

    def preflight(self, sweep: Any, where: Any) -> None:
        from temseg.analysis import collect

        for name in (self.compare_grid, self.warm_start):
            if name:  # ValueError naming the experiments there: exit 2 before Ray starts
                collect.get_experiment(collect.client_for(where.tracking_uri), name)

    def check_datasets(self, sweep: Any, where: Any, datasets: Sequence[Any]) -> None:
        scfg, uri = self.scfg, where.tracking_uri
        studies = [(ds, s, study_name(ds.name, scfg, s)) for ds in datasets for s in scfg.seeds]
        if not where.resume:
            taken = [s for _, _, s in studies if study_has_runs(uri, self.experiment, s)]
            if taken:
                raise ConfigError(
                    f"experiment {self.experiment!r} already holds runs of {taken}; continue "
                    "them with --resume, or start afresh with another --seed or --experiment"
                )
        if self.compare_grid:
            self.grids = {ds.name: grid_summary(uri, self.compare_grid, ds.name) for ds in datasets}
        if self.warm_start:
            seed = self.train_seed(sweep)
            self.warm = {
                ds.name: warm_start_rows(uri, self.warm_start, ds.name, seed) for ds in datasets
            }
        self.studies = studies

    def run(
        self,
        sweep: Any,
        where: Any,
        cluster: Mapping[str, float],
        datasets: Sequence[Any],
        parent_run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        from temseg import tracking
        from temseg.sweep import runtime as ttune

        scfg, uri, experiment = self.scfg, where.tracking_uri, self.experiment
        max_epochs = self.max_epochs(sweep)
        train_seed = self.train_seed(sweep)
        protocol = dataclasses.replace(sweep, epochs=max_epochs, seeds=(train_seed,))
        experiment_id = tracking.ensure_experiment(uri, experiment)
        concurrent = _max_concurrent(scfg, sweep, cluster)
        summaries: list[dict[str, Any]] = []
        for ds, seed, study in self.studies:
            space = space_for(sweep, scfg, ds.patch_size)
            factory = TrialFactory(protocol, ds, uri, experiment_id, study, parent_run_id)
            proposer = Proposer(space, scfg.objective, scfg.cost, max_epochs, factory)
            print(
                f"\nsearch {study}: {_describe(scfg, proposer, ds, max_epochs)}; TPE seed "
                f"{seed}; {concurrent} trial(s) at a time on {where.where}",
                flush=True,
            )
            warm, warm_rows = {}, []
            if self.warm_start:
                warm, warm_rows, skipped = warm_outcomes(
                    proposer, self.warm.get(ds.name, []), max_epochs
                )
                left = "".join(f"; {n} left out: {why}" for why, n in sorted(skipped.items()))
                print(
                    f"warm start: told the sampler {len(warm)} finished run(s) of experiment "
                    f"{self.warm_start!r} ({ds.name}, training seed {train_seed}), not "
                    f"retrained{left}",
                    flush=True,
                )
            name = _ray_name(where.storage_path, experiment, study, where.resume)
            ttune.run_search(
                proposer,
                ttune.TuneRun.of(sweep, where, name),
                sampler=make_sampler(seed, n_startup_trials=scfg.startup_trials()),
                study_name=study,
                trials=scfg.trials,
                max_epochs=max_epochs,
                max_concurrent=concurrent,
                grace_period=scfg.grace(max_epochs),
                reduction_factor=scfg.reduction_factor,
                on_stopped=_mark_stopped,
                warm_start=warm,
            )
            rows, events = search_trials(uri, experiment, study)
            own = {r["run_id"] for r in rows}  # warm-started from its own experiment, resumed
            warm_rows = [r for r in warm_rows if r["run_id"] not in own]
            # the told runs are trials of this search's answer, though not of its compute
            summary = summarize_study(
                warm_rows + rows, dataset=ds, scfg=scfg, study=study, max_epochs=max_epochs
            )
            summary.update(
                seed=seed,
                experiment=experiment,
                ray_results=str(Path(where.storage_path) / name),
                warm_started=len(warm_rows),
            )
            comparison = None
            if self.compare_grid:
                grid = self.grids[ds.name]
                comparison = compare_with_grid(
                    rows, events, grid, tolerance=scfg.tolerance, max_epochs=max_epochs
                )
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
            summary["report_dir"] = str(write_summary(summary, out))
            print_summary(summary)
            summaries.append(summary)
        return summaries

    def report(
        self, sweep: Any, where: Any, results: list[dict[str, Any]], seconds: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        from temseg.tracking import browse_hint

        if self.compare_grid and len(results) > 1:
            print("\n" + seeds_overview(results), flush=True)
        print(
            f"\nMLflow: {where.tracking_uri} (experiment {self.experiment!r}, runs tagged "
            f"{TAG_SEARCH}={SEARCH_METHOD}); browse with\n"
            f"{browse_hint(where.tracking_uri, self.experiment)}",
            flush=True,
        )
        return parent_summary(results)


def parent_summary(summaries: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
    """Metrics and tags of the search's parent run: per study the best validation dice and
    the recommended network; the plain-words answers become the run's description."""
    metrics: dict[str, float] = {
        # trained by this search: told runs of --warm-start are in "trained" but cost nothing
        "trials": sum(s["trained"] - s.get("warm_started", 0) for s in summaries),
        "failed_trials": sum(s["failed"] for s in summaries),
    }
    tags: dict[str, str] = {}
    for s in summaries:
        study, best, rec = s["study"], s.get("best"), s.get("recommended")
        if best:
            metrics[f"{study}/best_val_dice"] = float(best["best_val_dice"])
        if rec:
            metrics[f"{study}/recommended_rf_px"] = float(rec["rf_px"])
            tags[f"temseg.recommended.{study}"] = (
                f"{network_label(rec['num_blocks'], rec['pools'], rec['dilations'])}, RF "
                f"{rec['rf_px']} px, val dice {rec['best_val_dice']:.3f}"
            )
        comparison = s.get("comparison") or {}
        for k, v in comparison.items():
            if isinstance(v, (int, float)) and k.startswith("fraction"):
                metrics[f"{study}/{k}"] = float(v)
    answers = [s["answer"] for s in summaries if s.get("answer")]
    if answers:
        tags["mlflow.note.content"] = "\n\n".join(answers)
    return metrics, tags
