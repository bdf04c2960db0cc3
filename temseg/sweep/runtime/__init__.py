"""The only package that imports Ray: the runtime, one Tuner, the trainable, the progress.

- :mod:`temseg.sweep.runtime.tuner`: start or join a Ray runtime, check resources, one Tuner for a
  grid (:func:`run_trials`) and a search (:func:`run_search`), resume;
- :mod:`temseg.sweep.runtime.trainable`: :func:`temseg.train.fit` as a Ray trainable, logging to MLflow;
- :mod:`temseg.sweep.runtime.searcher`: Ray's ``OptunaSearch`` asking a :class:`temseg.sweep.search.Proposer`;
- :mod:`temseg.sweep.runtime.callbacks` and :mod:`temseg.sweep.runtime.progress`: the terminal progress;
- :mod:`temseg.sweep.runtime.processes`: every process a local runtime started, stopped at the end.

The Ray API moves between releases (``ray.train.report`` became ``ray.tune.report``); keeping
every Ray call here keeps that churn in one place. Written against Ray 2.60.
"""

import os

# Ray's experiment-snapshot chatter is noise at this scale; temseg prints one line per trial.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

from temseg.sweep.runtime.tuner import (  # noqa: E402
    ResourceError,
    TuneRun,
    check_resources,
    init_ray,
    ray_run_name,
    run_search,
    run_trials,
    shutdown_ray,
)

__all__ = [
    "ResourceError",
    "TuneRun",
    "check_resources",
    "init_ray",
    "ray_run_name",
    "run_search",
    "run_trials",
    "shutdown_ray",
]
