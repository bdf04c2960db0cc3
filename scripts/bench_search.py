#!/usr/bin/env python
"""Replay search strategies against a recorded benchmark table, without training.

    python scripts/bench_search.py --table docs/bench/table.csv --search-seeds 30
    python scripts/bench_search.py --table docs/bench/table.csv --search-seeds 30 \\
        --out-json docs/bench/strategies.json --out-md docs/bench/strategies.md
    python scripts/bench_search.py --export --tracking-uri sqlite:///$PWD/mlruns.db \\
        --experiment temseg-bench --out docs/bench/table.csv

The table (temseg/sweep/search/table.py) holds every architecture x seed of a grid with its
per-epoch validation and test dice and seconds (``python sweeps/grid.py --profile bench``,
then ``--export``). Each strategy (grid, random, tpe, tpe+asha, tpe+hyperband, random+asha;
temseg/sweep/search/replay.py says exactly what each does) runs once per search seed 0..N-1; per
strategy the script reports the median and interquartile range over search seeds of the
compute (trial-epochs and seconds) until the incumbent (best validation dice among fully
trained trials) has test dice within --tolerance of the grid's best architecture's seed-mean,
as a share of the full grid's compute; how often the final recommendation is the grid's best
(match rate); how often the target was reached (hit rate); and the Spearman correlation of the
early-stopping rungs' validation dice with the final test dice. Same table, seeds and flags:
the same output, byte for byte (for any --jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # run from a checkout without installing


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/bench_search.py",
        description=__doc__.split("\n\n")[0].strip().split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--table", help="the table CSV to replay against")
    p.add_argument(
        "--search-seeds",
        type=int,
        default=30,
        metavar="N",
        help="searches per strategy, with search seeds 0..N-1 (default 30)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="a search hits when its incumbent's test dice is within this of the grid best's "
        "seed-mean (default 0.01)",
    )
    p.add_argument(
        "--strategies", nargs="+", metavar="S", help="strategies to replay (default: all)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="processes to replay in (default: the CPUs, at most 8); the output does not "
        "depend on it",
    )
    p.add_argument("--out-json", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--out-md", metavar="FILE", help="write the markdown table")
    g = p.add_argument_group("export a table from MLflow instead")
    g.add_argument("--export", action="store_true", help="write --out from --experiment")
    g.add_argument("--tracking-uri", help="MLflow store, e.g. sqlite:////abs/path/mlruns.db")
    g.add_argument("--experiment", help="the grid's MLflow experiment, e.g. temseg-bench")
    g.add_argument("--dataset", help="the dataset, where the experiment holds several")
    g.add_argument(
        "--out", metavar="FILE", help="the table CSV to write, e.g. docs/bench/table.csv"
    )
    return p


def export(args: argparse.Namespace) -> int:
    from temseg.sweep.search.table import export_table, load_table, write_table

    missing = [f for f in ("tracking_uri", "experiment", "out") if not getattr(args, f)]
    if missing:
        raise ValueError(f"--export needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
    rows = export_table(args.tracking_uri, args.experiment, dataset=args.dataset)
    path = write_table(rows, args.out)
    table = load_table(path)  # the written file must load back
    best, mean = table.grid_best
    print(
        f"wrote {path}: {len(rows)} rows, {len(table.architectures)} architectures x "
        f"{len(table.seeds)} seeds x {table.max_epochs} epochs; grid best {best.name} "
        f"(seed-mean test dice {mean:.4f})"
    )
    return 0


def replay(args: argparse.Namespace) -> int:
    from temseg.sweep.search.replay import STRATEGIES, bench, markdown
    from temseg.sweep.search.table import load_table

    if not args.table:
        raise ValueError("give --table FILE (or --export)")
    if args.search_seeds < 1:
        raise ValueError(f"--search-seeds must be >= 1, got {args.search_seeds}")
    if not 0 <= args.tolerance < 1:
        raise ValueError(f"--tolerance must lie in [0, 1), got {args.tolerance}")
    strategies = args.strategies or list(STRATEGIES)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    table = load_table(args.table)
    jobs = args.jobs or min(8, os.cpu_count() or 1)
    result = bench(
        table,
        list(range(args.search_seeds)),
        strategies=strategies,
        tolerance=args.tolerance,
        jobs=jobs,
    )
    result = {"table_file": args.table, **result}
    md = markdown(result)
    sys.stdout.write(md)
    if args.out_md:
        Path(args.out_md).write_text(md)
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return export(args) if args.export else replay(args)
    except ValueError as exc:  # TableError is one
        print(f"bench_search.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
