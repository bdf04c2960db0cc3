"""Ray's ``OptunaSearch`` asking its study through a :class:`temseg.sweep.search.Proposer`."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

# The trainable's skip path (its MLflow run had already finished) reports that run's final
# metrics, which lack the running best validation dice that ASHA and the searcher read. Both
# tolerate a result without their metric; Ray's strict check would instead abort the whole
# search, so it is off while a search runs (and the cost objective, which no trial reports,
# is filled in by the searcher).
STRICT_METRIC_ENV = "TUNE_DISABLE_STRICT_METRIC_CHECKING"


class ArchitectureSearcher(OptunaSearch):
    """Ray's ``OptunaSearch`` asking its study through a :class:`temseg.sweep.search.Proposer`.

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
