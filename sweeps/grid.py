#!/usr/bin/env python
"""Receptive-field grid sweep: the documented entry point of ``temseg grid``.

    python sweeps/grid.py                       # the demo profile on a local Ray runtime
    python sweeps/grid.py --profile smoke       # two tiny trials (CI)
    python sweeps/grid.py --dry-run             # the trial table, nothing run

Runs from a checkout without installing; the flags, help and behaviour are those of
``temseg grid`` (temseg/sweep/cli.py), whose orchestration is temseg/sweep/campaign.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    from temseg.sweep.cli import grid_main

    return grid_main(argv, prog="python sweeps/grid.py", name="grid.py", project_dir=PROJECT_DIR)


if __name__ == "__main__":
    sys.exit(main())
