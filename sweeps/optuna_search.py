#!/usr/bin/env python
"""Optuna search for the cheapest receptive field on the plateau, without paying for the grid.

    python sweeps/optuna_search.py                          # demo profile, local Ray runtime
    python sweeps/optuna_search.py --profile smoke          # a tiny search (CI)
    python sweeps/optuna_search.py --dry-run                # the space per dataset; run nothing
    python sweeps/optuna_search.py --data /data/new.zarr --trials 20 --max-epochs 100 \\
        --objective dice-per-cost --cost flops --gpus-per-trial 0.25 --address HEAD:6379 \\
        --tracking-uri http://mlflow-host:5000
    python sweeps/optuna_search.py --profile demo --seed 0 1 2 --compare-grid temseg-demo

The space: N from --blocks, then one max-pool kernel per block from --kernels (and, with
--dilations, one dilation per level), never an architecture whose RF is not below the patch
or whose pools do not divide it. A seeded TPE sampler proposes, ASHA stops weak trials early
(epoch axis), every trial is trained by the grid's trainable and logged to MLflow as one run
tagged temseg.search=optuna. --objective dice maximizes validation dice; dice-per-cost also
minimizes --cost (training FLOPs or parameters), i.e. searches the Pareto front. Either way the
end report gives the Pareto front and the recommendation: the cheapest fully trained
architecture within --tolerance of the best validation dice, in plain words.

--compare-grid EXPERIMENT reads a finished grid (python sweeps/grid.py) from the same MLflow
store and reports the compute (trial-epochs, trial-seconds, wall time) the search needed to
first come within --tolerance of the grid's best mean validation dice, as fractions of the
grid's. With several --seed values each seed is one search, and the fractions are summarized.

An interrupted search continues with --resume (same flags): the study and its sampler state
come back, finished trials are kept, unfinished ones restart from their last checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))  # run from a checkout without installing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(
        prog="python sweeps/optuna_search.py",
        description=doc.split("\n\n")[0]
        + " Datasets, protocol and resources come from a sweep profile (sweeps/<name>.yaml); "
        "flags override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n\n", 1)[1],
    )
    g = p.add_argument_group("data and protocol (defaults: the profile's)")
    g.add_argument("--profile", default="demo", help="smoke, demo (default) or paper")
    g.add_argument(
        "--data",
        nargs="+",
        metavar="STORE",
        help="patch stores, one search each (default: the profile's synthetic contrast series, created under data/ on first use)",
    )
    g.add_argument(
        "--max-epochs",
        type=int,
        help="epochs of a fully trained trial (ASHA's max_t; default: the profile's epochs)",
    )
    g.add_argument(
        "--train-seed",
        type=int,
        help="training seed of every trial (default: the profile's first seed)",
    )
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="forward pass of every trial: bf16 autocast or fp32; auto (default): bf16 on GPUs "
        "and CPUs with native bf16, fp32 elsewhere; part of the trial key",
    )

    g = p.add_argument_group("search")
    g.add_argument(
        "--trials",
        type=int,
        help="architectures to train at most (default 12; fewer when the space runs out)",
    )
    g.add_argument(
        "--objective",
        choices=("dice", "dice-per-cost"),
        help="dice: maximize validation dice; dice-per-cost: maximize dice and minimize --cost (Pareto front). Default dice",
    )
    g.add_argument(
        "--cost",
        choices=("flops", "params"),
        help="cost of a network: training GFLOP per patch (default) or parameters",
    )
    g.add_argument(
        "--seed",
        dest="seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="TPE sampler seed(s); each seed is a separate search (default 0)",
    )
    g.add_argument(
        "--blocks",
        nargs="+",
        type=int,
        metavar="N",
        help="numbers of residual blocks to search (default: the profile's)",
    )
    g.add_argument(
        "--kernels",
        nargs="+",
        type=int,
        metavar="K",
        help="pool kernels to search (default: the profile's, 2 4 8)",
    )
    g.add_argument(
        "--dilations",
        nargs="+",
        type=int,
        metavar="D",
        help="dilation choices per level, e.g. 1 2 4 (default: no dilation)",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        help="recommend the cheapest architecture within this of the best dice (default 0.01)",
    )
    g.add_argument(
        "--grace-period",
        type=int,
        help="ASHA: epochs before a trial may be stopped (default max(1, max_epochs // 4))",
    )
    g.add_argument(
        "--reduction-factor", type=int, help="ASHA: keep the top 1/f at each rung (default 3)"
    )
    g.add_argument(
        "--max-concurrent", type=int, help="trials at once (default: as many as the cluster fits)"
    )
    g.add_argument(
        "--compare-grid",
        metavar="EXPERIMENT",
        help="a finished grid experiment in the same MLflow store to measure the saving against",
    )

    g = p.add_argument_group("resources and storage")
    g.add_argument(
        "--address", help="HOST:PORT of a running Ray cluster (default: start a local runtime)"
    )
    g.add_argument("--num-cpus", type=int, help="CPUs of the local runtime (default: all)")
    g.add_argument("--cpus-per-trial", type=float)
    g.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial, fractional allowed (e.g. 0.25); 0 trains on CPU",
    )
    g.add_argument(
        "--tracking-uri",
        help="MLflow: sqlite:///ABS/PATH.db or http://host:port (default sqlite:///<project>/mlruns.db)",
    )
    g.add_argument(
        "--experiment",
        help="MLflow experiment of the search runs (default temseg-<profile>-optuna)",
    )
    g.add_argument(
        "--storage-path",
        help="Ray results folder; shared storage on a cluster (default <project>/ray_results)",
    )
    g.add_argument(
        "--report-dir",
        help="where summary.json, trials.csv and answer.md go (default <project>/reports/<experiment>)",
    )
    g.add_argument(
        "--resume", action="store_true", help="continue the last interrupted search of these flags"
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print the space per dataset (architectures, RF and cost ranges); run nothing",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from temseg.config import ConfigError
    from temseg.search import run_optuna_search, search_config
    from temseg.sweep import load_profile

    try:
        sweep = load_profile(
            args.profile,
            {
                "data": args.data,
                "blocks": args.blocks,
                "kernels": args.kernels,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "precision": args.precision,
                "cpus_per_trial": args.cpus_per_trial,
                "gpus_per_trial": args.gpus_per_trial,
            },
        )
        scfg = search_config(
            {
                "trials": args.trials,
                "max_epochs": args.max_epochs,
                "objective": args.objective,
                "cost": args.cost,
                "seeds": args.seeds,
                "train_seed": args.train_seed,
                "tolerance": args.tolerance,
                "dilations": args.dilations,
                "grace_period": args.grace_period,
                "reduction_factor": args.reduction_factor,
                "max_concurrent": args.max_concurrent,
            }
        )
        summaries = run_optuna_search(
            scfg,
            sweep,
            project_dir=PROJECT_DIR,
            experiment=args.experiment,
            address=args.address,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            report_dir=args.report_dir,
            resume=args.resume,
            dry_run=args.dry_run,
            compare_grid=args.compare_grid,
            num_cpus=args.num_cpus,
        )
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"optuna_search.py: error: {exc}", file=sys.stderr)
        return 2
    return 1 if any(s["recommended"] is None for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
