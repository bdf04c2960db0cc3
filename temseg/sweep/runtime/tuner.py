"""Ray's runtime and one Tuner for both strategies: a grid and a search are the same Tuner.

The grid samples every trial of its space (``tune.grid_search``); the search asks an
:class:`temseg.sweep.runtime.searcher.ArchitectureSearcher` and stops weak trials with ASHA. Both run
the same trainable (:mod:`temseg.sweep.runtime.trainable`), the same resume, and return the same
:class:`temseg.trial.TrialResult` per trial.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from temseg.sweep.profile import SweepConfig
from temseg.trial import RayTrial, TrialResult
from temseg.sweep.runtime import processes
from temseg.sweep.runtime import trainable as trainable_module
from temseg.sweep.runtime.callbacks import _Progress, _SearchProgress
from temseg.sweep.runtime.searcher import STRICT_METRIC_ENV, ArchitectureSearcher

LOOPBACK_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else "127.0.0.1"


class ResourceError(ValueError):
    """The cluster cannot give a trial the resources asked for."""


def init_ray(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> dict[str, float]:
    """Connect to ``address`` (``HOST:PORT`` of a running cluster) or start a local runtime.

    A local runtime gets an explicit CPU count and stays on loopback: Ray would otherwise
    advertise the machine's external address, which a single-node runtime never needs.
    ``num_gpus`` declares its GPUs (default: the ones Ray detects); Ray only counts them, so
    a runtime may declare logical GPUs that trials share (``--gpus-per-trial 0.25``) and
    train on CPUs (``--device cpu``).
    Returns the cluster's resources.
    """
    if not ray.is_initialized():
        common = dict(
            include_dashboard=False,
            configure_logging=True,
            logging_level="WARNING",
            log_to_driver=False,  # trial errors are reported per trial and kept in MLflow
        )
        if address:
            ray.init(address=address, **common)
        else:
            stale = processes.owned_processes(dead_owners=True)
            if stale:
                print(
                    f"ray: stopping {len(stale)} process(es) left by an earlier temseg run "
                    "that was killed",
                    flush=True,
                )
                processes.terminate(stale)
            # every process the local runtime starts inherits this mark (see shutdown_ray)
            os.environ[processes.OWNER_ENV] = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                num_gpus=num_gpus,
                _node_ip_address=LOOPBACK_NODE_IP,
                **common,
            )
    return dict(ray.cluster_resources())


def shutdown_ray() -> None:
    """Stop Ray; for a local runtime, also every process it started that is still alive."""
    if ray.is_initialized():
        ray.shutdown()
    mark = os.environ.pop(processes.OWNER_ENV, None)
    if mark:
        left = processes.owned_processes(mark)
        if left:
            processes.terminate(left)


def check_resources(
    cpus_per_trial: float, gpus_per_trial: float, cluster: dict[str, float]
) -> None:
    """Refuse, before anything runs, a per-trial request the cluster can never satisfy.

    The request itself (CPUs > 0, GPUs >= 0 and whole above 1) was checked when the sweep's
    config was built (:class:`temseg.sweep.profile.SweepConfig`).
    """
    gpus = cluster.get("GPU", 0.0)
    if gpus_per_trial > 0 and gpus < gpus_per_trial:
        raise ResourceError(
            f"--gpus-per-trial {gpus_per_trial} but the Ray cluster has {gpus:g} GPUs: no trial "
            "could ever start. Use --gpus-per-trial 0 to train on CPUs, or connect to a cluster "
            "with GPU nodes (--address)."
        )
    cpus = cluster.get("CPU", 0.0)
    if cpus < cpus_per_trial:
        raise ResourceError(
            f"--cpus-per-trial {cpus_per_trial} but the Ray cluster has {cpus:g} CPUs in all"
        )


def _runnable(storage_path: str, resources: dict[str, float]) -> Any:
    """The trainable with its resources and the folder that keeps each trial's state."""
    state_root = os.path.join(storage_path, "trial_state")
    return tune.with_resources(tune.with_parameters(trainable_module.trainable, state_root=state_root), resources)


