"""Data commands (ingest, synth, simulate, synth-image, synth-series, info, preview): registered by
temseg.cli.

``register`` attaches the handlers to the subparsers :mod:`temseg.data.cli_args` declares;
numpy, zarr and torch are imported inside the handlers so ``temseg --help`` stays instant. Handlers return an exit code and raise
ValueError / FileNotFoundError / FileExistsError with a message naming the file, which
``temseg.cli.main`` prints as ``temseg CMD: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from temseg.data import cli_args
from temseg.data.cli_args import KNOB_FLAGS


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _knobs(args: argparse.Namespace) -> dict:
    """The difficulty knobs given on the command line, validated against the preset.

    A bad value raises ValueError naming its flag (e.g. ``--coverage: coverage must lie in
    (0, 0.6), got 0.7``), before anything is generated or written.
    """
    from temseg.data.synth import generator_params

    knobs = {f: getattr(args, f) for f in KNOB_FLAGS if getattr(args, f, None) is not None}
    try:
        generator_params(args.preset, contrast=0.0, **knobs)
    except ValueError as exc:
        msg = str(exc)
        for f in knobs:
            if msg.startswith(f):
                raise ValueError(f"{KNOB_FLAGS[f]}: {msg}") from None
        raise
    return knobs


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
        flat_field=args.flat_field,
        overwrite=args.overwrite,
        progress=_progress,
    )
    _print_summary(out)
    return 0


def _generated_store_args(args: argparse.Namespace) -> dict:
    """What ``temseg synth``, ``synth-series`` and ``simulate`` pass alike to their store
    writers: preset, image count, seed, image size and the patch settings."""
    return dict(
        preset=args.preset,
        images=args.images,
        seed=args.seed,
        image_size=args.image_size,
        patch_size=args.patch_size,
        min_particle_px=args.min_particle_px,
        overwrite=args.overwrite,
    )


def _cmd_synth(args: argparse.Namespace) -> int:
    from temseg.data.synth import make_synthetic_store

    out = make_synthetic_store(
        args.out,
        contrast=args.contrast,
        flat_field=args.flat_field,
        progress=_progress,
        **_generated_store_args(args),
        **_knobs(args),
    )
    _print_summary(out)
    return 0


SIM_KNOBS = (
    "carbon_correlation_nm",
    "contamination_per_100nm2",
    "illumination_variation",
    "zone_axis_fraction",
    "field_margin",
    "motion_frames",
    "motion_rotation_deg",
    "motion_drift_nm",
    "detector",
    "label_style",
    "label_jitter_nm",
    "field_carbon_level",
    "field_std_ratio",
)


def _is_number(value) -> bool:
    return isinstance(value, (int, float))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from temseg.data.simulate import make_simulated_store, require_sim, sim_params

    overrides = {
        "carbon_thickness_nm": args.carbon_thickness_nm,
        "defocus_nm": args.defocus_nm,
        "aperture_mrad": args.aperture_mrad,
        "coverage": args.coverage,
        "pixel_size_nm": args.pixel_size_nm,
        "dose": args.dose,
        "frozen_phonons": args.frozen_phonons,
        "slice_thickness_nm": args.slice_thickness_nm,
        **{name: getattr(args, name) for name in SIM_KNOBS},
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:  # every parameter checked before abTEM is imported or anything written
        sim_params(args.preset, image_size=args.image_size, v1=args.v1, **overrides)
    except ValueError as exc:
        msg = str(exc)
        for f in overrides:
            if msg.startswith(f):
                raise ValueError(f"--{f.replace('_', '-')}: {msg}") from None
        raise
    try:
        require_sim(threads=args.threads)
    except ModuleNotFoundError as exc:  # the optional extra: say how to install it, exit 2
        raise ValueError(str(exc)) from None
    out = make_simulated_store(
        args.out,
        flat_field=args.flat_field,
        **_generated_store_args(args),
        progress=True,
        log=_progress,
        v1=args.v1,
        **overrides,
    )
    _print_summary(out)
    return 0


def _cmd_synth_image(args: argparse.Namespace) -> int:
    from temseg.data.synth import write_micrograph

    paths = write_micrograph(
        args.out,
        preset=args.preset,
        contrast=args.contrast,
        seed=args.seed,
        image_size=args.size,
        index=args.index,
        overwrite=args.overwrite,
        **_knobs(args),
    )
    for path in paths.values():
        print(path)
    return 0


def _cmd_synth_series(args: argparse.Namespace) -> int:
    from temseg.data.synth import make_contrast_series

    paths = make_contrast_series(
        args.out_dir,
        contrasts=args.contrasts,
        progress=_progress,
        **_generated_store_args(args),
        **_knobs(args),
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
        f"/{pre.get('patches_cut')} patches, flat field "
        f"{'on' if pre.get('flat_field') else 'off'}"
    )
    srcs = a["sources"]
    shown = ", ".join(srcs[:3]) + (f", ... ({len(srcs)} in all)" if len(srcs) > 3 else "")
    print(f"sources:        {shown}")
    if "simulation" in a:
        g = a["simulation"]
        carbon = g["carbon_thickness_nm"]  # v1: one number; v2: (min, max)
        carbon = "-".join(f"{t:g}" for t in sorted({carbon} if _is_number(carbon) else set(carbon)))
        knobs = ""
        if g.get("version", 1) >= 2:
            knobs = (
                f", zone-axis share {g['zone_axis_fraction']:g}, motion frames "
                f"{g['motion_frames']}, detector {g['detector']}, labels {g['label_style']}"
            )
        print(
            f"simulation:     {g.get('method')} (abTEM {g.get('abtem_version')}), "
            f"{g['preset']} seed={g['seed']} images={g['images']} size={g['image_size']} "
            f"carbon {carbon} nm, dose={g['dose']:g} e/A^2, defocus "
            f"{g['defocus_nm'][0]:g}..{g['defocus_nm'][1]:g} nm, frozen phonons "
            f"{g['frozen_phonons']}{knobs} (v{g['version']})"
        )
    if "generator" in a:
        g = a["generator"]
        print(
            f"generator:      {g['preset']} C={g['contrast']:g} seed={g['seed']} "
            f"images={g['images']} size={g['image_size']} dose={g['dose']:g} e/A^2 "
            f"fringe-free={g['fringe_free_fraction']:g} (v{g['version']})"
        )
        print(f"knobs:          {_knob_summary(g)}")
    print(f"content hash:   {a['content_hash']}")
    return 0


def _knob_summary(g: dict) -> str:
    """The difficulty knobs of a store's ``generator`` attribute, ``*`` on those set away from
    the preset (marked only for stores of the current generator version, whose preset
    defaults are known here)."""
    from temseg.data.synth import GENERATOR_VERSION, PRESETS, GeneratorParams

    p = PRESETS.get(g.get("preset"))
    current = p is not None and g.get("version") == GENERATOR_VERSION
    default = {
        "defocus_nm": p and p.defocus_nm,
        "astigmatism_nm": GeneratorParams.astigmatism_nm,
        "coverage": p and p.coverage,
        "pixel_size_nm": p and p.pixel_size_nm,
        "fringe_free_fraction": p and p.fringe_free_fraction,
        "dose": p and p.dose,
    }

    def show(field: str, text: str) -> str:
        value = g.get(field)
        if value is None:
            return f"{text.split(' ')[0]} n/a"
        ref = default[field]
        if isinstance(value, list):
            changed = ref is None or [float(v) for v in value] != [float(v) for v in ref]
        else:
            changed = ref is None or float(value) != float(ref)
        return text + ("*" if current and changed else "")

    def span(field: str) -> str:
        lo, hi = g.get(field) or (None, None)
        return f"{lo:g}..{hi:g} nm" if lo is not None else ""

    parts = [
        show("defocus_nm", f"defocus {span('defocus_nm')}"),
        show("astigmatism_nm", f"astigmatism {span('astigmatism_nm')}"),
        show("coverage", f"coverage {g.get('coverage', 0):g}"),
        show("pixel_size_nm", f"pixel {g.get('pixel_size_nm', 0):g} nm/px"),
        show("fringe_free_fraction", f"fringe-free {g.get('fringe_free_fraction', 0):g}"),
        show("dose", f"dose {g.get('dose', 0):g} e/A^2"),
    ]
    if not current:
        note = f" (generator v{g.get('version')})"
    elif any(part.endswith("*") for part in parts):
        note = " (* = set, not the preset's)"
    else:
        note = " (all the preset's)"
    return ", ".join(parts) + note


def _cmd_preview(args: argparse.Namespace) -> int:
    from temseg.data import preview

    if args.store:
        given = [KNOB_FLAGS[f] for f in KNOB_FLAGS if getattr(args, f) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} set(s) the synthetic image; a --store patch is shown as stored"
            )
        out = preview.store_preview(args.out, args.store, args.split, args.index)
    else:
        out = preview.synthetic_preview(
            args.out,
            preset=args.preset,
            contrast=args.contrast,
            seed=args.seed,
            image_size=args.image_size,
            **_knobs(args),
        )
    print(out)
    return 0


def register(sub) -> None:
    """Add ingest, synth, synth-image, synth-series, info and preview to the subparsers."""
    cli_args.add_ingest(sub).set_defaults(func=_cmd_ingest)
    cli_args.add_synth(sub).set_defaults(func=_cmd_synth)
    cli_args.add_simulate(sub).set_defaults(func=_cmd_simulate)
    cli_args.add_synth_image(sub).set_defaults(func=_cmd_synth_image)
    cli_args.add_synth_series(sub).set_defaults(func=_cmd_synth_series)
    cli_args.add_info(sub).set_defaults(func=_cmd_info)
    cli_args.add_preview(sub).set_defaults(func=_cmd_preview)
