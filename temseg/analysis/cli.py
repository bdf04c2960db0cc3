"""Analysis commands (``temseg report``): registered by temseg.cli.

``register`` only declares arguments; pandas, scipy, MLflow and matplotlib are imported by
the handler, so ``temseg --help`` stays instant.
"""

from __future__ import annotations

import argparse


def _cmd_report(args: argparse.Namespace) -> int:
    from temseg.analysis.report import write_report

    out = write_report(
        args.experiment,
        args.tracking_uri,
        args.out,
        networks=not args.no_networks,
        max_patches=args.max_patches or None,
        n_boot=args.n_boot,
        rng=args.seed,
    )
    print(f"report written to {out / 'report.html'} (and report.md, CSVs, PNGs in {out})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="seed aggregates, RF-vs-dice plateau fits, Fourier baseline and figures of a sweep",
        description=(
            "Read one MLflow experiment (one run per trial) and write summary.csv, "
            "plateaus.csv, fourier.csv, fn_overlap.csv, PNG figures, report.md and a "
            "self-contained report.html into --out."
        ),
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument(
        "--tracking-uri",
        help="sqlite:///<absolute path> or http(s)://host:port "
        "(default: sqlite:///<project folder>/mlruns.db)",
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument(
        "--no-networks",
        action="store_true",
        help="skip evaluating checkpoints (no false-negative overlap or network examples)",
    )
    p.add_argument(
        "--max-patches",
        type=int,
        default=32,
        help="test patches per dataset for network evaluation (default 32; 0 = all)",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=_cmd_report)
