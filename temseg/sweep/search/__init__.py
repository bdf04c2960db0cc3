"""Optuna search for the smallest, cheapest network whose receptive field is on the plateau.

The grid (:mod:`temseg.sweep.grid`) trains every architecture with every seed: 30 x 5 per dataset
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
very code the Ray searcher (:class:`temseg.sweep.runtime.ArchitectureSearcher`) runs, without Ray.

Layout, one module per concern (none imports Ray; MLflow is only read, in ``runs``):

- :mod:`temseg.sweep.search.space`: the config, objectives and costs, the space (pure);
- :mod:`temseg.sweep.search.proposer`: proposals and outcomes (pure Optuna);
- :mod:`temseg.sweep.search.runs`: a study and a grid read back from MLflow;
- :mod:`temseg.sweep.search.summary`: Pareto front, recommendation, grid comparison, words, files;
- :mod:`temseg.sweep.search.strategy`: the search as a :class:`temseg.sweep.campaign.Strategy`;
- :mod:`temseg.sweep.search.table`: a recorded benchmark table (every architecture x seed with its
  per-epoch curves), exported from MLflow;
- :mod:`temseg.sweep.search.replay`: search strategies replayed against such a table, no training
  (``scripts/bench_search.py``).

Every Ray call is in :func:`temseg.sweep.runtime.run_search`, every MLflow write in
:mod:`temseg.tracking`; the FLOP count is :func:`temseg.receptive_field.forward_flops`.
"""

from temseg.receptive_field import forward_flops, train_gflop
from temseg.sweep.search.proposer import Outcome, Proposer, make_sampler, propose_sequence
from temseg.sweep.search.runs import grid_summary, search_trials, study_has_runs, warm_start_rows
from temseg.sweep.search.space import (
    CONSTRAINT,
    COST_METRIC,
    COST_WORDS,
    COSTS,
    DICE,
    OBJECTIVES,
    SEARCH_METHOD,
    SearchConfig,
    SearchSpace,
    cost_of,
    search_config,
    space_for,
    study_name,
)
from temseg.sweep.search.strategy import (
    SearchStrategy,
    TrialFactory,
    plan,
    warm_outcomes,
)
from temseg.sweep.search.summary import (
    answer_in_words,
    compare_with_grid,
    incumbent_to_reach,
    pareto_front,
    cheapest_within,
    seeds_overview,
    summarize_study,
)

__all__ = [
    "CONSTRAINT",
    "COST_METRIC",
    "COST_WORDS",
    "COSTS",
    "DICE",
    "OBJECTIVES",
    "SEARCH_METHOD",
    "Outcome",
    "Proposer",
    "SearchConfig",
    "SearchSpace",
    "SearchStrategy",
    "TrialFactory",
    "answer_in_words",
    "compare_with_grid",
    "cost_of",
    "forward_flops",
    "grid_summary",
    "incumbent_to_reach",
    "make_sampler",
    "pareto_front",
    "plan",
    "propose_sequence",
    "cheapest_within",
    "search_config",
    "search_trials",
    "seeds_overview",
    "space_for",
    "study_has_runs",
    "study_name",
    "summarize_study",
    "train_gflop",
    "warm_outcomes",
    "warm_start_rows",
]
