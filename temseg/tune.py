"""The only module that imports Ray: trainable adapter, resources, runtime, Tuner.

:func:`trainable` adapts :func:`temseg.train.fit` to Ray Tune: it reports every epoch, keeps
the trial's resumable state in a folder of its own on the storage path, so a trial that
crashes, or whose node dies, restarts from its last finished epoch, and it logs to MLflow from
inside the trial (so trials on other nodes log too, through an ``http://`` tracking server).

The Ray API moves between releases (``ray.train.report`` became ``ray.tune.report``); keeping
every Ray call here keeps that churn in one file. Written against Ray 2.60.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Ray's experiment-snapshot chatter is noise at this scale; temseg prints one line per trial.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from temseg.train import cuda_problem, fit

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
            stale = owned_processes(dead_owners=True)
            if stale:
                print(
                    f"ray: stopping {len(stale)} process(es) left by an earlier temseg run "
                    "that was killed",
                    flush=True,
                )
                _terminate(stale)
            # every process the local runtime starts inherits this mark (see shutdown_ray)
            os.environ[OWNER_ENV] = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                num_gpus=num_gpus,
                _node_ip_address=LOOPBACK_NODE_IP,
                **common,
            )
    return dict(ray.cluster_resources())


# The local Ray runtime's processes (GCS, raylet, dashboard and runtime-env agents, workers)
# all inherit this environment variable from the driver that started them, so the driver can
# find every one of them in /proc, whatever Ray's own shutdown leaves behind: after a killed
# driver two agents were once seen alive a minute later, ignoring SIGTERM.
OWNER_ENV = "TEMSEG_RAY_OWNER"


def owned_processes(mark: str | None = None, *, dead_owners: bool = False) -> list[int]:
    """Pids of processes carrying ``OWNER_ENV``: equal to ``mark``, or (``dead_owners``) one
    whose driver pid is gone. Linux /proc only (elsewhere: none); other users' are skipped."""
    if not os.path.isdir("/proc"):
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        prefix = OWNER_ENV.encode() + b"="
        value = next((e[len(prefix) :].decode() for e in env if e.startswith(prefix)), None)
        if value is None:
            continue
        if mark is not None and value == mark:
            out.append(int(entry))
        elif dead_owners and not _alive(int(value.split(":")[0])):
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace`` seconds."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.time() + grace
        while time.time() < deadline and any(_alive(p) and not _zombie(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _alive(p) and not _zombie(p)]
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def shutdown_ray() -> None:
    """Stop Ray; for a local runtime, also every process it started that is still alive."""
    if ray.is_initialized():
        ray.shutdown()
    mark = os.environ.pop(OWNER_ENV, None)
    if mark:
        left = owned_processes(mark)
        if left:
            _terminate(left)


def check_resources(
    cpus_per_trial: float, gpus_per_trial: float, cluster: dict[str, float]
) -> None:
    """Refuse, before anything runs, a per-trial request the cluster can never satisfy."""
    if cpus_per_trial <= 0:
        raise ResourceError(f"--cpus-per-trial must be > 0, got {cpus_per_trial}")
    if gpus_per_trial < 0:
        raise ResourceError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial}")
    if gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial):
        raise ResourceError(f"--gpus-per-trial above 1 must be whole, got {gpus_per_trial}")
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


