"""``temseg grid`` and ``temseg search``: the sweep faces, one parent parser for the common flags.

``python sweeps/grid.py`` and ``python sweeps/optuna_search.py`` are thin entry points over
:func:`grid_main` and :func:`search_main`. Both faces parse, build a validated
:class:`temseg.sweep.profile.SweepConfig` (exit 2 with one line naming the field on a bad
value), and call one function, :func:`temseg.sweep.campaign.run_campaign`, with their strategy
(:class:`temseg.sweep.grid.GridStrategy` or :class:`temseg.sweep.search.SearchStrategy`).
Nothing heavy is imported before the config is valid, so ``--help``, ``--dry-run`` and bad
flags answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

GRID_DOC = """\
Receptive-field grid sweep: datasets x N x pool sequences x dilation sets x seeds.

examples:
  {prog}                       # the demo profile on a local Ray runtime
  {prog} --profile smoke       # two tiny trials (CI)
  {prog} --dry-run             # the trial table, nothing run
  {prog} --profile paper --address HEAD:6379 \\
      --tracking-uri http://mlflow-host:5000 --gpus-per-trial 0.25 --data /shared/a.zarr ...

Every trial is one MLflow run with per-epoch dice curves. An interrupted sweep continues with
--resume: finished trials are not run again and no MLflow run is duplicated.
"""

SEARCH_DOC = """\
Optuna search for the cheapest receptive field on the plateau, without paying for the grid.

examples:
  {prog}                          # demo profile, local Ray runtime
  {prog} --profile smoke          # a tiny search (CI)
  {prog} --dry-run                # the space per dataset; run nothing
  {prog} --data /data/new.zarr --trials 20 --max-epochs 100 \\
      --objective dice-per-cost --cost flops --gpus-per-trial 0.25 --address HEAD:6379 \\
      --tracking-uri http://mlflow-host:5000
  {prog} --profile demo --seed 0 1 2 --compare-grid temseg-demo

