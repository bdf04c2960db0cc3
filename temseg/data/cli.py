"""Data commands (ingest, synth, synth-series, info, preview): registered by temseg.cli.

``register`` only declares arguments; numpy, zarr and torch are imported inside the
handlers so ``temseg --help`` stays instant. Handlers return an exit code and raise
ValueError / FileNotFoundError / FileExistsError with a message naming the file, which
``temseg.cli.main`` prints as ``temseg CMD: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

PRESET_NAMES = ("hr-2.2nm", "hr-5nm", "hr-10nm", "lr-20nm")  # = temseg.data.synth.PRESETS


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _cmd_ingest(args: argparse.Namespace) -> int:
    from temseg.data.ingest import ingest, pair_folder

    pairs = []
    images, masks = args.image or [], args.mask or []
    if len(images) != len(masks):
        raise ValueError(
            f"give one --mask per --image (got {len(images)} images, {len(masks)} masks)"
        )
    pairs.extend(zip(images, masks, strict=True))
    if args.folder:
        pairs.extend(pair_folder(args.folder, args.mask_folder))
    elif args.mask_folder:
        raise ValueError("--mask-folder needs --folder")
    if not pairs:
        raise ValueError("nothing to ingest: give --image IMG --mask MASK pairs or --folder DIR")
    out = ingest(
        args.out,
        pairs,
        pixel_size_nm=args.pixel_size_nm,
        patch_size=args.patch_size,
        min_particle_px=args.min_particle_px,
        xray_threshold=args.xray_threshold,
        seed=args.seed,
        resample=args.resample,
        overwrite=args.overwrite,
        progress=_progress,
    )
    _print_summary(out)
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from temseg.data.synth import make_synthetic_store

    out = make_synthetic_store(
        args.out,
        preset=args.preset,
        contrast=args.contrast,
        images=args.images,
        seed=args.seed,
        image_size=args.image_size,
        patch_size=args.patch_size,
        fringe_free_fraction=args.fringe_free_fraction,
        dose=args.dose,
        min_particle_px=args.min_particle_px,
        overwrite=args.overwrite,
        progress=_progress,
    )
    _print_summary(out)
    return 0


def _cmd_synth_series(args: argparse.Namespace) -> int:
    from temseg.data.synth import make_contrast_series

    paths = make_contrast_series(
        args.out_dir,
        contrasts=args.contrasts,
        preset=args.preset,
        images=args.images,
        seed=args.seed,
        image_size=args.image_size,
        patch_size=args.patch_size,
        fringe_free_fraction=args.fringe_free_fraction,
        dose=args.dose,
        min_particle_px=args.min_particle_px,
        overwrite=args.overwrite,
        progress=_progress,
    )
    from temseg.data.store import read_attrs

    print("store,generator_contrast,measured_contrast,train,val,test")
    for c, path in zip(args.contrasts, paths, strict=True):
        a = read_attrs(path)
        n = a["n_patches"]
        measured = "" if a["contrast"] is None else f"{a['contrast']:.4f}"
        print(f"{path},{c:g},{measured},{n['train']},{n['val']},{n['test']}")
    return 0


def _print_summary(path) -> None:
    from temseg.data.store import read_attrs

    a = read_attrs(path)
    n = a["n_patches"]
    measured = "n/a" if a["contrast"] is None else f"{a['contrast']:.3f}"
    print(
        f"{path}: {n['train']}/{n['val']}/{n['test']} train/val/test patches of "
        f"{a['patch_size']} px at {a['pixel_size_nm']:g} nm/px, contrast {measured}"
    )


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from temseg.data.store import read_attrs

    a = read_attrs(args.store)
    if args.json:
        print(json.dumps(a, indent=2, sort_keys=True))
        return 0
    n = a["n_patches"]
    detail = a.get("contrast_detail", {})
    pre = a["preprocessing"]
    split = pre.get("split", {})
    print(f"store:          {args.store}")
    print(f"kind:           {a['kind']}")
    print(f"pixel size:     {a['pixel_size_nm']:g} nm/px")
    print(f"patch size:     {a['patch_size']} px ({a['patch_size'] * a['pixel_size_nm']:.2f} nm)")
    print(f"patches:        train {n['train']}, val {n['val']}, test {n['test']}")
    print(f"split:          {split.get('mode', '?')} (seed {split.get('seed', '?')})")
    contrast = "n/a" if a["contrast"] is None else f"{a['contrast']:.4f}"
    print(f"contrast:       {contrast} (median gap / pooled robust spread)")
    if detail.get("median_background") is not None:
        print(
            f"  medians:      background {detail['median_background']:.3f}, "
            f"particle {detail['median_particle']:.3f}; particle fraction "
            f"{detail['particle_fraction']:.3f}"
        )
    print(
        f"preprocessing:  x-ray T {pre.get('xray_threshold')} ({pre.get('xray_regime')}), "
        f"min particle px {pre.get('min_particle_px')}, kept {pre.get('patches_kept')}"
        f"/{pre.get('patches_cut')} patches"
    )
    srcs = a["sources"]
    shown = ", ".join(srcs[:3]) + (f", ... ({len(srcs)} in all)" if len(srcs) > 3 else "")
    print(f"sources:        {shown}")
    if "generator" in a:
        g = a["generator"]
        print(
            f"generator:      {g['preset']} C={g['contrast']:g} seed={g['seed']} "
            f"images={g['images']} size={g['image_size']} dose={g['dose']:g} e/A^2 "
            f"fringe-free={g['fringe_free_fraction']:g} (v{g['version']})"
        )
    print(f"content hash:   {a['content_hash']}")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from temseg.data import preview

    if args.store:
        out = preview.store_preview(args.out, args.store, args.split, args.index)
    else:
        out = preview.synthetic_preview(
            args.out,
            preset=args.preset,
            contrast=args.contrast,
            seed=args.seed,
            image_size=args.image_size,
        )
    print(out)
    return 0


def _add_patch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patch-size", type=int, default=512, help="patch side in px (default 512)")
    p.add_argument(
        "--min-particle-px",
        type=int,
        default=400,
        help="drop patches with fewer particle pixels (default 400, as the authors)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")


def _add_generator_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PRESET_NAMES, required=True, help="dataset of the paper")
    p.add_argument("--images", type=int, required=True, help="number of images to generate")
    p.add_argument("--seed", type=int, required=True, help="seed (same seed, same bytes)")
    p.add_argument(
        "--image-size",
        type=int,
        help="image side in px (default: the paper's, 4096 HR / 2048 LR; 512 is quick)",
    )
    p.add_argument(
        "--fringe-free-fraction",
        type=float,
        help="share of particles without lattice fringes (default 0.15 HR)",
    )
    p.add_argument("--dose", type=float, help="electron dose in e/A^2 (default 423 HR, 16 LR)")
    _add_patch_args(p)


def register(sub) -> None:
    """Add ingest, synth, synth-series, info and preview to the temseg subparsers."""
    p = sub.add_parser(
        "ingest",
        help="real microscope images + masks -> patch store",
        description=(
            "Read images (.dm3/.dm4/.ser/.emd via ncempy, .tif/.png/.npy) and hand-drawn "
            "binary masks, apply the paper's preprocessing (negatives to 0, x-ray removal, "
            "per-image standardization), cut P x P patches, drop patches with too few "
            "particle pixels, split 70/10/20 keeping each file on one side (>= 3 files) and "
            "write a Zarr patch store. 3-D stacks give one image per frame."
        ),
    )
    p.add_argument("out", help="store to create, e.g. data/au5nm.zarr")
    p.add_argument("--image", action="append", metavar="IMG", help="image file (repeat)")
    p.add_argument("--mask", action="append", metavar="MASK", help="its mask (repeat, same order)")
    p.add_argument(
        "--folder",
        help="pair every image in DIR with DIR/<stem>_mask.* (or _label.*) by file stem",
    )
    p.add_argument("--mask-folder", help="with --folder: masks named <stem>.* in this folder")
    p.add_argument(
        "--pixel-size-nm",
        type=float,
        help="pixel size in nm (overrides the file's calibration; required for TIFF/PNG)",
    )
    p.add_argument(
        "--xray-threshold",
        type=float,
        help="x-ray outliers: counts above median + T (default 1500 HR, 400 LR by pixel size)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument(
        "--resample",
        action="store_true",
        help="interpolate anisotropic pixels onto square ones instead of refusing the file",
    )
    _add_patch_args(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser(
        "synth",
        help="synthetic TEM images of Au particles -> patch store",
        description=(
            "Generate raw-count images with the physically-motivated model (faceted Au "
            "particles with thickness-scaled amplitude contrast C and fcc lattice fringes, "
            "amorphous carbon, lens phase plate, illumination, Poisson noise at the dose, "
            "x-ray spikes), preprocess them like real files and write a patch store."
        ),
    )
    p.add_argument("out", help="store to create, e.g. data/hr-2.2nm-c0.060-s0.zarr")
    p.add_argument(
        "--contrast", type=float, required=True, help="C: particle centre intensity 1 - C"
    )
    _add_generator_args(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "synth-series",
        help="one synthetic store per contrast level (reuses matching stores)",
        description=(
            "Write OUT_DIR/<preset>-c<C>-s<seed>.zarr for every contrast level, all from one "
            "seed (same particles, carbon and lens; only C differs). A store that already "
            "exists with identical parameters is reused; prints a CSV of measured contrast."
        ),
    )
    p.add_argument("out_dir", help="folder for the stores")
    p.add_argument(
        "--contrasts",
        type=_float_list,
        required=True,
        help="comma-separated C levels, e.g. 0.02,0.06,0.2",
    )
    _add_generator_args(p)
    p.set_defaults(func=_cmd_synth_series)

    p = sub.add_parser(
        "info",
        help="summary of a patch store",
        description="Print a patch store's patches per split, pixel size, contrast and origin.",
    )
    p.add_argument("store", help="patch store (.zarr directory)")
    p.add_argument("--json", action="store_true", help="print every attribute as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "preview",
        help="PNG of a synthetic image (or a stored patch) beside its mask",
        description=(
            "Write OUT.png: the image, its mask, and the image with the mask outline in red. "
            "By default renders a 512 x 512 synthetic HR image (hr-2.2nm, C = 0.06) through "
            "the store preprocessing; with --store shows a stored patch."
        ),
    )
    p.add_argument("out", help="PNG to write")
    p.add_argument("--preset", choices=PRESET_NAMES, default="hr-2.2nm", help="default hr-2.2nm")
    p.add_argument("--contrast", type=float, default=0.06, help="C (default 0.06)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--image-size", type=int, default=512, help="image side in px (default 512)")
    p.add_argument("--store", help="show a patch of this store instead")
    p.add_argument("--split", default="train", help="with --store: split (default train)")
    p.add_argument("--index", type=int, default=0, help="with --store: patch index (default 0)")
    p.set_defaults(func=_cmd_preview)