def trainable(config: dict[str, Any], state_root: str | None = None) -> None:
    """Ray Tune function trainable: one training of :func:`temseg.train.fit`.

    The trial's resumable state (``last.pt``, ``best.pt``) lives in its own folder,
    ``<state_root>/<trial_key>``, on the sweep's storage path (shared storage on a cluster),
    written atomically by ``fit`` after every epoch. A retried trial, a trial whose node died
    and a trial of a resumed sweep all continue from there. It is deliberately not a Ray Tune
    checkpoint: with ``CheckpointConfig(num_to_keep=...)`` a trial's newer checkpoint can
    delete the one that the driver's last experiment snapshot still names, and a driver killed
    in that window leaves a sweep that ``Tuner.restore`` cannot resume ("Could not recover from
    checkpoint as it does not exist on storage anymore", seen here under SIGKILL). The folder
    is removed once the trial's MLflow run is finished.
    """
    from temseg.tracking import TrialRun

    trial = config["trial"]  # the grid samples one {"train": ..., "meta": ...} per trial
    train_cfg, meta = dict(trial["train"]), trial["meta"]
    train_cfg.update(trial_device(train_cfg, meta.get("gpus_per_trial", 0.0)))
    run = TrialRun.from_meta(meta)
    if run.finished:  # e.g. the driver died after this trial finished: do not train again
        tune.report({"epoch": train_cfg["epochs"], **run.final, "finished": True, "skipped": True})
        return
    _tag_attempt(run)

    if state_root:
        workdir = Path(state_root, meta["trial_key"])
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="temseg-trial-"))
    already_logged = run.last_logged_epoch()
    state = {"finished": False}

    def report(row: dict[str, Any]) -> None:
        if row["epoch"] > already_logged:
            run.log_epoch(row)
        if row.get("done"):
            run.finish(row, workdir)
            state["finished"] = True
        tune.report(_metrics(row))

    try:
        fit(train_cfg, report, workdir=workdir)
    except Exception as exc:
        run.fail(f"{type(exc).__name__}: {exc}")
        raise
    except BaseException:  # Ray ends a stopped trial's thread (e.g. an early-stopping scheduler)
        if not state["finished"]:
            run.stop()
        raise
    if state["finished"] or not state_root:
        shutil.rmtree(workdir, ignore_errors=True)


def trial_device(train_cfg: dict[str, Any], gpus_per_trial: float) -> dict[str, Any]:
    """Where this trial trains, from what Ray gave it and the sweep's ``device``.

    Ray gave no GPU: the CPU. Ray gave a GPU share: that GPU, capped at the share, unless the
    user asked for ``--device cpu`` (e.g. logical GPUs on a CPU machine); a torch that cannot
    use CUDA then fails the trial with one line instead of quietly training on the CPU.
    """
    if not ray.get_gpu_ids() or train_cfg.get("device") == "cpu":
        return {"device": "cpu"}
    problem = cuda_problem()
    if problem:
        node = ray.get_runtime_context().get_node_id()[:12]
        raise RuntimeError(
            f"Ray gave this trial GPU {ray.get_gpu_ids()} on node {node}, but {problem}; "
            "install the CUDA build of torch there, or pass --device cpu to train on CPUs"
        )
    out: dict[str, Any] = {"device": "cuda"}
    if not train_cfg.get("gpu_fraction"):  # cap this process at its share of the GPU
        out["gpu_fraction"] = float(gpus_per_trial)
    return out


def _runnable(storage_path: str, resources: dict[str, float]) -> Any:
    """The trainable with its resources and the folder that keeps each trial's state."""
    state_root = os.path.join(storage_path, "trial_state")
    return tune.with_resources(tune.with_parameters(trainable, state_root=state_root), resources)


TAG_NODE_ID, TAG_NODES, TAG_ATTEMPTS = "temseg.node_id", "temseg.nodes", "temseg.attempts"


def _tag_attempt(run: Any) -> None:
    """Tag the trial's MLflow run with where this try runs: the Ray node id of this try
    (``temseg.node_id``), every node the trial has run on in order (``temseg.nodes``) and
    how many tries started training (``temseg.attempts``: retries, node losses, resumes)."""
    node = ray.get_runtime_context().get_node_id()
    nodes = [n for n in run.tags.get(TAG_NODES, "").split(",") if n]
    run.set_tags(
        {
            TAG_NODE_ID: node,
            TAG_NODES: ",".join(nodes if node in nodes else [*nodes, node]),
            TAG_ATTEMPTS: int(run.tags.get(TAG_ATTEMPTS, 0)) + 1,
        }
    )


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    """Numeric metrics for Ray; ``done`` is Ray's reserved stop key, so it travels as ``finished``."""
    out = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "done"}
    out["finished"] = bool(row.get("done", False))
    return out


