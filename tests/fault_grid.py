#!/usr/bin/env python
"""Test-only driver: ``sweeps/grid.py`` whose trials crash on purpose, for the cluster tests.

    TEMSEG_TEST_FAULT='{"run_name": "...", "epoch": 1, "times": 1, "marker_dir": "/tmp/f"}' \\
        python tests/fault_grid.py --profile smoke ...   # the flags of sweeps/grid.py

Fault injection lives here, in the tests, not in the user's command line: this script wraps
:func:`temseg.sweep.runtime.trainable.trainable` so that the trial named ``run_name`` (every trial when it is
null) raises at the report of epoch ``epoch`` the first ``times`` times (``times`` < 0:
always), before that epoch is logged or reported to Ray, as a crash inside training would.
Tries are counted in files under ``marker_dir``, which every try of the trial shares, on
whichever node it runs. The wrapper is defined in ``__main__``, so Ray pickles it by value
and the worker nodes need nothing but temseg itself.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FAULT = json.loads(os.environ["TEMSEG_TEST_FAULT"])
if not isinstance(FAULT, dict) or not {"epoch", "times", "marker_dir"} <= set(FAULT):
    raise SystemExit("TEMSEG_TEST_FAULT: a JSON object with epoch, times, marker_dir (run_name)")


def crash_maybe(fault: dict, epoch: int) -> None:
    """Raise at ``fault['epoch']`` the first ``fault['times']`` times (counted in files)."""
    import os
    from pathlib import Path

    if epoch != int(fault["epoch"]):
        return
    marker_dir = Path(fault["marker_dir"])
    marker_dir.mkdir(parents=True, exist_ok=True)
    tries = len(list(marker_dir.glob("crash-*")))
    times = int(fault["times"])
    if times < 0 or tries < times:
        (marker_dir / f"crash-{tries}-{os.getpid()}").touch()
        raise RuntimeError(f"injected fault at epoch {epoch} (try {tries + 1})")


def faulty_trainable(config: dict, state_root: str | None = None) -> None:
    """temseg's trainable, whose ``fit`` reports through :func:`crash_maybe` first."""
    from temseg.trial import RayTrial
    from temseg.sweep.runtime import trainable as tt

    # On a Ray worker temseg.sweep.runtime is imported afresh, unpatched: tt.trainable is temseg's own
    # (only this driver's copy is replaced). It calls the module's ``fit`` at call time.
    original = tt.trainable
    fault = FAULT
    if fault.get("run_name") not in (None, RayTrial.of(config).run_name):
        return original(config, state_root)
    fit = tt.fit

    def crashing_fit(cfg, report, **kwargs):
        def crashing_report(row):
            crash_maybe(fault, row["epoch"])
            report(row)

        return fit(cfg, crashing_report, **kwargs)

    tt.fit = crashing_fit  # this worker process runs this one trial (reuse_actors=False)
    try:
        original(config, state_root)
    finally:
        tt.fit = fit


if __name__ == "__main__":
    import temseg.sweep.runtime.trainable

    # what temseg.sweep.runtime.tuner._runnable hands to Ray
    temseg.sweep.runtime.trainable.trainable = faulty_trainable
    sys.path.insert(0, str(REPO / "sweeps"))
    import grid

    sys.exit(grid.main())
