"""One orchestration for every sweep: preflight, data, Ray runtime, resume, report.

A grid (:class:`temseg.sweep.grid.GridStrategy`) and an architecture search
(:class:`temseg.sweep.search.SearchStrategy`) are the same experiment with a different strategy over
one space, so they share one :func:`run_campaign`:

1. preflight, before anything starts: the config was validated when it was built; then the
   tracking store (``check_tracking``), the patch stores and the strategy's space on each,
   the strategy's own checks (e.g. a study that would collide, a grid to compare with), and
   the cluster address (a TCP connect: ``ray.init`` would retry an unreachable address for
   minutes);
2. the Ray runtime (local or ``--address``) and the per-trial resources it must fit;
3. data preparation (the profile's synthetic series, created once under ``data/``);
4. the strategy's run (Ray Tune, through :mod:`temseg.sweep.runtime`), resumable with ``resume``;
5. the strategy's report, after the runtime is shut down.

``dry_run`` stops after planning the datasets and prints the strategy's plan. Nothing here
imports Ray or MLflow at module level: ``--dry-run`` and every preflight error answer at once.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from temseg.config import ConfigError
from temseg.sweep.profile import SweepConfig
from temseg.trial import Dataset

R = TypeVar("R")

PROJECT_DIR = Path(__file__).resolve().parents[2]


class ClusterError(RuntimeError):
    """The Ray cluster given by ``--address`` cannot be used."""


def check_address(address: str, *, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (``ray.init`` would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto", ray://...: left to Ray
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at --address {address} ({exc.strerror or exc}); start its "
            f"head there (`ray start --head --port {port}`) or leave --address out to run on "
            "a local Ray runtime"
        ) from None


@dataclass(frozen=True)
class Placement:
    """Where a sweep runs and keeps its results (not what it trains: that is the config)."""

    project_dir: Path
    tracking_uri: str
    storage_path: str  # absolute: Ray Tune changes the working directory per trial
    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None  # GPUs a local runtime declares (default: those Ray detects)
    resume: bool = False
    report_dir: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.project_dir / "data"

    def report_path(self, experiment: str) -> Path:
        return Path(self.report_dir or self.project_dir / "reports" / experiment)

    @property
    def where(self) -> str:
        return f"cluster {self.address}" if self.address else "a local Ray runtime"


def placement(
    project_dir: Path = PROJECT_DIR,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    report_dir: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resume: bool = False,
) -> Placement:
    """A :class:`Placement` with the project's defaults filled in (no MLflow import)."""
    from temseg.analysis.collect import default_tracking_uri

    project_dir = Path(project_dir)
    return Placement(
        project_dir=project_dir,
        tracking_uri=tracking_uri or default_tracking_uri(project_dir),
        storage_path=str(Path(storage_path or project_dir / "ray_results").resolve()),
        address=address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resume=resume,
        report_dir=report_dir,
    )


