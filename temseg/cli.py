"""The ``temseg`` command line: thin faces that parse arguments and call one function each.

Subcommands register themselves through ``register(subparsers)`` functions that only declare
arguments; heavy imports (torch, zarr, mlflow) happen inside the handlers, so
``temseg arch`` and ``--help`` answer instantly.
"""

from __future__ import annotations

import argparse
import sys


def _int_list(text: str) -> tuple[int, ...]:
    from temseg.receptive_field import parse_seq

    try:
        return parse_seq(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _px_range(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _nm_range(lo: int, hi: int, pixel_size_nm: float) -> str:
    a, b = f"{lo * pixel_size_nm:.2f}", f"{hi * pixel_size_nm:.2f}"
    return a if lo == hi else f"{a}-{b}"


ARCH_COLUMNS = (
    "num_blocks",
    "pools",
    "dilations",
    "rf_px",
    "rf_exact_min_px",
    "rf_exact_max_px",
    "rf_nm",
    "rf_exact_min_nm",
    "rf_exact_max_nm",
    "exceeds_patch",
    "n_params",
)


def _cmd_arch(args: argparse.Namespace) -> int:
    from temseg import receptive_field as rf

    nm = args.pixel_size_nm

    def fmt_nm(px: int) -> str:
        return "" if nm is None else f"{px * nm:.2f}"

    if args.list:
        archs = rf.valid_architectures(
            blocks=args.blocks or rf.DEFAULT_BLOCKS,
            kernels=args.kernels,
            patch_size=args.patch_size,
        )
        rows = []
        for a in archs:
            lo, hi = a.rf_exact
            rows.append(
                {
                    "num_blocks": a.num_blocks,
                    "pools": rf.format_seq(a.pools),
                    "dilations": rf.format_seq(a.dilations),
                    "rf_px": a.rf_px,  # Eq. 1, the paper's convention
                    "rf_exact_min_px": lo,
                    "rf_exact_max_px": hi,
                    "rf_nm": fmt_nm(a.rf_px),
                    "rf_exact_min_nm": fmt_nm(lo),
                    "rf_exact_max_nm": fmt_nm(hi),
                    "exceeds_patch": "true" if hi > args.patch_size else "false",
                    "n_params": a.n_params,
                }
            )
        cols = list(ARCH_COLUMNS)
        cells = [[str(r[c]) for c in cols] for r in rows]
        if args.format == "csv":
            print(",".join(cols))
            for line in cells:
                print(",".join(line))
        elif args.format == "markdown":
            print("| " + " | ".join(cols) + " |")
            print("|" + "---|" * len(cols))
            for line in cells:
                print("| " + " | ".join(line) + " |")
        else:  # aligned plain-text table
            widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(cols)]
            print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
            for line in cells:
                print("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)))
        over = sum(r["exceeds_patch"] == "true" for r in rows)
        print(
            f"# {len(rows)} architectures with RF (Eq. 1) < {args.patch_size} px; "
            f"{over} of them reach past the patch at some positions (exact reach)",
            file=sys.stderr,
        )
        return 0
    if not args.blocks or len(args.blocks) != 1 or args.pools is None:
        raise SystemExit("temseg arch: give --blocks N and --pools K1,K2,... (or --list)")
    from temseg.config import ModelConfig

    cfg = ModelConfig(args.blocks[0], args.pools, args.dilations)
    rf_px = cfg.rf_px
    lo, hi = rf.exact_receptive_field(cfg.pools, cfg.dilations)
    print(f"num_blocks: {cfg.num_blocks}")
    print(f"pools:      {rf.format_seq(cfg.pools)}")
    print(f"dilations:  {rf.format_seq(cfg.dilations)}")
    print(f"rf_px:      {rf_px} (Eq. 1, the paper's convention)")
    print(f"rf_exact:   {_px_range(lo, hi)} px (exact reach, min-max over output positions)")
    if nm is not None:
        print(f"rf_nm:      {rf_px * nm:.2f} (at {nm} nm/px)")
        print(f"rf_exact_nm: {_nm_range(lo, hi, nm)}")
    print(f"n_params:   {rf.parameter_count(cfg.num_blocks)}")
    where = "depending on position" if lo != hi else "at every position"
    summary = f"RF {rf_px} px (Eq. 1, the paper's), exact reach {_px_range(lo, hi)} px {where}"
    if nm is not None:
        summary += f"; {rf_px * nm:.2f} nm, exact {_nm_range(lo, hi, nm)} nm"
    print(summary)
    return 0


def _register_arch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "arch",
        help="receptive field and parameter count of an architecture, or the study's table",
        description=(
            "Print the receptive field (px, and nm with --pixel-size-nm) and parameter count of "
            "one residual UNet, or with --list the table of every pool sequence over --kernels "
            "whose RF is below --patch-size (the paper's 30 architectures by default). The RF "
            "is given twice: by the paper's Eq. 1 (rf_px, the study's convention) and as the "
            "exact reach of one output pixel, min-max over positions (rf_exact_min_px, "
            "rf_exact_max_px), which for pools of 4 or more depends on the pixel's position; "
            "exceeds_patch marks networks whose exact reach is wider than the patch."
        ),
    )
    p.add_argument("--blocks", type=_int_list, help="N (or with --list: N values, default 2,3,4)")
    p.add_argument("--pools", type=_int_list, help="max-pool kernel per block, e.g. 8,8")
    p.add_argument("--dilations", type=_int_list, help="N+1 dilations (encoder blocks, bottleneck)")
    p.add_argument("--pixel-size-nm", type=float, help="pixel size, to print the RF in nm")
    p.add_argument("--list", action="store_true", help="list every valid architecture")
    p.add_argument("--patch-size", type=int, default=512, help="patch side in px (default 512)")
    p.add_argument(
        "--kernels", type=_int_list, default=(2, 4, 8), help="pool kernels (default 2,4,8)"
    )
    p.add_argument(
        "--format",
        choices=("csv", "table", "markdown"),
        default="csv",
        help="--list format: csv (default), table (aligned text) or markdown",
    )
    p.set_defaults(func=_cmd_arch)


def _cmd_import_legacy(args: argparse.Namespace) -> int:
    from temseg.legacy import load_legacy_checkpoint
    from temseg.model import count_parameters

    model = load_legacy_checkpoint(args.source, save_to=args.out)
    cfg = model.config
    print(
        f"{args.source} -> {args.out}: {cfg.label}, RF {cfg.rf_px} px, "
        f"{count_parameters(model)} parameters"
    )
    return 0


def _register_import_legacy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-legacy",
        help="convert one of the paper authors' published .h5 checkpoints to temseg's format",
        description=(
            "Read a checkpoint the paper's authors saved with torch.save(model) (their UNet or "
            "UNet_MaxPool class) through an allow-listed unpickler that executes no code from "
            "the file, and write it as a temseg checkpoint (state dict + config)."
        ),
    )
    p.add_argument("source", help="the authors' .h5 file")
    p.add_argument("out", help="temseg checkpoint to write (e.g. model.pt)")
    p.set_defaults(func=_cmd_import_legacy)