The space is the profile's own, as its grid would train it: N from --blocks, pool sequences
from --pools (or every sequence over --kernels), dilation sets from --dilations (and the
paper's Figure 4 variants), never an architecture whose RF is not below the patch or whose
pools do not divide it; --dilation-choices instead searches one dilation per level. A seeded
TPE sampler proposes, ASHA stops weak trials early (epoch axis), every trial is trained by
the grid's trainable and logged to MLflow as one run tagged temseg.search=optuna. --objective
dice maximizes validation dice; dice-per-cost also minimizes --cost (training FLOPs or
parameters), i.e. searches the Pareto front. Either way the end report gives the Pareto
front and the recommendation: the cheapest fully trained architecture within --tolerance of
the best validation dice, in plain words.

--compare-grid EXPERIMENT reads a finished grid (temseg grid) from the same MLflow store and
reports the compute (trial-epochs, trial-seconds, wall time) the search needed until its best
fully trained network (by validation dice) first had test dice within --tolerance of the
grid's best architecture's seed-mean test dice, as fractions of the grid's: the accounting of
scripts/bench_search.py's replays. With several --seed values each seed is one search, and
the fractions are summarized.

--warm-start EXPERIMENT tells the sampler the finished runs of that experiment (same store,
same dataset, the search's training seed, trained for --max-epochs) as completed trials, so
they are not trained again: the search proposes new architectures only, and its answer
weighs the told runs with its own.

An interrupted search continues with --resume (same flags): the study and its sampler state
come back, finished trials are kept, unfinished ones restart from their last checkpoint.
"""


def _data_seed(text: str) -> int:
    """Parse --data-seed: an integer >= 0 (numpy's generator seeds cannot be negative)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {seed}")
    return seed


def common_parser() -> argparse.ArgumentParser:
    """The flags a grid and a search share: profile, data, space, protocol, where it runs."""
    p = argparse.ArgumentParser(add_help=False)
    _add_space_flags(p.add_argument_group("profile, data and space (defaults: the profile's)"))
    _add_protocol_flags(p.add_argument_group("training protocol (defaults: the profile's)"))
    _add_resource_flags(p.add_argument_group("resources and storage"))
    return p


def _add_space_flags(g: Any) -> None:
    g.add_argument(
        "--profile",
        default="demo",
        help="smoke, demo (default; the fast generator's version 3), demo-v2 (the demo as it "
        "ran on version 2 before issue 22), validation (on version 2), validation-v3, bench "
        "(the recorded benchmark table of docs/bench/) or paper (sweeps/<name>.yaml); flags "
        "override it",
    )
    g.add_argument(
        "--data",
        nargs="+",
        metavar="STORE",
        help="patch stores (default: the profile's synthetic contrast series, created under "
        "data/ on first use)",
    )
    g.add_argument(
        "--data-seed",
        type=_data_seed,
        metavar="S",
        help="generator seed of the synthetic contrast series (default: the profile's "
        "synthetic.seed); its stores are named <preset>-c<C>-s<S>.zarr and made once",
    )
    g.add_argument(
        "--generator-version",
        type=int,
        metavar="V",
        help="model version of the fast generator behind the synthetic series (default: the "
        "profile's, else 2, on which the documented results were measured; 3 is tuned against "
        "the authors' real-data networks); a series of another version lives in its own folder",
    )
    g.add_argument("--blocks", nargs="+", type=int, metavar="N", help="numbers of residual blocks")
    g.add_argument(
        "--pools",
        nargs="+",
        metavar="K-K",
        help="pool sequences, e.g. 8-8 4-4 (default: every sequence over the kernels with RF < "
        "patch)",
    )
    g.add_argument(
        "--kernels",
        nargs="+",
        type=int,
        metavar="K",
        help="pool kernels for the default sequences (default 2 4 8)",
    )
    g.add_argument(
        "--dilations", nargs="+", metavar="D-D-D", help="dilation sets (N+1 values), e.g. 1-1-2"
    )
    g.add_argument(
        "--no-dilation-variants",
        dest="dilation_variants",
        action="store_false",
        default=None,
        help="skip the paper's Figure 4 dilation variants",
    )


def _add_protocol_flags(g: Any) -> None:
    g.add_argument("--lr", type=float, help="Adam learning rate (> 0)")
    g.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        help="constant (the paper's) or cosine: the rate follows half a cosine from --lr to 0 "
        "over the run, so short runs end converged",
    )
    g.add_argument("--batch-size", type=int, help="patches per step (>= 1)")
    g.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="forward pass of every trial: bf16 autocast or fp32. auto (default): bf16 on GPUs "
        "and on CPUs with native bf16 (AVX512-BF16/AMX), fp32 elsewhere (bf16 without "
        "hardware support runs 2-6x slower on CPU). Part of the trial key: bf16 and fp32 runs "
        "of one architecture are different trials",
    )


def _add_resource_flags(g: Any) -> None:
    g.add_argument(
        "--address", help="HOST:PORT of a running Ray cluster (default: start a local runtime)"
    )
    g.add_argument("--num-cpus", type=int, help="CPUs of the local runtime (default: all)")
    g.add_argument(
        "--num-gpus",
        type=int,
        help="GPUs the local runtime declares (default: those Ray detects); with --device cpu "
        "they may be logical, e.g. to check how --gpus-per-trial packs trials on a CPU machine",
    )
    g.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (> 0)")
    g.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial, fractional allowed (e.g. 0.25); 0 trains on CPU",
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="where trials train: auto (default) the GPU Ray gives a trial, else the CPU; cuda: "
        "a GPU, never the CPU; cpu: the CPU even when Ray gives GPU shares. A trial given a "
        "GPU that its torch cannot use fails (exit 2 before any trial on a local runtime) "
        "instead of training on the CPU, unless --device cpu",
    )
    g.add_argument(
        "--tracking-uri",
        help="MLflow: sqlite:///ABS/PATH.db or http://host:port (default "
        "sqlite:///<project>/mlruns.db)",
    )
    g.add_argument(
        "--experiment",
        help="MLflow experiment (default temseg-<profile>; a search: temseg-<profile>-optuna)",
    )
    g.add_argument(
        "--storage-path",
        help="Ray results folder; shared storage on a cluster (default <project>/ray_results)",
    )
    g.add_argument(
        "--report-dir", help="where the report goes (default <project>/reports/<experiment>)"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the last interrupted sweep (or search) of this experiment",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would run (trial table; the search: its space); run nothing",
    )


