"""Analysis commands (``temseg report``, ``temseg recommend``): registered by temseg.cli.

``register`` only declares arguments; pandas, scipy, MLflow and matplotlib are imported by
the handler, so ``temseg --help`` stays instant.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where they run: `temseg --help` stays instant
    import pandas as pd

    from temseg.analysis.onset_prediction import TrendFit

# exit status of `temseg recommend` when it cannot predict (the trend is undetermined); 2 is
# bad input (temseg.cli.main), 0 a prediction
EXIT_UNDETERMINED = 3


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


def _add_experiment_args(p: argparse.ArgumentParser, *, experiment_help: str) -> None:
    """The sweep to read: ``--experiment`` and ``--tracking-uri`` (report, recommend)."""
    p.add_argument("--experiment", required=True, help=experiment_help)
    p.add_argument(
        "--tracking-uri",
        help="sqlite:///<absolute path> or http(s)://host:port "
        "(default: sqlite:///<project folder>/mlruns.db)",
    )


def _add_bootstrap_args(p: argparse.ArgumentParser) -> None:
    """``--n-boot`` and ``--seed`` of the seed and plateau bootstraps (report, recommend)."""
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


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
    _add_experiment_args(p, experiment_help="MLflow experiment name")
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
    _add_bootstrap_args(p)
    p.set_defaults(func=_cmd_report)
    register_recommend(sub)


def _cmd_recommend(args: argparse.Namespace) -> int:
    from temseg.analysis import collect, plateau

    store, attrs, contrast, pixel = _store_contrast(args)
    trials = collect.load_runs(args.experiment, args.tracking_uri)  # unknown: ValueError
    done = collect.finished(trials)
    if done.empty:
        raise ValueError(
            f"experiment {args.experiment!r} has no finished run with a test_hard_dice: "
            "nothing to fit"
        )
    print(f"store:         {store}")
    print(f"contrast:      {contrast:.4f} (temseg contrast score, as the store records it)")
    print(f"pixel size:    {pixel:g} nm/px")
    _print_heuristic(args.object_size_nm, attrs, contrast, pixel)
    images = collect.load_test_images(done, args.tracking_uri)
    plateaus = plateau.fit_plateaus(done, n_boot=args.n_boot, rng=args.seed, images=images)
    trend = _chosen_trend(args, plateaus, pixel)
    if trend is None:
        return EXIT_UNDETERMINED
    _print_prediction(trend, contrast, pixel)
    return 0


def _store_contrast(args: argparse.Namespace) -> tuple[Path, dict, float, float]:
    """The store, its attributes, measured contrast and pixel size; a clear error for a
    missing store, a bad --object-size-nm or a store without a positive contrast."""
    from temseg.data.store import read_attrs

    store = Path(args.store).absolute()
    if not store.exists():
        raise FileNotFoundError(f"patch store {store} not found")
    if args.object_size_nm is not None and not args.object_size_nm > 0:
        raise ValueError(f"--object-size-nm must be > 0, got {args.object_size_nm}")
    attrs = read_attrs(store)  # StoreError (a ValueError) names the path
    contrast = attrs.get("contrast")
    if contrast is None or not math.isfinite(float(contrast)) or float(contrast) <= 0:
        raise ValueError(
            f"{store}: attribute 'contrast' is {contrast!r}; the trend needs a positive "
            "measured contrast (a store whose particle or background class is empty has none)"
        )
    return store, attrs, float(contrast), float(attrs["pixel_size_nm"])


def _print_heuristic(size: float | None, attrs: dict, contrast: float, pixel: float) -> None:
    """The Loos et al. heuristic's RF for the store: the given object size, else the
    generator's particle diameter, else unknown."""
    from temseg.analysis import onset_prediction

    size_from = "--object-size-nm"
    if size is None:
        gen = attrs.get("generator") or attrs.get("simulation") or {}
        size = float(gen.get("diameter_nm", math.nan))
        size_from = "the generator's particle diameter"
    heur = onset_prediction.heuristic_rf_nm(size, contrast)
    if math.isfinite(heur):
        print(f"object size:   {size:g} nm ({size_from})")
        print(
            f"heuristic:     RF {heur:.2f} nm ({heur / pixel:.0f} px), Loos et al. 2024: object "
            f"size if contrast >= {onset_prediction.HEURISTIC_CONTRAST}, else size x "
            f"{onset_prediction.HEURISTIC_CONTRAST} / contrast (on temseg's contrast score)"
        )
    else:
        print("object size:   unknown (not a synthetic store: pass --object-size-nm)")
        print("heuristic:     not computed (object size unknown)")