class Strategy(Protocol[R]):
    """What differs between a grid and a search; :func:`run_campaign` does the rest.

    ``R`` is what one strategy's run gives: a :class:`temseg.trial.TrialResult` per trial
    (the grid), a summary per study (the search).
    """

    def plan(self, cfg: SweepConfig, datasets: Sequence[Dataset]) -> None:
        """Print what would run on ``datasets`` (``--dry-run``)."""

    def check_space(self, cfg: SweepConfig, patch_size: int) -> None:
        """Raise :class:`ConfigError` when the space has nothing to train at ``patch_size``."""

    def preflight(self, cfg: SweepConfig, where: Placement) -> None:
        """Checks of the tracking store that need no dataset (e.g. a grid to compare with)."""

    def check_datasets(self, cfg: SweepConfig, where: Placement, datasets: Sequence[Dataset]) -> None:
        """Checks that need the datasets (e.g. a study that would collide)."""

    name: str  # "grid" or "search": the kind of the sweep's parent run

    def experiment_of(self, cfg: SweepConfig) -> str:
        """The MLflow experiment of the trial runs and the parent run."""

    def identity(self) -> dict[str, Any]:
        """What the strategy adds to the config that identifies the sweep (its parent run)."""

    def run(
        self,
        cfg: SweepConfig,
        where: Placement,
        cluster: dict[str, float],
        datasets: Sequence[Dataset],
        parent_run_id: str | None = None,
    ) -> list[R]:
        """Train (Ray is up); one result per trial or study; trial runs are children of
        ``parent_run_id``."""

    def report(
        self, cfg: SweepConfig, where: Placement, results: list[R], seconds: float
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Summaries and reports, after the Ray runtime is shut down; the parent run's
        summary metrics and tags."""


def connect(
    address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> dict[str, float]:
    """Start a local Ray runtime or connect to ``address``; the cluster's resources."""
    from temseg.sweep import runtime as ttune

    try:
        return ttune.init_ray(address, num_cpus=num_cpus, num_gpus=num_gpus)
    except ConnectionError as exc:  # e.g. a token-auth cluster and no token here
        if not address:
            raise
        raise ClusterError(
            f"could not connect to the Ray cluster at --address {address} ({exc}); if it uses "
            "token authentication, set RAY_AUTH_MODE=token and give its token "
            "(~/.ray/auth_token or RAY_AUTH_TOKEN); if it was started with "
            "RAY_AUTH_MODE=disabled, set that here too"
        ) from None


def check_local_cuda(device: str, gpus_per_trial: float) -> None:
    """Refuse GPU trials on a local runtime whose torch cannot use CUDA (unless ``--device
    cpu``): every trial would fail on its first line. On a cluster each GPU node's torch
    decides, and its trials fail fast instead (:func:`temseg.sweep.runtime.trial_device`)."""
    if gpus_per_trial <= 0 or device == "cpu":
        return
    from temseg.train import cuda_problem

    problem = cuda_problem()
    if problem:
        raise ClusterError(
            f"--gpus-per-trial {gpus_per_trial:g} gives every trial a GPU, but {problem}: "
            "install the CUDA build of torch (README, Quick start), or pass --device cpu to "
            "train on CPUs while Ray shares out the GPUs it counts"
        )


def run_campaign(
    cfg: SweepConfig, strategy: Strategy[R], where: Placement, *, dry_run: bool = False
) -> list[R]:
    """Preflight, runtime, data, run and report of one sweep (see the module docstring).

    ``cfg`` is a :class:`temseg.sweep.profile.SweepConfig` (validated when built).
    """
    from temseg.sweep import datasets as tsweep

    if dry_run:
        strategy.plan(cfg, tsweep.planned_datasets(cfg, where.data_dir))
        return []

    # Everything that can fail at start fails here, before Ray starts or a trial is scheduled.
    from temseg import tracking

    tracking.check_tracking(where.tracking_uri)
    strategy.preflight(cfg, where)
    datasets = tsweep.open_datasets(list(cfg.data)) if cfg.data else None
    for ds in datasets or []:
        try:
            strategy.check_space(cfg, ds.patch_size)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (patch store {ds.path})") from None
    if datasets is None:  # the synthetic series' patch size, before any store is generated
        try:
            strategy.check_space(cfg, cfg.synthetic.patch_size)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (the {cfg.profile} profile's synthetic series)") from None
    if where.address:
        check_address(where.address)
    if datasets is not None:
        strategy.check_datasets(cfg, where, datasets)

    from temseg.sweep import runtime as ttune

    cluster = connect(where.address, num_cpus=where.num_cpus, num_gpus=where.num_gpus)
    parent = None
    try:
        try:
            ttune.check_resources(cfg.cpus_per_trial, cfg.gpus_per_trial, cluster)
            if not where.address:  # a local runtime's trials train with this torch
                check_local_cuda(cfg.device, cfg.gpus_per_trial)
            if datasets is None:
                datasets = tsweep.synthetic_series(cfg, where.data_dir)
                strategy.check_datasets(cfg, where, datasets)
            parent = open_parent(cfg, strategy, where)
            t0 = time.time()
            results = strategy.run(cfg, where, cluster, datasets, parent_run_id=parent.run_id)
            seconds = time.time() - t0
        finally:
            if not where.address:
                ttune.shutdown_ray()
        try:
            metrics, tags = strategy.report(cfg, where, results, seconds)
        except Exception as exc:  # the trials are in MLflow either way: say so, keep going
            print(f"parent run: no summary ({type(exc).__name__}: {exc})", file=sys.stderr)
            metrics, tags = {}, {}
        parent.finish(where.report_path(strategy.experiment_of(cfg)), metrics=metrics, tags=tags)
    except BaseException as exc:
        if parent is not None:
            parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    return results


# Fields of a sweep config that say where and how it runs, not what it trains: left out of
# the sweep's identity, so e.g. another --cpus-per-trial continues the same parent run.
PLACEMENT_FIELDS = ("cpus_per_trial", "gpus_per_trial", "device", "max_failures", "description")
# Fields added after sweeps were first keyed: left out of the identity while unset (None), so
# a sweep keyed before they existed finds its parent run again (keys pinned in test_parent.py).
LATER_FIELDS = {"synthetic": ("generator_version",)}


def sweep_identity(cfg: SweepConfig, strategy: Strategy[Any]) -> tuple[dict[str, Any], str]:
    """The config a sweep's parent run records, and the key it is found again by: the kind,
    the experiment and the resolved config without its placement (``PLACEMENT_FIELDS``)."""
    from temseg import tracking
    from temseg.config import to_dict

    config = to_dict(cfg)
    config.update(strategy.identity())
    identity = {k: v for k, v in config.items() if k not in PLACEMENT_FIELDS}
    for section, names in LATER_FIELDS.items():
        if isinstance(identity.get(section), dict):
            identity[section] = {
                k: v for k, v in identity[section].items() if not (k in names and v is None)
            }
    return config, tracking.sweep_key(strategy.name, strategy.experiment_of(cfg), identity)


def open_parent(cfg: SweepConfig, strategy: Strategy[Any], where: Placement) -> Any:
    """The sweep's MLflow parent run, created or found again (:class:`tracking.SweepRun`)."""
    from temseg import tracking

    config, key = sweep_identity(cfg, strategy)
    experiment_id = tracking.ensure_experiment(where.tracking_uri, strategy.experiment_of(cfg))
    parent = tracking.SweepRun(
        where.tracking_uri,
        experiment_id,
        kind=strategy.name,
        name=f"{strategy.name} {cfg.profile}",
        config=config,
        key=key,
        tags={"temseg.profile": cfg.profile},
    )
    state = "continues" if parent.resumed else "is"
    print(f"MLflow: the sweep's parent run {state} {parent.run_id} ({strategy.name} {cfg.profile})")
    return parent
