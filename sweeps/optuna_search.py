#!/usr/bin/env python
"""Optuna architecture search: the documented entry point of ``temseg search``.

    python sweeps/optuna_search.py                          # demo profile, local Ray runtime
    python sweeps/optuna_search.py --profile smoke          # a tiny search (CI)
    python sweeps/optuna_search.py --dry-run                # the space per dataset; run nothing
    python sweeps/optuna_search.py --profile demo --seed 0 1 2 --compare-grid temseg-demo

Runs from a checkout without installing; the flags, help and behaviour are those of
``temseg search`` (temseg/sweep/cli.py), whose orchestration is temseg/sweep/campaign.py, shared
with the grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    from temseg.sweep.cli import search_main

    return search_main(
        argv,
        prog="python sweeps/optuna_search.py",
        name="optuna_search.py",
        project_dir=PROJECT_DIR,
    )


if __name__ == "__main__":
    sys.exit(main())