def _add_grid_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grid")
    g.add_argument(
        "--seeds", nargs="+", type=int, help="training seeds (paper: 752 2245 140 9213 956)"
    )
    g.add_argument("--epochs", type=int, help="epochs per trial (>= 1)")


def _add_search_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search")
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
    g.add_argument(
        "--trials",
        type=int,
        help="architectures to train at most (default 12; fewer when the space runs out)",
    )
    g.add_argument(
        "--objective",
        choices=("dice", "dice-per-cost"),
        help="dice: maximize validation dice; dice-per-cost: maximize dice and minimize --cost "
        "(Pareto front). Default dice",
    )
    g.add_argument(
        "--cost",
        choices=("flops", "params"),
        help="cost of a network: training GFLOP per patch (default) or parameters",
    )
    g.add_argument(
        "--seed",
        "--search-seeds",
        dest="search_seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="TPE sampler seed(s), not training seeds; each seed is a separate search (default 0)",
    )
    g.add_argument(
        "--dilation-choices",
        nargs="+",
        type=int,
        metavar="D",
        help="search one dilation per level among these, e.g. 1 2 4 (default: the profile's "
        "dilation sets)",
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
    g.add_argument(
        "--warm-start",
        metavar="EXPERIMENT",
        help="an experiment in the same MLflow store whose finished runs on the same dataset "
        "with the search's training seed (trained for --max-epochs) are told to the sampler as "
        "completed trials, not retrained; the search proposes new architectures only",
    )


def _parser_kwargs(prog: str, doc: str) -> dict[str, Any]:
    title, rest = doc.split("\n\n", 1)
    return dict(
        description=title + " Profiles live in sweeps/<name>.yaml; flags override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=rest.format(prog=prog),
        parents=[common_parser()],
    )


def _parser(prog: str, doc: str, add: Any) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, **_parser_kwargs(prog, doc))
    add(p)
    return p


def grid_parser(prog: str = "temseg grid") -> argparse.ArgumentParser:
    return _parser(prog, GRID_DOC, _add_grid_flags)


def search_parser(prog: str = "temseg search") -> argparse.ArgumentParser:
    return _parser(prog, SEARCH_DOC, _add_search_flags)


def sweep_config(args: argparse.Namespace, **extra: Any) -> Any:
    """The validated :class:`temseg.sweep.profile.SweepConfig` of the profile and the flags."""
    from temseg.config import ConfigError
    from temseg.sweep.profile import load_profile

    series_flags = (
        ("--data-seed", "seed", args.data_seed),
        ("--generator-version", "generator version", args.generator_version),
    )
    for flag, what, value in series_flags:
        if value is not None and args.data:
            raise ConfigError(
                f"{flag} sets the {what} of the synthetic contrast series and has no effect "
                "with --data (patch stores given); leave one of them out"
            )
    overrides = {
        "data": args.data,
        "blocks": args.blocks,
        "pools": args.pools,
        "kernels": args.kernels,
        "dilations": args.dilations,
        "dilation_variants": args.dilation_variants,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "synthetic": {"seed": args.data_seed, "generator_version": args.generator_version},
        "cpus_per_trial": args.cpus_per_trial,
        "gpus_per_trial": args.gpus_per_trial,
        "device": args.device,
        **extra,
    }
    return load_profile(args.profile, overrides)


