"""Every process of a local Ray runtime, found by a mark in its environment, and stopped.

Linux ``/proc`` only (elsewhere nothing is found). No Ray import: the mark is set by
:func:`temseg.sweep.runtime.tuner.init_ray` before the runtime starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

# The local Ray runtime's processes (GCS, raylet, dashboard and runtime-env agents, workers)
# all inherit this environment variable from the driver that started them, so the driver can
# find every one of them in /proc, whatever Ray's own shutdown leaves behind: after a killed
# driver two agents were once seen alive a minute later, ignoring SIGTERM.
OWNER_ENV = "TEMSEG_RAY_OWNER"


def owned_processes(mark: str | None = None, *, dead_owners: bool = False) -> list[int]:
    """Pids of processes carrying ``OWNER_ENV``: equal to ``mark``, or (``dead_owners``) one
    whose driver pid is gone. Linux /proc only (elsewhere: none); other users' are skipped."""
    if not os.path.isdir("/proc"):
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        prefix = OWNER_ENV.encode() + b"="
        value = next((e[len(prefix) :].decode() for e in env if e.startswith(prefix)), None)
        if value is None:
            continue
        if mark is not None and value == mark:
            out.append(int(entry))
        elif dead_owners and not alive(int(value.split(":")[0])):
            out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.time() + grace
        while time.time() < deadline and any(alive(p) and not zombie(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if alive(p) and not zombie(p)]
        if not pids:
            return


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
