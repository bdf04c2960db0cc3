"""The grid as a :class:`temseg.sweep.campaign.Strategy`: every trial of the space, one Tuner.

:class:`GridStrategy` plans the trials (:mod:`temseg.sweep.space`), hands them to the Ray
runtime (:func:`temseg.sweep.runtime.run_trials`) and, after it, writes the report
(:mod:`temseg.sweep.grid_report`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from temseg.sweep.profile import SweepConfig
from temseg.sweep.space import architectures, build_trials, plan_trials, trial_table
from temseg.tables import print_table
from temseg.trial import Dataset, TrialResult


@dataclass(frozen=True)
class GridStrategy:
    """The grid as a :class:`temseg.sweep.campaign.Strategy`: every trial of the space, one Tuner."""

    name: str = "grid"

    def plan(self, cfg: SweepConfig, datasets: list[Dataset]) -> None:
        rows = trial_table(cfg, datasets)
        print_table(rows)
        n = len(plan_trials(cfg, datasets))  # the real trials, validated as a run builds them
        print(
            f"\n{n} trials ({len(rows)} architectures x datasets, {len(cfg.seeds)} seeds); nothing run."
        )

    def check_space(self, cfg: SweepConfig, patch_size: int) -> None:
        architectures(cfg, patch_size)

    def experiment_of(self, cfg: SweepConfig) -> str:
        return cfg.experiment_name

    def identity(self) -> dict[str, Any]:
        return {}

    def preflight(self, cfg: SweepConfig, where: Any) -> None:
        pass

    def check_datasets(self, cfg: SweepConfig, where: Any, datasets: list[Dataset]) -> None:
        pass

    def run(
        self,
        cfg: SweepConfig,
        where: Any,
        cluster: dict[str, float],
        datasets: list[Dataset],
        parent_run_id: str | None = None,
    ) -> list[TrialResult]:
        from temseg import tracking
        from temseg.sweep import runtime as ttune

        experiment_id = tracking.ensure_experiment(where.tracking_uri, cfg.experiment_name)
        trials = build_trials(
            cfg,
            datasets,
            tracking_uri=where.tracking_uri,
            experiment_id=experiment_id,
            parent_run_id=parent_run_id,
        )
        print(
            f"sweep: {len(trials)} trials ({cfg.profile} profile) on {where.where} with "
            f"{cluster.get('CPU', 0):g} CPUs / {cluster.get('GPU', 0):g} GPUs; "
            f"{cfg.cpus_per_trial:g} CPU + {cfg.gpus_per_trial:g} GPU per trial",
            flush=True,
        )
        name = ttune.ray_run_name(where.storage_path, cfg.experiment_name, where.resume)
        return ttune.run_trials(trials, ttune.TuneRun.of(cfg, where, name))

    def report(
        self, cfg: SweepConfig, where: Any, results: list[TrialResult], seconds: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        from temseg import tracking
        from temseg.sweep import grid_report
        from temseg.sweep.runtime import ray_run_name

        grid_report.print_summary(results, seconds)
        out_dir = where.report_path(cfg.experiment_name)
        grid_report.write_report(cfg.experiment_name, where.tracking_uri, out_dir)
        grid_report.register_after_sweep(where.tracking_uri, cfg.experiment_name, out_dir)
        # ray_run_name with resume=True reads the pointer the run just wrote (no new folder)
        name = ray_run_name(where.storage_path, cfg.experiment_name, True)
        print(
            f"\nMLflow: {where.tracking_uri} (experiment {cfg.experiment_name!r}); browse with\n"
            f"{tracking.browse_hint(where.tracking_uri, cfg.experiment_name)}\n"
            f"Ray results: {os.path.join(where.storage_path, name)}",
            flush=True,
        )
        metrics, tags = grid_report.summary_for_parent(out_dir)
        failed = sum(1 for r in results if r.error)
        return {**metrics, "trials": len(results), "failed_trials": failed}, tags
