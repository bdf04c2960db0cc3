"""Where a sweep stands, for the terminal: trials done, running and failed, epochs, time left.

Pure (no Ray): :mod:`temseg.sweep.runtime.callbacks` feeds it from Ray Tune's callbacks and tests
drive it directly.
"""

from __future__ import annotations

import sys
import time


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