def placement_of(args: argparse.Namespace, project_dir: Path | None) -> Any:
    """The :class:`temseg.sweep.campaign.Placement` of the resource and storage flags."""
    from temseg.sweep.campaign import PROJECT_DIR, placement

    return placement(
        project_dir or PROJECT_DIR,
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage_path=args.storage_path,
        report_dir=args.report_dir,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        resume=args.resume,
    )


def _errors() -> tuple[type[BaseException], ...]:
    return (ValueError, FileNotFoundError, RuntimeError)  # ConfigError is a ValueError


def _interrupted(name: str, exc: KeyboardInterrupt) -> int:
    print(
        f"{name}: interrupted{f' ({exc})' if str(exc) else ''}; finished trials are in MLflow "
        "and are not trained again: run the same command to continue (add --resume to "
        "continue unfinished trials from their last epoch)",
        file=sys.stderr,
    )
    return 130


def run_grid_args(args: argparse.Namespace, *, name: str, project_dir: Path | None = None) -> int:
    """Run ``temseg grid`` from parsed arguments; the exit code (2: refused at start)."""
    try:
        cfg = sweep_config(args, seeds=args.seeds, epochs=args.epochs, experiment=args.experiment)
        from temseg.sweep.campaign import run_campaign
        from temseg.sweep.grid import GridStrategy

        where = placement_of(args, project_dir)
        results = run_campaign(cfg, GridStrategy(), where, dry_run=args.dry_run)
    except _errors() as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(name, exc)
    return 1 if any(r.error for r in results) else 0


def run_search_args(args: argparse.Namespace, *, name: str, project_dir: Path | None = None) -> int:
    """Run ``temseg search`` from parsed arguments; the exit code (2: refused at start)."""
    try:
        from temseg.sweep.campaign import run_campaign
        from temseg.sweep.search import SEARCH_METHOD, SearchStrategy, search_config

        sweep = sweep_config(args)
        scfg = search_config(
            {
                "trials": args.trials,
                "max_epochs": args.max_epochs,
                "objective": args.objective,
                "cost": args.cost,
                "seeds": args.search_seeds,
                "train_seed": args.train_seed,
                "tolerance": args.tolerance,
                "dilation_choices": args.dilation_choices,
                "grace_period": args.grace_period,
                "reduction_factor": args.reduction_factor,
                "max_concurrent": args.max_concurrent,
            }
        )
        strategy = SearchStrategy(
            scfg,
            experiment=args.experiment or f"{sweep.experiment_name}-{SEARCH_METHOD}",
            compare_grid=args.compare_grid,
            warm_start=args.warm_start,
        )
        where = placement_of(args, project_dir)
        summaries = run_campaign(sweep, strategy, where, dry_run=args.dry_run)
    except _errors() as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(name, exc)
    return 1 if any(s["recommended"] is None for s in summaries) else 0


def grid_main(
    argv: list[str] | None = None,
    *,
    prog: str = "temseg grid",
    name: str | None = None,
    project_dir: Path | None = None,
) -> int:
    args = grid_parser(prog).parse_args(argv)
    return run_grid_args(args, name=name or prog, project_dir=project_dir)


def search_main(
    argv: list[str] | None = None,
    *,
    prog: str = "temseg search",
    name: str | None = None,
    project_dir: Path | None = None,
) -> int:
    args = search_parser(prog).parse_args(argv)
    return run_search_args(args, name=name or prog, project_dir=project_dir)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grid`` and ``search`` to the ``temseg`` command line."""
    for command, doc, add, run, help_ in (
        ("grid", GRID_DOC, _add_grid_flags, run_grid_args, "run the receptive-field grid sweep"),
        (
            "search",
            SEARCH_DOC,
            _add_search_flags,
            run_search_args,
            "Optuna search for the cheapest receptive field on the plateau",
        ),
    ):
        p = sub.add_parser(command, help=help_, **_parser_kwargs(f"temseg {command}", doc))
        add(p)
        p.set_defaults(func=lambda a, run=run, c=command: run(a, name=f"temseg {c}"))