def _cmd_segment(args: argparse.Namespace) -> int:
    from temseg.segment import SegmentOptions, choose_auto, load_models, segment_images
    from temseg.segment.registry import auto_candidates

    options = SegmentOptions(
        pixel_size_nm=args.pixel_size_nm, resample=args.resample,
        xray_threshold=args.xray_threshold, min_diameter_nm=args.min_diameter_nm,
        tile=args.tile, batch_size=args.batch_size, split=args.split,
        n_boot=args.bootstrap, seed=args.seed, flat_field=args.flat_field,
    )  # fmt: skip
    options.check()
    if args.device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("--device cuda: torch sees no CUDA device")
    auto = args.model == ["auto"]
    if "auto" in args.model and not auto:
        raise ValueError("--model auto chooses one registered model; give it alone")
    specs = auto_candidates(args.tracking_uri) if auto else args.model
    models = load_models(
        specs,
        model_pixel_size_nm=args.model_pixel_size_nm,
        tracking_uri=args.tracking_uri,
        device=device,
        same_pixel_size=not auto,
    )
    if auto:
        models = [choose_auto(args.images, models, options)]
    result = segment_images(
        args.images,
        models,
        args.out,
        options=options,
        truth=args.truth,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(result.out / "index.html")
    return 0


def _add_segment_processing_args(p: argparse.ArgumentParser) -> None:
    """How ``temseg segment`` preprocesses, measures and runs (everything after the model and
    the images)."""
    from temseg.segment import DEFAULT_BATCH, DEFAULT_MIN_DIAMETER_NM, DEFAULT_TILE
    from temseg.segment.sizes import DEFAULT_BOOT

    p.add_argument(
        "--xray-threshold",
        type=float,
        help="x-ray outliers: counts above median + T (default 1500 HR, 400 LR, as ingest)",
    )
    p.add_argument(
        "--min-diameter-nm",
        type=float,
        default=DEFAULT_MIN_DIAMETER_NM,
        metavar="D",
        help=(
            "remove mask components whose equivalent-circle diameter is below D nm before "
            f"writing and measuring (default {DEFAULT_MIN_DIAMETER_NM:g}; 0 keeps every "
            "component): isolated pixels of the background are not particles"
        ),
    )
    p.add_argument(
        "--split",
        action="store_true",
        help="split touching particles (watershed of the distance transform) before measuring",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_BOOT,
        metavar="B",
        help=f"bootstrap replicates of the 95%% intervals (default {DEFAULT_BOOT}, >= 100)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap (same seed, same intervals)"
    )
    p.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"tile side in px (default {DEFAULT_TILE}); larger wastes less overlap, uses more memory",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"tiles per pass (default {DEFAULT_BATCH})",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="default: cuda if available",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow store for runs:/ and models:/ (default $MLFLOW_TRACKING_URI, else ./mlruns.db of the project)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--flat-field",
        action=argparse.BooleanOptionalAction,
        help=(
            "divide out uneven illumination before the network (as ingest --flat-field); "
            "default: as the network was trained (its registry card), off for the authors'"
        ),
    )