def _duration(seconds: float) -> str:
    """``95`` -> ``1m35s``; ``4000`` -> ``1h06m``."""
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Where a sweep stands: trials done/running/failed, epochs done of the total, time left.

    Fed by Ray Tune's callbacks (:class:`_Progress`, :class:`_SearchProgress`); pure, so
    tests drive it directly. The time left is the epochs still to train over the epoch rate
    measured in this run (epochs a resumed or reused trial had already trained count as done
    but not in the rate). On a terminal the status is one line rewritten in place; elsewhere
    (CI logs, files) it is a plain line at most every ``every`` seconds.
    """

    def __init__(
        self,
        trials: int,
        epochs: int,
        *,
        stream=sys.stdout,
        live: bool | None = None,
        every: float = 60.0,
        label: str = "sweep",
        upper_bound: bool = False,
    ) -> None:
        self.trials, self.epochs_per_trial, self.stream = trials, epochs, stream
        self.live = bool(getattr(stream, "isatty", lambda: False)()) if live is None else live
        self.every, self.label, self.upper_bound = every, label, upper_bound
        self.t0 = time.time()
        self.last_plain = self.t0
        self.last_draw = 0.0
        self.epoch_of: dict[str, int] = {}  # trial id -> last epoch seen
        self.running: set[str] = set()
        self.done = self.failed = 0  # done counts stopped trials too (stopped_ids)
        self.trained = 0  # epochs trained in this run (the rate's numerator)
        self.drawn = False
        self.timed = False
        self.stopped_ids: set[str] = set()
        self.epoch_seconds: list[float] = []
        self.ended_here = 0  # trials that ended in this run

    @property
    def epochs_total(self) -> int:
        return self.trials * self.epochs_per_trial

    @property
    def epochs_done(self) -> int:
        return sum(self.epoch_of.values())

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.draw()

    def result(
        self, trial_id: str, epoch: int, *, reused: bool = False, seconds: float | None = None
    ) -> None:
        """A trial reported ``epoch`` (``seconds``: that epoch's training time)."""
        if seconds is not None and not reused:
            self.epoch_seconds.append(float(seconds))
        before = self.epoch_of.get(trial_id)
        if not reused:
            # a trial's first result after a resume is the first epoch it trains now
            self.trained += 1 if before is None else max(0, epoch - before)
        self.epoch_of[trial_id] = max(epoch, before or 0)
        self.running.add(trial_id)
        self.draw()

    def sync(self, trials) -> None:
        """Counts from Ray's own trial list (so a restored sweep counts where it was)."""
        self.done = sum(t.status == "TERMINATED" for t in trials)
        self.failed = sum(t.status == "ERROR" for t in trials)
        self.running = {t.trial_id for t in trials if t.status == "RUNNING"}
        for t in trials:
            epoch = int((t.last_result or {}).get("epoch", 0))
            if t.status in ("TERMINATED", "ERROR") and t.trial_id not in self.stopped_ids:
                epoch = self.epochs_per_trial  # ended: nothing left to train
            if epoch:
                self.epoch_of[t.trial_id] = max(epoch, self.epoch_of.get(t.trial_id, 0))

    def end(self, trial_id: str, status: str, epochs: int | None = None) -> None:
        """``status``: done, failed or stopped (a stopped trial's remaining epochs are
        dropped from the total, as the search or ASHA decided not to train them)."""
        self.running.discard(trial_id)
        self.ended_here += 1
        if status == "failed":
            self.failed += 1
        else:
            self.done += 1
        if status == "stopped":
            self.stopped_ids.add(trial_id)
        elif epochs is not None:
            self.epoch_of[trial_id] = epochs

    def left_seconds(self) -> float | None:
        """Epochs left x seconds per epoch: from the wall clock once a trial has ended here
        (start-up, tests and checkpoints included); before that, from the epochs' own
        seconds shared by the trials running at once (a wall rate over one epoch would
        count the runtime's start-up as training)."""
        elapsed = time.time() - self.t0
        if self.trained == 0 or elapsed <= 0:
            return None
        remaining = max(0, self.epochs_total - self.epochs_done - self._stopped_epochs())
        if self.ended_here == 0 and self.epoch_seconds:
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
            return remaining * per_epoch / max(1, len(self.running))
        return remaining * elapsed / self.trained

    def _stopped_epochs(self) -> int:
        """Epochs that stopped trials (ASHA) will never train."""
        return sum(self.epochs_per_trial - self.epoch_of.get(t, 0) for t in self.stopped_ids)

    def status(self) -> str:
        ended = self.done + self.failed
        left = self.left_seconds()
        eta = "time left: after the first epoch" if left is None else f"~{_duration(left)} left"
        if left is not None and self.upper_bound:
            eta = f"at most {eta}"
        total = f"{'<= ' if self.upper_bound else ''}{self.epochs_total}"
        return (
            f"{self.label}: {ended}/{self.trials} trials done ({self.failed} failed), "
            f"{len(self.running)} running; epochs {self.epochs_done}/{total}; "
            f"{_duration(time.time() - self.t0)} elapsed, {eta}"
        )

    def draw(self, *, force: bool = False) -> None:
        now = time.time()
        if self.live:
            if force or now - self.last_draw >= 0.5:
                self.stream.write("\r\x1b[K" + self.status())
                self.stream.flush()
                self.last_draw, self.drawn = now, True
        elif force or now - self.last_plain >= self.every or (self.trained and not self.timed):
            print(self.status(), file=self.stream, flush=True)
            self.last_plain = now
        self.timed = self.timed or bool(self.trained)  # the first estimate is shown at once

    def line(self, text: str) -> None:
        """A permanent line (a finished trial), above the live status."""
        if self.live and self.drawn:
            self.stream.write("\r\x1b[K")
        print(text, file=self.stream, flush=True)
        if self.live:
            self.draw(force=True)

    def close(self) -> None:
        if self.live and self.drawn:
            self.stream.write("\r\x1b[K" + self.status() + "\n")
            self.stream.flush()


class _Live(tune.Callback):
    """Ray Tune callbacks that feed ``self.progress`` (a :class:`Progress`)."""

    progress: Progress

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" in result:
            self.progress.result(
                trial.trial_id,
                int(result["epoch"]),
                reused=bool(result.get("skipped")),
                seconds=result.get("epoch_seconds"),
            )

    def on_step(self, iteration, trials, **info):
        self.progress.draw()  # the elapsed time moves on a terminal; throttled

    def on_experiment_end(self, trials, **info):
        self.progress.close()


class _Progress(_Live):
    """A grid's progress: a line per finished or failed trial, and :class:`Progress`."""

    def __init__(self, total: int, epochs: int = 1, stream=sys.stdout) -> None:
        self.total, self.stream = total, stream
        self.progress = Progress(total, epochs, stream=stream)

    def _line(self, trial, status: str) -> None:
        meta = trial.config["trial"]["meta"]
        r = trial.last_result or {}
        dice = r.get("test_hard_dice")
        extra = (
            f"test_hard_dice {dice:.4f}  best_epoch {int(r.get('best_epoch', 0))}"
            if dice is not None
            else f"error: {str(trial.error_file or '')[-60:]}"
        )
        p = self.progress
        p.line(
            f"[{p.done + p.failed}/{self.total}] {status:8s} {meta['run_name']:32s} RF "
            f"{meta['params']['rf_px']:>3} px  {extra}  ({time.time() - p.t0:.0f} s)"
        )

    def setup(self, **info):
        # also on a restored sweep, whose callbacks come back from its snapshot: time anew
        self.progress = Progress(self.total, self.progress.epochs_per_trial, stream=self.stream)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.sync(trials)
        self.progress.start(trial.trial_id)

    def _ended(self, trials, trial, status: str) -> None:
        p = self.progress
        p.sync([t for t in trials if t.trial_id != trial.trial_id])  # Ray may not mark it yet
        p.end(trial.trial_id, status, p.epochs_per_trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "done")
        self._line(trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "failed")
        self._line(trial, "FAILED")


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
    return trial_dirname(trial.config["trial"]["meta"]["run_name"]) + f"_{trial.trial_id}"


def run_trials(
    trials: Sequence[dict[str, Any]],
    *,
    name: str,
    storage_path: str,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    resume: bool = False,
    max_failures: int = 2,
    max_concurrent: int = 0,
) -> list[dict[str, Any]]:
    """Run ``trials`` (each ``{"train": ..., "meta": ...}``) as one Ray Tune grid.

    With ``resume``, an interrupted sweep at ``storage_path/name`` continues: finished trials
    are kept, unfinished and errored ones continue from their last finished epoch. Returns one dict
    per trial: ``meta``, the last reported ``metrics`` and ``error`` (None when it finished).
    """
    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    runnable = _runnable(storage_path, resources)
    path = os.path.join(storage_path, name)
    progress = _Progress(len(trials), int(trials[0]["train"]["epochs"]) if trials else 1)
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        callbacks=[progress],
        verbose=0,
    )
    if resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(
            path, trainable=runnable, resume_unfinished=True, resume_errored=True
        )
        finished = sum(1 for r in tuner.get_results() if r.metrics.get("finished"))
        print(
            f"resuming sweep {path}: {finished}/{len(trials)} trials already finished", flush=True
        )
    else:
        if resume:
            print(f"nothing to resume at {path}; starting the sweep", flush=True)
        tuner = tune.Tuner(
            runnable,
            param_space={"trial": tune.grid_search(list(trials))},
            tune_config=tune.TuneConfig(
                trial_dirname_creator=_dirname,
                max_concurrent_trials=max_concurrent or None,
                reuse_actors=False,
            ),
            run_config=run_config,
        )
    results = tuner.fit()
    # Ctrl-C: Tune stops gracefully and returns every trial, those never started without a
    # config; say so instead of reporting a partial sweep as if it were whole
    not_started = sum(1 for r in results if not (r.config or {}).get("trial"))
    if not_started:
        raise KeyboardInterrupt(f"{not_started} of {len(trials)} trials not started")
    out = []
    for r in results:
        out.append(
            {
                "meta": r.config["trial"]["meta"],
                "metrics": dict(r.metrics or {}),
                "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}",
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Architecture search: Ray Tune's OptunaSearch and ASHA over the same trainable.
# temseg.search plans it (space, proposals, outcomes, reports); only the Ray glue lives here.

from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

# The trainable's skip path (its MLflow run had already finished) reports that run's final
# metrics, which lack the running best validation dice that ASHA and the searcher read. Both
# tolerate a result without their metric; Ray's strict check would instead abort the whole
# search, so it is off while a search runs (and the cost objective, which no trial reports,
# is filled in by the searcher).
_STRICT_METRIC_ENV = "TUNE_DISABLE_STRICT_METRIC_CHECKING"


class ArchitectureSearcher(OptunaSearch):
    """Ray's ``OptunaSearch`` asking its study through a :class:`temseg.search.Proposer`.

    The proposer samples the define-by-run space and never hands out an architecture the
    patch cannot train (told to the study as a constraint violation) nor one already trained
    in this search (told its known outcome again), so every Ray trial trains a new, valid
    network. Outcomes: trained to the end = COMPLETE (dice, or dice and cost), stopped by ASHA
    = PRUNED with its per-epoch dice, errored = FAIL. The whole state (study, sampler, known
    outcomes) is pickled by ``OptunaSearch.save``, so a restored search goes on where it was.
    """

    def __init__(
        self, proposer: Any, *, sampler: Any, study_name: str = "temseg", warm_start: Any = None
    ) -> None:
        metrics = [m for m, _ in proposer.objectives]
        modes = [d for _, d in proposer.objectives]
        super().__init__(
            space=proposer.space.sample,  # define-by-run; the proposer calls it
            metric=metrics if len(metrics) > 1 else metrics[0],
            mode=modes if len(modes) > 1 else modes[0],
            sampler=sampler,
            study_name=study_name,
        )
        self._proposer = proposer
        self._dice = metrics[0]
        self._known: dict[Any, Any] = {}  # Architecture -> Outcome
        self._arch: dict[str, Any] = {}  # Ray trial id -> Architecture still training
        self._history: dict[str, list[tuple[int, float]]] = {}
        if warm_start:  # finished runs told as this search's own (Proposer.warm_start)
            self._known.update(proposer.warm_start(self._ot_study, warm_start))

    def suggest(self, trial_id: str) -> dict | str | None:
        if len(self._known) >= self._proposer.size:
            return Searcher.FINISHED  # every architecture of the space is trained
        got = self._proposer.propose(
            self._ot_study, known=self._known, running=set(self._arch.values())
        )
        if got is None:  # only repeats came back: wait for results, or stop if none can come
            return None if self._arch else Searcher.FINISHED
        ot_trial, arch = got
        self._ot_trials[trial_id] = ot_trial
        self._arch[trial_id] = arch
        return {"trial": self._proposer.config(arch)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._arch and self._dice in result:
            step = int(result.get("epoch", len(self._history.get(trial_id, ())) + 1))
            self._history.setdefault(trial_id, []).append((step, float(result[self._dice])))

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        arch = self._arch.pop(trial_id, None)
        ot_trial = self._ot_trials.pop(trial_id, None)
        if arch is None or ot_trial is None:
            return
        outcome = self._proposer.outcome(
            arch, result, history=self._history.pop(trial_id, ()), error=error
        )
        self._proposer.tell(self._ot_study, ot_trial, arch, outcome)
        self._known[arch] = outcome
        self._completed_trials.add(trial_id)


class _SearchProgress(_Live):
    """One line per trained, stopped or failed search trial; closes stopped trials' runs."""

    def __init__(self, total: int, on_stopped=None, stream=sys.stdout, epochs: int = 1) -> None:
        self.total, self.done, self.stream, self.t0 = total, 0, stream, time.time()
        self.on_stopped = on_stopped
        self.epochs = epochs
        self.setup()

    def setup(self, **info):
        # also on a restored search, whose callbacks come back from its snapshot: time anew
        self.t0 = time.time()
        self.progress = Progress(
            self.total, self.epochs, stream=self.stream, label="search", upper_bound=True
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.start(trial.trial_id)

    def _line(self, trial, trials, status: str) -> None:
        # counted from Ray's trial list, so a restored search goes on counting where it was
        ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        self.done = len(ended | {trial.trial_id})
        meta = trial.config["trial"]["meta"]
        r = trial.last_result or {}
        dice = r.get("best_val_hard_dice", r.get("val_hard_dice"))
        extra = (
            f"best val dice {dice:.4f} after {int(r.get('epoch', 0))} epochs"
            if dice is not None
            else f"error: {str(trial.error_file or '')[-60:]}"
        )
        self.progress.line(
            f"[{self.done}/{self.total}] {status:8s} {meta['run_name']:32s} "
            f"RF {meta['params']['rf_px']:>3} px  {extra}  ({time.time() - self.t0:.0f} s)"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        if "test_hard_dice" in r:
            self.progress.end(trial.trial_id, "done", self.epochs)
            self._line(trial, trials, "reused" if r.get("skipped") else "done")
            return
        if "epoch" not in r:  # never started (the search ended first): no run to close
            return
        self.progress.end(trial.trial_id, "stopped")
        self._line(trial, trials, "stopped")
        if self.on_stopped is not None:
            try:
                self.on_stopped(trial.config["trial"]["meta"], r)
            except Exception as exc:  # bookkeeping only: never end the search for it
                print(f"  (could not close its MLflow run: {exc})", file=self.stream, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.progress.end(trial.trial_id, "failed", self.epochs)
        self._line(trial, trials, "FAILED")


def _search_dirname(trial) -> str:
    return trial_dirname(trial.config["trial"]["meta"]["run_name"]) + f"_{trial.trial_id}"


def run_search(
    proposer: Any,
    *,
    sampler: Any,
    study_name: str,
    trials: int,
    max_epochs: int,
    name: str,
    storage_path: str,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    resume: bool = False,
    max_failures: int = 2,
    max_concurrent: int = 1,
    grace_period: int = 1,
    reduction_factor: int = 3,
    on_stopped=None,
    warm_start: Any = None,
) -> list[dict[str, Any]]:
    """Run one architecture search: OptunaSearch proposals, ASHA stopping, the grid's trainable.

    Parameters
    ----------
    proposer
        A :class:`temseg.search.Proposer` (space, objectives, trial configs).
    sampler
        The seeded Optuna sampler (:func:`temseg.search.make_sampler`).
    trials
        Ray trials at most (each trains a new architecture); fewer when the space runs out.
    max_concurrent
        Trials training at once. The searcher proposes only when a slot frees, so each
        proposal sees every result finished before it.
    grace_period, reduction_factor
        ASHA on the ``epoch`` axis, metric ``best_val_hard_dice``, up to ``max_epochs``.
    on_stopped
        ``on_stopped(meta, last_result)`` for each trial ASHA stopped (e.g. close its run).
    warm_start
        Architecture -> Outcome of runs trained before, told to the study and never proposed
        (:meth:`temseg.search.Proposer.warm_start`); ignored when a search is restored.

    With ``resume``, an interrupted search at ``storage_path/name`` continues: the searcher's
    study and known outcomes come back, finished trials are kept and unfinished ones restart
    from their last finished epoch. Returns one dict per trial: ``meta``, ``metrics`` (the last
    reported result) and ``error``.
    """
    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    runnable = _runnable(storage_path, resources)
    path = os.path.join(storage_path, name)
    if resume and tune.Tuner.can_restore(path):  # the searcher, scheduler, callbacks come back
        tuner = tune.Tuner.restore(
            path, trainable=runnable, resume_unfinished=True, resume_errored=True
        )
        seen = sum(1 for r in tuner.get_results() if r.metrics.get("finished"))
        print(f"resuming search {path}: {seen} trials already trained to the end", flush=True)
    else:
        if resume:
            print(f"nothing to resume at {path}; starting the search", flush=True)
        dice = proposer.objectives[0][0]
        tuner = tune.Tuner(
            runnable,
            param_space={},
            tune_config=tune.TuneConfig(
                search_alg=ArchitectureSearcher(
                    proposer, sampler=sampler, study_name=study_name, warm_start=warm_start
                ),
                scheduler=ASHAScheduler(
                    time_attr="epoch",
                    metric=dice,
                    mode="max",
                    max_t=max_epochs,
                    grace_period=min(grace_period, max_epochs),
                    reduction_factor=reduction_factor,
                ),
                num_samples=trials,
                max_concurrent_trials=max(1, max_concurrent),
                trial_dirname_creator=_search_dirname,
                reuse_actors=False,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[_SearchProgress(trials, on_stopped, epochs=max_epochs)],
                verbose=0,
            ),
        )
    previous = os.environ.get(_STRICT_METRIC_ENV)
    os.environ[_STRICT_METRIC_ENV] = "1"
    try:
        results = tuner.fit()
    finally:
        if previous is None:
            os.environ.pop(_STRICT_METRIC_ENV, None)
        else:
            os.environ[_STRICT_METRIC_ENV] = previous
    out = []
    for r in results:
        if "trial" not in (r.config or {}):
            continue
        out.append(
            {
                "meta": r.config["trial"]["meta"],
                "metrics": dict(r.metrics or {}),
                "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}",
            }
        )
    return out
