"""The sweep's terminal progress (temseg.sweep.runtime.progress.Progress), driven without Ray."""

from __future__ import annotations

import io

import pytest

from temseg.sweep.runtime.progress import Progress, _duration


def test_counts_epochs_and_estimates_the_time_left(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("temseg.sweep.runtime.progress.time.time", lambda: now[0])
    out = io.StringIO()
    p = Progress(4, 3, stream=out, live=False, every=60)
    assert p.status() == (
        "sweep: 0/4 trials done (0 failed), 0 running; epochs 0/12; 0s elapsed, "
        "time left: after the first epoch"
    )
    p.start("a")
    p.start("b")
    now[0] += 20
    p.result("a", 1)
    # the first estimate is printed at once: 1 epoch in 20 s, 11 left -> 220 s
    assert out.getvalue().splitlines() == [
        "sweep: 0/4 trials done (0 failed), 2 running; epochs 1/12; 20s elapsed, ~3m40s left"
    ]
    now[0] += 20
    p.result("b", 1)
    p.result("a", 2)
    assert len(out.getvalue().splitlines()) == 1  # plain lines at most every 60 s
    # 3 epochs in 40 s, 9 left -> 120 s
    assert p.status().endswith("epochs 3/12; 40s elapsed, ~2m00s left")
    p.end("a", "done", 3)
    p.end("b", "failed", 3)
    assert p.status().startswith("sweep: 2/4 trials done (1 failed), 0 running; epochs 6/12")
    now[0] += 60
    p.draw()
    assert len(out.getvalue().splitlines()) == 2


def test_a_resumed_trial_counts_its_earlier_epochs_as_done_but_not_in_the_rate(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("temseg.sweep.runtime.progress.time.time", lambda: now[0])
    p = Progress(2, 6, stream=io.StringIO(), live=False)
    p.result("skipped", 6, reused=True)  # finished before: no training now
    now[0] = 10.0
    p.result("resumed", 4)  # trained epoch 4 now, after 3 from before
    assert (p.epochs_done, p.trained) == (10, 1)
    assert p.left_seconds() == pytest.approx(2 * 10.0)  # 2 epochs left at 10 s each


def test_stopped_trials_leave_their_untrained_epochs_out_of_the_time_left():
    p = Progress(3, 9, stream=io.StringIO(), live=False, label="search", upper_bound=True)
    p.result("a", 1)
    p.result("a", 3)
    p.end("a", "stopped")
    assert p.epochs_done == 3 and p._stopped_epochs() == 6
    assert "epochs 3/<= 27" in p.status()


def test_on_a_terminal_the_status_is_one_line_rewritten_in_place():
    out = io.StringIO()
    p = Progress(1, 2, stream=out, live=True)
    p.result("a", 1)
    p.line("[1/1] done ...")
    p.close()
    text = out.getvalue()
    assert text.count("\n") == 2 and "\r\x1b[K[1/1] done ...\n" in text
    assert text.endswith("\n") and text.count("\r\x1b[K") == 4  # draw, line, redraw, close


def test_durations_read():
    assert [_duration(s) for s in (0, 59, 95, 3600, 4000)] == [
        "0s",
        "59s",
        "1m35s",
        "1h00m",
        "1h06m",
    ]


def test_before_any_trial_ends_the_estimate_uses_the_epochs_own_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("temseg.sweep.runtime.progress.time.time", lambda: now[0])
    p = Progress(4, 6, stream=io.StringIO(), live=False)
    p.start("a")
    p.start("b")
    now[0] = 30.0  # 20 s of it was the runtime's start-up
    p.result("a", 1, seconds=10.0)
    p.result("b", 1, seconds=12.0)
    # 22 epochs left, 11 s each, 2 at a time
    assert p.left_seconds() == pytest.approx(22 * 11.0 / 2)
    p.end("a", "done", 6)  # from now on: the wall clock (start-up and tests included)
    assert p.left_seconds() == pytest.approx((24 - 7) * 30.0 / 2)
