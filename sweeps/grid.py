#!/usr/bin/env python
"""Receptive-field grid sweep: datasets x N x pool sequences x dilation sets x seeds.

    python sweeps/grid.py                       # the demo profile on a local Ray runtime
    python sweeps/grid.py --profile smoke       # two tiny trials (CI)
    python sweeps/grid.py --dry-run             # the trial table, nothing run
    python sweeps/grid.py --profile paper --address HEAD:6379 \\
        --tracking-uri http://mlflow-host:5000 --gpus-per-trial 0.25 --data /shared/a.zarr ...

Every trial is one MLflow run with per-epoch dice curves. An interrupted sweep continues with
--resume: finished trials are not run again and no MLflow run is duplicated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # run from a checkout without installing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python sweeps/grid.py",
        description=__doc__.split("\n\n")[0]
        + " Profiles live in sweeps/<name>.yaml; flags override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--profile",
        default="demo",
        help="smoke, demo (default), validation or paper (sweeps/*.yaml)",
    )
    p.add_argument(
        "--data",
        nargs="+",
        metavar="STORE",
        help="patch stores (default: the profile's synthetic contrast series, created under data/ on first use)",
    )
    p.add_argument("--blocks", nargs="+", type=int, metavar="N", help="numbers of residual blocks")
    p.add_argument(
        "--pools",
        nargs="+",
        metavar="K-K",
        help="pool sequences, e.g. 8-8 4-4 (default: every sequence over the kernels with RF < patch)",
    )
    p.add_argument(
        "--kernels",
        nargs="+",
        type=int,
        metavar="K",
        help="pool kernels for the default sequences (default 2 4 8)",
    )
    p.add_argument(
        "--dilations", nargs="+", metavar="D-D-D", help="dilation sets (N+1 values), e.g. 1-1-2"
    )
    p.add_argument(
        "--no-dilation-variants",
        dest="dilation_variants",
        action="store_false",
        default=None,
        help="skip the paper's Figure 4 dilation variants",
    )
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (paper: 752 2245 140 9213 956)")
    p.add_argument(
        "--data-seed",
        type=_data_seed,
        metavar="S",
        help="generator seed of the synthetic contrast series (default: the profile's "
        "synthetic.seed); its stores are named <preset>-c<C>-s<S>.zarr and made once",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        help="constant (the paper's) or cosine: the rate follows half a cosine from --lr to 0 "
        "over the run, so short runs end converged",
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="forward pass of every trial: bf16 autocast or fp32. auto (default): bf16 on GPUs "
        "and on CPUs with native bf16 (AVX512-BF16/AMX), fp32 elsewhere (bf16 without "
        "hardware support runs 2-6x slower on CPU). Part of the trial key: bf16 and fp32 runs "
        "of one architecture are different trials",
    )
    p.add_argument(
        "--address", help="HOST:PORT of a running Ray cluster (default: start a local runtime)"
    )
    p.add_argument("--num-cpus", type=int, help="CPUs of the local runtime (default: all)")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial, fractional allowed (e.g. 0.25); 0 trains on CPU",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow: sqlite:///ABS/PATH.db or http://host:port (default sqlite:///<project>/mlruns.db)",
    )
    p.add_argument("--experiment", help="MLflow experiment (default temseg-<profile>)")
    p.add_argument(
        "--storage-path",
        help="Ray results folder; shared storage on a cluster (default <project>/ray_results)",
    )
    p.add_argument(
        "--report-dir", help="where the report goes (default <project>/reports/<experiment>)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the last interrupted sweep of this experiment",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trial table with RF and parameters; run nothing",
    )
    # TEST-ONLY (hidden from --help): crash trials on purpose to exercise retries, failure
    # reporting and resumes, e.g. '{"run_name": null, "epoch": 1, "times": 1,
    # "marker_dir": "/shared/tmp/faults"}' (see temseg.tune._maybe_inject_fault). Never use it
    # in a real sweep.
    p.add_argument("--inject-fault", type=_fault, metavar="JSON", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _data_seed(text: str) -> int:
    """Parse --data-seed: an integer >= 0 (numpy's generator seeds cannot be negative)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {seed}")
    return seed


def _fault(text: str) -> dict:
    """Parse --inject-fault (test only): a JSON object with epoch, times and marker_dir."""
    import json

    try:
        fault = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(fault, dict) or not {"epoch", "times", "marker_dir"} <= set(fault):
        raise argparse.ArgumentTypeError(
            "expected a JSON object with keys epoch, times, marker_dir (and run_name)"
        )
    return fault


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_seed is not None and args.data:
        print(
            "grid.py: error: --data-seed sets the seed of the synthetic contrast series and has "
            "no effect with --data (patch stores given); leave one of them out",
            file=sys.stderr,
        )
        return 2
    from temseg.config import ConfigError
    from temseg.sweep import load_profile, run_grid

    overrides = {
        "data": args.data,
        "blocks": args.blocks,
        "pools": args.pools,
        "kernels": args.kernels,
        "dilations": args.dilations,
        "dilation_variants": args.dilation_variants,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "synthetic": {"seed": args.data_seed},
        "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial,
        "experiment": args.experiment,
    }
    try:
        cfg = load_profile(args.profile, overrides)
        results = run_grid(
            cfg,
            project_dir=PROJECT_DIR,
            address=args.address,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            resume=args.resume,
            dry_run=args.dry_run,
            report_dir=args.report_dir,
            num_cpus=args.num_cpus,
            fault=args.inject_fault,
        )
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"grid.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(
            f"grid.py: interrupted{f' ({exc})' if str(exc) else ''}; finished trials are in "
            "MLflow and are not trained again: run the same command to continue (add --resume "
            "to continue unfinished trials from their last epoch)",
            file=sys.stderr,
        )
        return 130
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