def _chosen_trend(
    args: argparse.Namespace, plateaus: pd.DataFrame, pixel: float
) -> TrendFit | None:
    """The onset trend at the store's pixel size (and --blocks, --strategy), the first
    determined one; None after saying on stderr why there is none."""
    from temseg.analysis import onset_prediction

    groups = onset_prediction.trend_groups(plateaus)
    same = [t for t in groups if abs(t.pixel_size_nm - pixel) <= 0.01 * pixel]
    if args.blocks is not None:
        same = [t for t in same if t.num_blocks == args.blocks]
    if args.strategy is not None:
        same = [t for t in same if t.strategy == args.strategy]
    if not same:
        sizes = sorted({f"{t.pixel_size_nm:g}" for t in groups})
        print(
            f"temseg recommend: cannot: the trend is undetermined (experiment "
            f"{args.experiment!r} has no levels at {pixel:g} nm/px"
            + (f" for N={args.blocks}" if args.blocks is not None else "")
            + (f" {args.strategy}" if args.strategy is not None else "")
            + f"; its levels are at {', '.join(sizes) or 'no'} nm/px, and onsets are compared "
            "at one sampling)",
            file=sys.stderr,
        )
        return None
    trend = next((t for t in same if t.determined), same[0])
    if not trend.determined:
        print(
            f"temseg recommend: cannot: the trend is undetermined ({_series(trend)}: "
            f"{trend.reason})",
            file=sys.stderr,
        )
        return None
    return trend


def _series(trend: TrendFit) -> str:
    return f"N={trend.num_blocks} {trend.strategy} at {trend.pixel_size_nm:g} nm/px"


def _print_prediction(trend: TrendFit, contrast: float, pixel: float) -> None:
    """The trend's line and its predicted RF for ``contrast``, with the interval."""
    onset, lo, hi = trend.predict(contrast)
    print(
        f"trend:         {_series(trend)}: onset_nm = {math.exp(trend.intercept):.4g} x "
        f"contrast^{trend.slope:.3f} over {trend.n_with_onset} level(s) with a measured onset "
        f"(contrast {trend.contrast_min:.3g}-{trend.contrast_max:.3g})"
    )
    band = (
        f", 95% prediction interval {lo:.2f}-{hi:.2f} nm ({lo / pixel:.0f}-{hi / pixel:.0f} px)"
        if math.isfinite(lo)
        else " (no interval: a line through 2 levels has no residual)"
    )
    print(f"predicted RF:  {onset:.2f} nm ({onset / pixel:.0f} px){band}")
    if not trend.contrast_min <= contrast <= trend.contrast_max:
        print(
            f"note:          contrast {contrast:.3g} lies outside the fitted range "
            f"{trend.contrast_min:.3g}-{trend.contrast_max:.3g}: an extrapolation"
        )


def register_recommend(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recommend",
        help="predict the receptive field a new patch store needs from a sweep's onset trend",
        description=(
            "Read the contrast of STORE (temseg's contrast score, recorded when the store was "
            "written), fit the plateau of dice against RF for every level of the experiment, "
            "fit the power law onset_nm ~ contrast^slope over the levels whose onset lies "
            "inside the tested RFs (at the store's pixel size), and predict the RF where the "
            "plateau starts for STORE, with a 95% prediction interval. Also prints the "
            "heuristic of Loos et al. 2024 (J. Med. Imaging): RF = object size when the "
            "contrast is >= 0.1, else object size x 0.1 / contrast. Exit status: 0 a "
            f"prediction; {EXIT_UNDETERMINED} cannot (the trend is undetermined: too few "
            "levels with a measured onset, or none at this pixel size); 2 bad input (missing "
            "store, unknown experiment)."
        ),
    )
    p.add_argument("store", help="the patch store (.zarr) to recommend an RF for")
    _add_experiment_args(p, experiment_help="MLflow experiment of the sweep")
    p.add_argument(
        "--object-size-nm",
        type=float,
        help="object (particle) size for the heuristic; default: the synthetic generator's "
        "particle diameter, unknown for real stores",
    )
    p.add_argument("--blocks", type=int, help="use the trend of N blocks (default: the best)")
    p.add_argument(
        "--strategy",
        choices=("pooling", "dilation"),
        help="use the trend of this RF strategy (default: the one with most measured onsets)",
    )
    _add_bootstrap_args(p)
    p.set_defaults(func=_cmd_recommend)