def _register_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment whole micrographs with a trained network: masks, particle sizes, report",
        description=(
            "Apply a network to whole micrographs and report particle sizes. Each image (any "
            "format temseg ingest reads; a 3-D stack frame by frame) goes through the training "
            "preprocessing (negatives to 0, x-ray removal, standardization over the whole "
            "image), then the network runs on tiles that overlap by the network's exact "
            "receptive-field reach, so the stitched mask equals whole-image inference (no "
            "seams). Writes into OUT: <name>_mask.tif (uint8 0/1, the image's shape), "
            "particles.csv (one row per 8-connected particle: area, equivalent-circle "
            "diameter, max Feret diameter, circularity, centroid in nm, touches_border), "
            "summary.csv (per image and frame, and pooled as 'all': counts; number- and "
            "volume-weighted D10/D50/D90 and mean of the equivalent and Feret diameters of "
            "particles not touching the border, each with a 95%% bootstrap interval, e.g. "
            "d50_nm, d50_lo_nm, d50_hi_nm; particles needed for +-5%%; the contrast score and "
            "in_domain of the domain guard; with --truth also dice, D50 bias, KS distance and "
            "count error with intervals), sizes.csv (every statistic in long format, pooled "
            "also with an interval over images), overlays (reduced and full resolution), "
            "sizes.png and index.html. Several --model values segment with their ensemble (mean "
            "probability); the intervals then include the spread between the networks. "
            "Everything is written to a temporary folder and renamed at the end; on any error "
            "nothing is left. An image whose pixel size differs more than 10%% from the "
            "model's, or images whose pixel sizes differ from each other, are refused (exit 2) "
            "unless --resample; so are an empty image and an ensemble trained at different "
            "pixel sizes."
        ),
        epilog=(
            "examples:\n"
            "  temseg segment scan.dm4 --model models:/temseg-hr-2.2nm-c0.060-s0@recommended "
            "--out seg/\n"
            "  temseg segment *.tif --pixel-size-nm 0.02 --model runs/best.pt --out seg/\n"
            "  temseg segment img.emd --model 20210922_UNet_b2_m88_run5_model.h5 "
            "--model-pixel-size-nm 0.02152 --out seg/\n"
            "  temseg segment *.tif --model models:/temseg-hr-2.2nm-c0.090-s0@seeds --split "
            "--out seg/   # every seed: an ensemble\n"
            "  temseg segment scan.tif --model auto --tracking-uri sqlite:///$PWD/mlruns.db "
            "--out seg/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="micrographs to segment")
    p.add_argument(
        "--model",
        required=True,
        nargs="+",
        metavar="MODEL",
        help=(
            "a temseg checkpoint (best.pt, or its folder), an MLflow URI (runs:/<run_id>/"
            "checkpoint/best.pt, models:/<name>@<alias>, models:/<name>/<version>), or one of "
            "the paper authors' .h5 checkpoints (read without executing code); several: their "
            "ensemble; models:/<name>@seeds: every seed of a registered model's recommended "
            "network; auto: among the registered models of --tracking-uri, the one trained "
            "nearest the images' contrast at their pixel size"
        ),
    )
    p.add_argument("--out", required=True, help="folder to create for the results")
    p.add_argument(
        "--model-pixel-size-nm",
        type=float,
        help=(
            "pixel size of the model's training data; needed for the authors' checkpoints "
            "(trained at 0.02152 nm/px), which carry none; temseg checkpoints carry theirs"
        ),
    )
    p.add_argument(
        "--pixel-size-nm",
        type=float,
        help="pixel size of the images (overrides their calibration; needed for PNG/plain TIFF)",
    )
    p.add_argument(
        "--resample",
        action="store_true",
        help=(
            "resample images whose pixel size differs from the model's onto it (scikit-image); "
            "masks and sizes come back at the image's own pixel size"
        ),
    )
    p.add_argument(
        "--truth",
        nargs="+",
        metavar="MASK",
        help="a true mask per image (same order): adds dice, count and diameter errors",
    )
    _add_segment_processing_args(p)
    p.set_defaults(func=_cmd_segment)


def _cmd_realism(args: argparse.Namespace) -> int:
    from temseg import realism

    if args.out is not None:
        realism.check_out(args.out)
    realism.check_stores(args.stores)
    realism.find_models(args.models)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    result = realism.probe(args.stores, models=args.models, split=args.split)
    print(realism.format_table(result))
    if args.out is not None:
        print(realism.write_result(result, args.out))
    return 0


def _register_realism(sub: argparse._SubParsersAction) -> None:
    from temseg.realism import BAND_PX, DEFAULT_MODELS, SPLIT_CHOICES

    p = sub.add_parser(
        "realism",
        help="probe how real a store looks: the paper authors' networks on its patches",
        description=(
            "Run the paper authors' five published networks (trained on real 5 nm Au HRTEM at "
            "0.02152 nm/px; 0.72-0.78 dice on real test data, the 44 px network m22 the "
            "worst) on every patch of each store, resampled to 0.02152 nm/px when the store's "
            "pixel size differs (images bilinear, labels bilinear then >= 0.5). Per network, "
            "pooled over all patches: hard dice, precision, recall, predicted and true "
            "particle fraction, and the dice with a +-%d px band around the true boundaries "
            "left out (outline convention vs. domain gap); the mean over networks; and the "
            "authors' real-data dice of the same architecture beside it. On realistic images "
            "the networks should score like on real ones." % BAND_PX
        ),
        epilog=(
            "example:\n  temseg realism data/hr-5nm-c0.100-s0.zarr --out realism.csv\n"
            "Prints one table per store; --out writes CSV (rows per store and network, plus "
            "'mean' rows) or JSON (also the reference and its source)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stores", nargs="+", metavar="STORE", help="temseg patch stores (.zarr)")
    p.add_argument(
        "--models",
        default=str(DEFAULT_MODELS),
        help="folder of the authors' .h5 checkpoints (default ../shared/reference_models "
        "beside the temseg checkout)",
    )
    p.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="all",
        help="patches to score (default all: the networks never saw these images)",
    )
    p.add_argument("--out", help="also write the table to this .csv or .json file")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_realism)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="temseg",
        description="Receptive-field studies of residual UNets for TEM nanoparticle segmentation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_arch(sub)
    _register_import_legacy(sub)
    _register_segment(sub)
    _register_realism(sub)
    # Each room registers its own commands (argument declarations only, no heavy imports).
    from temseg.sweep import cli as sweep_cli
    from temseg.analysis import cli as analysis_cli
    from temseg.data import cli as data_cli
    from temseg.study import cli as study_cli

    data_cli.register(sub)
    sweep_cli.register(sub)
    analysis_cli.register(sub)
    study_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"temseg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
