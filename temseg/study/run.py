"""``temseg study``: from a folder of micrographs and masks to a network and particle sizes.

One function, :func:`run_study`, in the order the issue asks for, each step an existing
public entry point: pair and check the folder (:mod:`temseg.study.inputs`), choose the
profile and estimate the time (:mod:`temseg.study.plan`), ingest
(:func:`temseg.data.ingest.ingest`), run the grid (:func:`temseg.sweep.run_grid`: trials,
MLflow parent run, report, registry), segment every image with the registered network
(:func:`temseg.segment.segment`) and write the page (:mod:`temseg.study.page`).

Resumable: the store is made once (a later run checks it was made from the same files and
options), the grid trains only trials whose key is not yet finished in MLflow, and the
segmentation and page are rewritten from what is there.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from temseg.study.inputs import StudyInputs, find_inputs, resample_onto
from temseg.study.plan import choose_profile, estimate_seconds, format_duration, planned_patches


def dataset_name(folder: Path) -> str:
    """The store's (and so the registered model's) name: the folder's, to [A-Za-z0-9._-]."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", folder.name).strip("_") or "study"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _ingested(store: Path, inputs: StudyInputs, flat_field: bool, patch: int) -> bool:
    """True when ``store`` exists from these files and options (reuse it); raises when it
    exists from others; False when there is none yet."""
    if not store.exists():
        return False
    from temseg.data.preprocess import flat_field_of
    from temseg.data.store import read_attrs

    attrs = read_attrs(store)
    expected = [m.path.name for m in inputs.pairs]
    got = sorted({s.split("#frame")[0] for s in attrs["sources"]})
    same = (
        got == sorted(expected)
        and flat_field_of(attrs["preprocessing"]) == flat_field
        and int(attrs["patch_size"]) == patch
    )
    if not same:
        raise FileExistsError(
            f"{store}: a store made from other files or options (sources {got}, flat field "
            f"{flat_field_of(attrs['preprocessing'])}, patch {attrs['patch_size']} px); give "
            "another --out"
        )
    return True


def _config(args: argparse.Namespace, store: Path, name: str) -> Any:
    """The validated sweep config: the chosen profile over the study's store, flags applied."""
    from temseg.sweep.cli import sweep_config

    args.data = [str(store)]
    experiment = args.experiment or f"temseg-study-{name}"
    return sweep_config(args, seeds=args.seeds, epochs=args.epochs, experiment=experiment)


def _check_sizes(inputs: StudyInputs, cfg: Any, patch: int) -> None:
    from temseg.sweep.space import architectures

    architectures(cfg, patch)  # ConfigError when no network of the grid fits the patch
    for m in inputs.pairs:
        if min(m.shape) < patch:
            raise ValueError(
                f"{m.path}: image of {m.shape[0]}x{m.shape[1]} px is smaller than the "
                f"{patch} px patch of the {cfg.profile} profile (give a smaller --patch-size)"
            )


def _plan(args, inputs, cfg, store, name, patch, why) -> None:
    """Print the plan and its estimated time (and with --dry-run the trial table)."""
    from temseg.data.patches import SPLIT_FRACTIONS
    from temseg.sweep.space import plan_trials
    from temseg.trial import Dataset

    ds = Dataset(str(store), name, inputs.pixel_size_nm, patch, math.nan)
    trials = plan_trials(cfg, [ds])
    if store.exists():
        from temseg.data.store import read_attrs

        patches = read_attrs(store)["n_patches"]
    else:
        shapes = [(m.frames, *m.shape) for m in inputs.pairs]
        patches = planned_patches(shapes, patch, SPLIT_FRACTIONS)  # ingest's split
    cpus = args.num_cpus or os.cpu_count() or 1
    concurrent = max(1, int(cpus // cfg.cpus_per_trial))
    seconds = estimate_seconds(trials, patches, patch, concurrent=concurrent)
    on_gpus = cfg.gpus_per_trial or args.address
    gpu = " (calibrated on CPUs; GPUs train far faster)" if on_gpus else ""
    extra = f", {len(inputs.extra)} more to segment" if inputs.extra else ""
    _say(
        f"study: {len(inputs.pairs)} image/mask pairs in {inputs.folder}{extra}; "
        f"{inputs.pixel_size_nm:g} nm/px; flat field {'on' if args.flat_field else 'off'}\n"
        f"profile: {cfg.profile} ({why}); {len(trials)} trials of {cfg.epochs} epochs on "
        f"{patch} px patches (train/val/test {patches['train']}/{patches['val']}/"
        f"{patches['test']}), {concurrent} at a time\n"
        f"estimated time: {format_duration(seconds)}{gpu}"
    )
    if args.dry_run:
        from temseg.sweep.grid import GridStrategy

        GridStrategy().plan(cfg, [ds])


def run_study(args: argparse.Namespace) -> int:
    """Run ``temseg study`` from parsed arguments; the exit code (see the module docstring)."""
    from temseg.sweep.campaign import run_campaign
    from temseg.sweep.cli import placement_of
    from temseg.sweep.grid import GridStrategy

    out = Path(args.out).absolute()
    if args.data:
        raise ValueError("--data: a study makes its own store from FOLDER; leave --data out")
    inputs = find_inputs(
        args.folder,
        mask_folder=args.mask_folder,
        segment_folder=args.segment_folder,
        pixel_size_nm=args.pixel_size_nm,
        resample=args.resample,
    )
    name = dataset_name(inputs.folder)
    profile, why = choose_profile(
        args.profile, address=args.address, gpus_per_trial=args.gpus_per_trial
    )
    args.profile = profile
    store = out / f"{name}.zarr"
    cfg = _config(args, store, name)
    patch = args.patch_size or cfg.synthetic.patch_size
    _check_sizes(inputs, cfg, patch)
    _plan(args, inputs, cfg, store, name, patch, why)
    if args.dry_run:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if inputs.odd_one() is not None:  # --resample given (find_inputs refused it otherwise)
        inputs = resample_onto(inputs, out / "resampled")
    if not _ingested(store, inputs, args.flat_field, patch):
        from temseg.data.ingest import ingest

        ingest(
            store,
            [(m.path, m.mask) for m in inputs.pairs],
            pixel_size_nm=args.pixel_size_nm,
            patch_size=patch,
            xray_threshold=args.xray_threshold,
            flat_field=args.flat_field,
            progress=_say,
        )
    args.report_dir = args.report_dir or str(out / "report")
    where = placement_of(args, out)  # MLflow, Ray results and report under OUT by default
    uri = where.tracking_uri
    results = run_campaign(cfg, GridStrategy(), where)
    failed = sum(1 for r in results if r.error)
    from temseg.study.page import finish

    finish(args, inputs, out=out, name=name, uri=uri, experiment=cfg.experiment_name, why=why)
    if failed:
        print(f"temseg study: {failed} trial(s) failed (see the report)", file=sys.stderr)
    return 1 if failed else 0
