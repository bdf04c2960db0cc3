"""Proposals and outcomes: pure Optuna, so the Ray searcher and the tests drive the same code.

:class:`Proposer` asks an Optuna study for architectures that the patch can train and that
this search has not trained yet, and tells it their outcomes; infeasible proposals are told
as constraint violations so TPE learns to avoid them.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from temseg.receptive_field import (
    Architecture,
    parameter_count,
)
from temseg.sweep.search.space import CONSTRAINT, COST_METRIC, DICE, SearchSpace, cost_of


@dataclass(frozen=True)
class Outcome:
    """What training one architecture gave: Optuna state, objective values, dice per epoch."""

    state: str  # "complete" (trained to max_epochs), "pruned" (stopped early), "failed"
    values: tuple[float, ...] = ()
    intermediate: tuple[tuple[int, float], ...] = ()
    epochs: int = 0


def make_sampler(seed: int, *, n_startup_trials: int = 10) -> Any:
    """The search's seeded TPE sampler (multivariate, grouped for the conditional space).

    ``group=True`` lets the multivariate TPE model the pools of each N jointly (RF depends on
    their product); ``constant_liar`` keeps parallel workers off architectures still training.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per created study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=True,
            group=True,
            constant_liar=True,
        )


@dataclass(frozen=True)
class Proposer:
    """Asks an Optuna study for valid, new architectures and tells it their outcomes.

    ``factory`` turns an architecture into a trial config (``{"train", "meta"}``, see
    :class:`TrialFactory`); tests leave it ``None``.
    """

    space: SearchSpace
    objective: str = "dice"
    cost: str = "flops"
    max_epochs: int = 1
    factory: Any = None
    max_tries: int = 200

    @property
    def multi_objective(self) -> bool:
        return self.objective == "dice-per-cost"

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, mode) pairs for Ray's OptunaSearch: val dice, then the cost."""
        out = [(DICE, "max")]
        if self.multi_objective:
            out.append((COST_METRIC[self.cost], "min"))
        return out

    @functools.cached_property
    def size(self) -> int:
        """Number of valid architectures in the space (the search ends when all are trained)."""
        return len(self.space.architectures())

    def create_study(self, seed: int, *, n_startup_trials: int = 10) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            directions=self.directions,
            sampler=make_sampler(seed, n_startup_trials=n_startup_trials),
        )

    def config(self, arch: Architecture) -> dict[str, Any]:
        if self.factory is None:
            raise RuntimeError("this proposer has no trial factory")
        return self.factory(arch)

    def propose(
        self,
        study: Any,
        *,
        known: Mapping[Architecture, Outcome],
        running: Collection[Architecture] = (),
    ) -> tuple[Any, Architecture] | None:
        """The next architecture to train, with its open Optuna trial; ``None`` if none found.

        Infeasible proposals are told as constraint violations, repeats of a finished one are
        told its outcome again, repeats of one still training are told as failed; each time the
        study is asked again, at most ``max_tries`` times.
        """
        import optuna

        for _ in range(self.max_tries):
            trial = study.ask()
            arch = self.space.sample(trial)
            trial.set_user_attr("architecture", arch.name)
            violation = self.space.violation(arch)
            if violation > 0:
                trial.set_user_attr("proposal", "rejected")
                trial.set_constraint(CONSTRAINT, violation)
                study.tell(trial, self._worst(arch))
            elif arch in known:
                trial.set_user_attr("proposal", "repeat")
                trial.set_constraint(CONSTRAINT, 0.0)
                self.tell(study, trial, arch, known[arch])
            elif arch in running:
                trial.set_user_attr("proposal", "repeat-running")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                trial.set_user_attr("proposal", "new")
                trial.set_constraint(CONSTRAINT, 0.0)
                return trial, arch
        return None

    def warm_start(
        self, study: Any, outcomes: Mapping[Architecture, Outcome]
    ) -> dict[Architecture, Outcome]:
        """Tell ``study`` the outcomes of architectures trained before this search.

        Each is enqueued under its parameters (:meth:`SearchSpace.params`), asked, and told
        through :meth:`tell`, as if this search had trained it (user attribute ``proposal`` =
        ``warm-start``); nothing is trained. Architectures the space cannot train are left
        out. Returns the told ones: the caller's ``known``, so they are never proposed again.
        """
        told: dict[Architecture, Outcome] = {}
        for arch in sorted(outcomes, key=lambda a: (a.num_blocks, a.pools, a.dilations)):
            if self.space.violation(arch) > 0:
                continue
            study.enqueue_trial(self.space.params(arch), skip_if_exists=False)
            trial = study.ask()
            got = self.space.sample(trial)
            if got != arch:  # cannot happen for a feasible architecture; never tell a wrong one
                raise RuntimeError(f"warm start: enqueued {arch.name}, the space gave {got.name}")
            trial.set_user_attr("architecture", arch.name)
            trial.set_user_attr("proposal", "warm-start")
            trial.set_constraint(CONSTRAINT, 0.0)
            self.tell(study, trial, arch, outcomes[arch])
            told[arch] = outcomes[arch]
        return told

    def _worst(self, arch: Architecture) -> list[float]:
        worst = [0.0]
        if self.multi_objective:
            # the cost of a network the patch cannot train is undefined; any value will do, as
            # TPE ranks infeasible trials by their violation alone
            worst.append(float(parameter_count(arch.num_blocks)))
        return worst

    def outcome(
        self,
        arch: Architecture,
        result: Mapping[str, Any] | None,
        *,
        history: Sequence[tuple[int, float]] = (),
        error: bool = False,
    ) -> Outcome:
        """The outcome of one trained trial from its last reported result.

        A trial that reported no dice or errored is ``failed``; one stopped before
        ``max_epochs`` is ``pruned`` (TPE ranks it below every complete one, later epochs
        first); otherwise ``complete`` with values (dice) or (dice, cost).
        """
        result = dict(result or {})
        dice = result.get(DICE)
        if dice is None:
            # a trial whose MLflow run had already finished reports that run's final metrics
            # (temseg.sweep.runtime.trainable's skip path): the last val dice stands in for the best
            dice = result.get("val_hard_dice")
        epoch = int(result.get("epoch", 0) or 0)
        hist = tuple((int(s), float(v)) for s, v in history)
        if error or dice is None or not math.isfinite(float(dice)):
            return Outcome("failed", (), hist, epoch)
        finished = "test_hard_dice" in result or epoch >= self.max_epochs
        values = [float(dice)]
        if self.multi_objective:
            values.append(cost_of(arch, self.cost, self.space.patch_size))
        if not finished:
            hist = hist or ((epoch, float(dice)),)
            return Outcome("pruned", tuple(values), hist, epoch)
        return Outcome("complete", tuple(values), hist, epoch)

    def tell(self, study: Any, trial: Any, arch: Architecture, outcome: Outcome) -> None:
        """Tell ``study`` the outcome of ``arch`` on ``trial``."""
        import optuna

        trial.set_user_attr("epochs", outcome.epochs)
        if outcome.state == "failed":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif outcome.state == "pruned":
            if not self.multi_objective:  # Optuna has no intermediate values for several objectives
                for step, value in outcome.intermediate:
                    trial.report(value, step)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, list(outcome.values))


def propose_sequence(
    proposer: Proposer,
    evaluate: Any,
    *,
    n: int,
    seed: int,
    n_startup_trials: int = 10,
    remember: bool = True,
) -> list[Architecture]:
    """Run the proposer sequentially against ``evaluate(arch) -> result dict``, without Ray.

    The Ray searcher does the same with trainings running in parallel. With ``remember``
    false, outcomes are told but not remembered, so architectures may come back: every call
    then asks the sampler afresh (a stress test of the space).
    """
    study = proposer.create_study(seed, n_startup_trials=n_startup_trials)
    known: dict[Architecture, Outcome] = {}
    out = []
    for _ in range(n):
        got = proposer.propose(study, known=known if remember else {})
        if got is None:
            break
        trial, arch = got
        outcome = proposer.outcome(arch, evaluate(arch))
        proposer.tell(study, trial, arch, outcome)
        known[arch] = outcome
        out.append(arch)
        if remember and len(known) >= proposer.size:
            break
    return out