def ray_run_name(storage_path: str, key: str, resume: bool) -> str:
    """Ray's run folder for ``key``: a fresh one per run; ``resume`` picks the latest again.

    The latest folder's name is kept in ``<storage_path>/<key>.latest``.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:150]
    pointer = Path(storage_path) / f"{safe}.latest"
    if resume and pointer.is_file():
        return pointer.read_text().strip()
    name = f"{safe}_{time.strftime('%Y%m%d-%H%M%S')}"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(name + "\n")
    return name


def trial_dirname(run_name: str) -> str:
    """A trial's folder name from its run name: ``c0.090 N2 p4-4 s752`` -> ``c0.090_N2_p4-4_s752``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_name)[:120]


def _dirname(trial) -> str:
    return trial_dirname(RayTrial.of(trial.config).run_name) + f"_{trial.trial_id}"


@dataclass(frozen=True)
class TuneRun:
    """Where one Tuner runs: its folder ``storage_path/name``, each trial's resources,
    whether it resumes an interrupted run there, and how often a failed trial is retried."""

    name: str
    storage_path: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    resume: bool = False
    max_failures: int = 2

    @classmethod
    def of(cls, cfg: SweepConfig, where: Any, name: str) -> TuneRun:
        """A sweep's run ``name`` under ``where`` (a :class:`temseg.sweep.campaign.Placement`)."""
        return cls(
            name,
            where.storage_path,
            cpus_per_trial=cfg.cpus_per_trial,
            gpus_per_trial=cfg.gpus_per_trial,
            resume=where.resume,
            max_failures=cfg.max_failures,
        )


def _restore(what: str, path: str, runnable: Any, total: int | None) -> Any:
    """The Tuner of an interrupted run at ``path``, or None (then a new one starts).

    A snapshot saved by an older temseg may name classes that moved (its callbacks, the
    searcher): it is then started again instead. Nothing is lost that MLflow and the trial
    state hold: finished trials are found by their key and not trained again, unfinished
    ones continue from their last finished epoch (a search's sampler starts afresh).
    """
    if not tune.Tuner.can_restore(path):
        print(f"nothing to resume at {path}; starting the {what}", flush=True)
        return None
    try:
        tuner = tune.Tuner.restore(
            path, trainable=runnable, resume_unfinished=True, resume_errored=True
        )
    except (ModuleNotFoundError, AttributeError, ImportError) as exc:
        print(
            f"cannot restore the {what} at {path} ({type(exc).__name__}: {exc}; saved by an "
            "earlier temseg); starting it again: finished trials are not trained again, "
            "unfinished ones continue from their last epoch",
            flush=True,
        )
        return None
    done = sum(1 for r in tuner.get_results() if r.metrics.get("finished"))
    # a grid knows its size; a search its trials trained to the end so far
    state = f"{done}/{total} trials already finished" if total is not None else (
        f"{done} trials already trained to the end"
    )
    print(f"resuming {what} {path}: {state}", flush=True)
    return tuner


def _tune(
    what: str, run: TuneRun, *, callback: Any, total: int | None = None, **tune_config: Any
) -> list[TrialResult]:
    """The one Tuner of a grid and a search: build it (or restore it with ``resume``), run
    it, and return one :class:`TrialResult` per trial that started.

    ``tune_config`` holds what differs: the grid's ``param_space``, the search's searcher
    and scheduler, how many trials run at once. A restored Tuner brings its own back (its
    param space or searcher state, callbacks), so they are only used for a new one.
    """
    runnable = _runnable(run.storage_path, {"cpu": run.cpus_per_trial, "gpu": run.gpus_per_trial})
    path = os.path.join(run.storage_path, run.name)
    tuner = _restore(what, path, runnable, total) if run.resume else None
    if tuner is None:
        param_space = tune_config.pop("param_space", {})
        tuner = tune.Tuner(
            runnable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                trial_dirname_creator=_dirname, reuse_actors=False, **tune_config
            ),
            run_config=tune.RunConfig(
                name=run.name,
                storage_path=run.storage_path,
                failure_config=tune.FailureConfig(max_failures=run.max_failures),
                callbacks=[callback],
                verbose=0,
            ),
        )
    results = tuner.fit()
    return [
        TrialResult(
            RayTrial.of(r.config),
            dict(r.metrics or {}),
            None if r.error is None else f"{type(r.error).__name__}: {r.error}",
        )
        for r in results
        if (r.config or {}).get("trial")  # a search's trials that never started have none
    ]


