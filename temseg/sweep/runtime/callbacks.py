"""Ray Tune callbacks that show a grid's or a search's progress (:class:`Progress`)."""

from __future__ import annotations

import sys
import time

from ray import tune

from temseg.trial import RayTrial
from temseg.sweep.runtime.progress import Progress


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
        spec = RayTrial.of(trial.config)
        r = trial.last_result or {}
        dice = r.get("test_hard_dice")
        extra = (
            f"test_hard_dice {dice:.4f}  best_epoch {int(r.get('best_epoch', 0))}"
            if dice is not None
            else f"error: {str(trial.error_file or '')[-60:]}"
        )
        p = self.progress
        p.line(
            f"[{p.done + p.failed}/{self.total}] {status:8s} {spec.run_name:44s} RF "
            f"{spec.architecture.rf_px:>3} px  {extra}  ({time.time() - p.t0:.0f} s)"
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
        spec = RayTrial.of(trial.config)
        r = trial.last_result or {}
        dice = r.get("best_val_hard_dice", r.get("val_hard_dice"))
        extra = (
            f"best val dice {dice:.4f} after {int(r.get('epoch', 0))} epochs"
            if dice is not None
            else f"error: {str(trial.error_file or '')[-60:]}"
        )
        self.progress.line(
            f"[{self.done}/{self.total}] {status:8s} {spec.run_name:44s} "
            f"RF {spec.architecture.rf_px:>3} px  {extra}  ({time.time() - self.t0:.0f} s)"
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
                self.on_stopped(RayTrial.of(trial.config), r)
            except Exception as exc:  # bookkeeping only: never end the search for it
                print(f"  (could not close its MLflow run: {exc})", file=self.stream, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.progress.end(trial.trial_id, "failed", self.epochs)
        self._line(trial, trials, "FAILED")
