"""The sweep: a grid or a search over receptive fields, on a Ray runtime, into MLflow.

Its modules, each importing only those listed below it (``lint-imports`` checks it):

- :mod:`~temseg.sweep.cli`: the faces ``temseg grid`` and ``temseg search`` (and
  ``sweeps/grid.py``, ``sweeps/optuna_search.py``): parse, build a config, call
  :func:`~temseg.sweep.campaign.run_campaign` with a strategy;
- :mod:`~temseg.sweep.campaign`: one orchestration for every sweep (preflight, the Ray
  runtime, data, the parent run, resume, the report);
- the strategies: :mod:`~temseg.sweep.grid` (with :mod:`~temseg.sweep.grid_report`) and
  :mod:`~temseg.sweep.search` (Optuna and ASHA over the same space);
- :mod:`~temseg.sweep.runtime`: the only Ray code (one Tuner, the trainable, progress,
  process cleanup);
- :mod:`~temseg.sweep.space` (architectures and trials) and :mod:`~temseg.sweep.datasets`
  (patch stores, the synthetic series);
- :mod:`~temseg.sweep.profile`: ``sweeps/<name>.yaml`` and the flags as one validated
  :class:`~temseg.sweep.profile.SweepConfig`.

Below the package: :mod:`temseg.tracking` (the MLflow writer), :mod:`temseg.train` (``fit``),
:mod:`temseg.analysis` (the readers), :mod:`temseg.trial` and :mod:`temseg.schema`.
"""