def run_trials(
    trials: Sequence[dict[str, Any]], run: TuneRun, *, max_concurrent: int = 0
) -> list[TrialResult]:
    """Run ``trials`` (each :meth:`temseg.trial.RayTrial.encode`'d) as one Ray Tune grid.

    With ``run.resume``, an interrupted sweep at ``storage_path/name`` continues: finished trials
    are kept, unfinished and errored ones continue from their last finished epoch. Returns one
    :class:`TrialResult` per trial.
    """
    epochs = RayTrial.decode(trials[0]).train.epochs if trials else 1
    results = _tune(
        "sweep",
        run,
        callback=_Progress(len(trials), epochs),
        total=len(trials),
        param_space={"trial": tune.grid_search(list(trials))},
        max_concurrent_trials=max_concurrent or None,
    )
    # Ctrl-C: Tune stops gracefully and returns every trial, those never started without a
    # config; say so instead of reporting a partial sweep as if it were whole
    if len(results) < len(trials):
        raise KeyboardInterrupt(f"{len(trials) - len(results)} of {len(trials)} trials not started")
    return results


def run_search(
    proposer: Any,
    run: TuneRun,
    *,
    sampler: Any,
    study_name: str,
    trials: int,
    max_epochs: int,
    max_concurrent: int = 1,
    grace_period: int = 1,
    reduction_factor: int = 3,
    on_stopped=None,
    warm_start: Any = None,
) -> list[TrialResult]:
    """Run one architecture search: OptunaSearch proposals, ASHA stopping, the grid's trainable.

    Parameters
    ----------
    proposer
        A :class:`temseg.sweep.search.Proposer` (space, objectives, trial configs).
    sampler
        The seeded Optuna sampler (:func:`temseg.sweep.search.make_sampler`).
    trials
        Ray trials at most (each trains a new architecture); fewer when the space runs out.
    max_concurrent
        Trials training at once. The searcher proposes only when a slot frees, so each
        proposal sees every result finished before it.
    grace_period, reduction_factor
        ASHA on the ``epoch`` axis, metric ``best_val_hard_dice``, up to ``max_epochs``.
    on_stopped
        ``on_stopped(trial, last_result)`` for each trial ASHA stopped (e.g. close its run).
    warm_start
        Architecture -> Outcome of runs trained before, told to the study and never proposed
        (:meth:`temseg.sweep.search.Proposer.warm_start`); ignored when a search is restored.

    With ``run.resume``, an interrupted search at ``storage_path/name`` continues: the searcher's
    study and known outcomes come back, finished trials are kept and unfinished ones restart
    from their last finished epoch. Returns one :class:`TrialResult` per trial that started.
    """
    previous = os.environ.get(STRICT_METRIC_ENV)
    os.environ[STRICT_METRIC_ENV] = "1"
    try:
        return _tune(
            "search",
            run,
            callback=_SearchProgress(trials, on_stopped, epochs=max_epochs),
            search_alg=ArchitectureSearcher(
                proposer, sampler=sampler, study_name=study_name, warm_start=warm_start
            ),
            scheduler=ASHAScheduler(
                time_attr="epoch",
                metric=proposer.objectives[0][0],
                mode="max",
                max_t=max_epochs,
                grace_period=min(grace_period, max_epochs),
                reduction_factor=reduction_factor,
            ),
            num_samples=trials,
            max_concurrent_trials=max(1, max_concurrent),
        )
    finally:
        if previous is None:
            os.environ.pop(STRICT_METRIC_ENV, None)
        else:
            os.environ[STRICT_METRIC_ENV] = previous
