"""``temseg segment``'s run: images -> preprocessing -> networks (one, or a seed ensemble) on
seamless tiles -> masks, particle tables, size statistics and the page, written to a
temporary folder and renamed at the end.

The Python entry point is :func:`segment_images`; :func:`choose_auto` picks, for
``--model auto``, the registered network trained nearest the images' contrast.

Ensemble. Each network gives a particle probability per pixel, ``sigmoid(logit_particle -
logit_background)``; the ensemble's mask is their mean above 0.5 (one network: its own
argmax, exactly). Each particle of that mask is also measured in every network's own mask
(:func:`temseg.particles.member_sizes`); that between-network spread enters the size
intervals (:mod:`temseg.segment.sizes`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from temseg.segment import guard
from temseg.segment.images import ImageJob, back_to, check_images, resample_to
from temseg.segment.models import SegmentModel
from temseg.segment.predict import DEFAULT_BATCH, DEFAULT_TILE, predict_ensemble
from temseg.segment.sizes import DEFAULT_BOOT

DEFAULT_MIN_DIAMETER_NM = 1.0  # specks below this are not particles (Au NPs of 2-20 nm)


@dataclass(frozen=True)
class SegmentOptions:
    """How images are read and segmented (the command's options; defaults are its own)."""

    pixel_size_nm: float | None = None
    resample: bool = False
    xray_threshold: float | None = None
    min_diameter_nm: float = DEFAULT_MIN_DIAMETER_NM
    tile: int = DEFAULT_TILE
    batch_size: int = DEFAULT_BATCH
    split: bool = False
    n_boot: int = DEFAULT_BOOT
    seed: int = 0
    flat_field: bool | None = None  # None: as the networks were trained (SegmentModel)
    calibrate: bool = True  # widen D50/D90 by the boundary error (temseg.segment.calibration)

    def flat_field_for(self, models: Sequence[SegmentModel]) -> bool:
        """Whether to flat-field: the option, else what the networks trained with (they must
        agree: an ensemble of networks trained with and without it has no one input)."""
        if self.flat_field is not None:
            return self.flat_field
        trained = {m.flat_field for m in models}
        if len(trained) > 1:
            raise ValueError(
                "the networks were trained with and without flat-field correction: give "
                "--flat-field or --no-flat-field"
            )
        return trained.pop()

    def check(self) -> None:
        """Refuse a bad value with the option's name, before anything runs."""
        if self.tile < 1:
            raise ValueError(f"--tile must be >= 1 px, got {self.tile}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.min_diameter_nm >= 0:
            raise ValueError(f"--min-diameter-nm must be >= 0 nm, got {self.min_diameter_nm}")
        if self.xray_threshold is not None and not self.xray_threshold > 0:
            raise ValueError(f"--xray-threshold must be > 0 raw counts, got {self.xray_threshold}")
        if self.n_boot < 100:
            raise ValueError(f"--bootstrap must be >= 100 replicates, got {self.n_boot}")


@dataclass
class Frame:
    """One segmented frame: its mask, particles and what the guard measured."""

    std: np.ndarray  # the standardized image (the overlay's background)
    mask: np.ndarray
    labels: np.ndarray  # the particles' label image (touching ones split with --split)
    table: pd.DataFrame  # temseg.particles.PARTICLE_COLUMNS
    members_d: np.ndarray  # (particles, networks) equivalent diameter in each network, nm
    members_f: np.ndarray  # the same for the max Feret diameter
    removed: int
    contrast: float  # contrast score with the networks' mask (temseg.segment.guard)
    contrast_otsu: float  # with Otsu's mask
    xray_replaced: int


@dataclass
class SegmentResult:
    """What :func:`segment_images` wrote into ``out``, also as tables."""

    out: Path
    summary: pd.DataFrame  # summary.csv: one row per image and frame, then "all"
    sizes: pd.DataFrame  # sizes.csv: every statistic with its interval, long format
    particles: pd.DataFrame  # particles.csv
    notes: list[str] = field(default_factory=list)


def _segment_frame(
    frame: np.ndarray, job: ImageJob, models: Sequence[SegmentModel], opts: SegmentOptions, f: int
) -> Frame:
    from temseg import particles as pt
    from temseg.data.preprocess import preprocess, standardize

    std, record = preprocess(
        frame,
        pixel_size_nm=job.pixel_size_nm,
        xray_threshold=opts.xray_threshold,
        flat_field=opts.flat_field_for(models),
    )
    factor = job.pixel_size_nm / models[0].pixel_size_nm
    scaled = opts.resample and abs(factor - 1) > 1e-6
    # x-rays removed at the native sampling, then resampled and standardized again
    # (interpolation narrows the spread when shrinking)
    net_in = standardize(resample_to(std, factor, order=1)) if scaled else std
    mask, members = predict_ensemble(models, net_in, tile=opts.tile, batch_size=opts.batch_size)
    contrast = guard.image_contrast(net_in, mask), guard.otsu_contrast(net_in)
    if scaled:
        mask, members = back_to(mask, frame.shape), [back_to(m, frame.shape) for m in members]
    mask, removed = pt.remove_specks(mask, job.pixel_size_nm, opts.min_diameter_nm)
    labels = pt.split_touching(mask) if opts.split else pt.label_particles(mask)
    table = pt.particle_table(mask, job.pixel_size_nm, image=job.name, frame=f, labels=labels)
    d, fer = pt.member_sizes(labels, members, job.pixel_size_nm)
    rows = table["label"].to_numpy(int) - 1
    d, fer = d[rows], fer[rows]
    # a network without the particle adds no size spread for it: its own size stands in
    d = np.where(np.isnan(d), table["diameter_nm"].to_numpy()[:, None], d)
    fer = np.where(np.isnan(fer), table["feret_max_nm"].to_numpy()[:, None], fer)
    return Frame(std, mask, labels, table, d, fer, removed, *contrast, record["xray_replaced"])


def _segment_job(job: ImageJob, models, options: SegmentOptions, tmp: Path, notes: list[str],
                 say: Callable[[str], None], bar) -> list[tuple]:  # fmt: skip
    """Every frame of one image: its mask TIFF into ``tmp``, the guard's warnings into
    ``notes``; returns ``(job, frame, resampled, Frame, in_domain, true_mask)`` per frame."""
    from temseg.data.readers import read_mask, read_raw, write_calibrated_tiff

    raw = read_raw(job.path)
    true = read_mask(job.truth) if job.truth else None
    px_model = models[0].pixel_size_nm
    scaled = options.resample and abs(job.pixel_size_nm / px_model - 1) > 1e-6
    if scaled:
        notes.append(
            f"{job.path.name}: resampled from {job.pixel_size_nm:g} to {px_model:g} nm/px "
            "(scikit-image) for the network; mask resampled back to the image's size"
        )
        say(notes[-1])
    masks = np.zeros(raw.data.shape, np.uint8)
    out = []
    for f, frame in enumerate(raw.data):
        fr = _segment_frame(frame, job, models, options, f)
        masks[f] = fr.mask
        ok = guard.in_domain(
            [fr.contrast, fr.contrast_otsu], px_model if scaled else job.pixel_size_nm,
            [m.contrast for m in models], px_model,
        )  # fmt: skip
        if ok == 0.0:
            notes.append(
                guard.warning(f"{job.name}[{f}]", (fr.contrast, fr.contrast_otsu),
                              job.pixel_size_nm, models)
            )  # fmt: skip
            say(notes[-1])
        out.append((job, f, scaled, fr, ok, None if true is None else true[f]))
        if bar is not None:
            bar.update(1)
    write_calibrated_tiff(
        tmp / f"{job.name}_mask.tif", masks[0] if raw.data.shape[0] == 1 else masks,
        job.pixel_size_nm,
    )  # fmt: skip
    return out


def _prepare_out(out: str | os.PathLike, overwrite: bool) -> Path:
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    return out


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():  # overwrite: swap, then drop the old folder
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "x")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def segment_images(
    images: Sequence[str | os.PathLike],
    models: SegmentModel | Sequence[SegmentModel],
    out: str | os.PathLike,
    *,
    options: SegmentOptions = SegmentOptions(),
    truth: Sequence[str | os.PathLike] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> SegmentResult:
    """Segment micrographs and write masks, particle tables, size statistics and a page.

    Parameters
    ----------
    images
        Files ``temseg ingest`` reads (.dm3, .dm4, .ser, .emd, TIFF, PNG, .npy); a 3-D stack
        is segmented frame by frame.
    models
        One network or several (a seed ensemble: :func:`temseg.segment.registry.load_models`),
        all trained at one pixel size.
    out
        Folder to create (refused if it exists, unless ``overwrite``). Everything is written
        to a temporary sibling first and renamed at the end: a failure leaves nothing.
    options
        :class:`SegmentOptions`: pixel size override, ``resample`` (images whose pixel size
        differs from the models' are otherwise refused when > 10 % off, and images that
        differ from each other by > 1 %), x-ray threshold, ``min_diameter_nm`` (smaller
        components are removed: ``removed_specks``), tiles, ``split`` (touching particles,
        :func:`temseg.particles.split_touching`), bootstrap replicates and seed, ``calibrate``
        (D50 / D90 widened by the boundary error, :mod:`temseg.segment.calibration`).
    truth
        One binary mask per image (same frames and shape): adds dice, count and size errors
        with intervals (:mod:`temseg.segment.truth`).

    Returns
    -------
    SegmentResult
        ``out`` holds ``<name>_mask.tif`` per image (uint8 0/1, the image's shape, ImageJ
        calibration), ``particles.csv``, ``summary.csv``, ``sizes.csv``,
        ``<name>_overlay.png`` (at most 1024 px a side) and ``<name>_overlay_full.png``,
        ``sizes.png``, ``index.html`` and, with the boundary-error term, ``calibration.json``.
    """
    from temseg.segment import tables
    from temseg.segment.page import write_page

    models = [models] if isinstance(models, SegmentModel) else list(models)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = _prepare_out(out, overwrite)
    options.check()
    px_model = models[0].pixel_size_nm
    jobs = check_images(
        images, truth, pixel_size_nm=options.pixel_size_nm, model_pixel_size_nm=px_model,
        resample=options.resample,
    )  # fmt: skip
    for m in models:
        say(f"model: {m.describe()}")
    flat = options.flat_field_for(models)  # refuses a mixed ensemble before any work
    calibration, notes = _calibration(models, options, say)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    notes = [
        f"flat field {'on' if flat else 'off'} "
        f"({'as the network was trained' if options.flat_field is None else 'given'})",
        *notes,
    ]
    bar = _progress(sum(j.frames for j in jobs), progress)
    try:
        collected = []
        for n, job in enumerate(jobs, 1):
            collected += _segment_job(job, models, options, tmp, notes, say, bar)
            if bar is None and progress:
                say(f"segment: {n}/{len(jobs)} {job.path.name} ({job.frames} frame(s))")
        result = tables.build(
            collected, len(models), options, with_truth=bool(truth), calibration=calibration
        )
        result = SegmentResult(tmp, *result, notes=notes)
        if calibration is not None:
            (tmp / "calibration.json").write_text(json.dumps(asdict(calibration), indent=1))
        if any(j.frames > 1 for j in jobs):
            notes.append("stacks: the overlays show frame 0; every frame is in the tables")
        write_page(tmp, result, models, collected)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    result.out = out
    return result


def _calibration(models: Sequence[SegmentModel], options: SegmentOptions, say):
    """The boundary-error term (or ``None``) and the notes, told, on it (none with
    ``calibrate=False``)."""
    if not options.calibrate:
        return None, []
    from temseg.segment.calibration import for_models

    calibration, note = for_models(
        models, min_diameter_nm=options.min_diameter_nm, tile=options.tile,
        batch_size=options.batch_size,
    )  # fmt: skip
    say(note)
    return calibration, [note]


def choose_auto(
    images: Sequence[str | os.PathLike],
    candidates: Sequence[SegmentModel],
    options: SegmentOptions = SegmentOptions(),
    log: Callable[[str], None] | None = None,
) -> SegmentModel:
    """``--model auto``: the candidate trained nearest the images' contrast at their pixel
    size.

    Candidates with a known training contrast, trained at a pixel size within 10 % of the
    images' (all of them with ``resample``), each segment the first frame of every image and
    measure its contrast score with their own mask. A network trained at a higher contrast
    keeps only the darkest cores of fainter particles, which raises the score it measures
    (demo networks, an image of true score 0.59: 0.59 with the mask of the network trained at
    0.44, 0.82 with the one trained at 1.0); so the image's score is the smallest estimate,
    and the candidate nearest it, by mean ``|ln(score / training contrast)|`` over the
    images, wins (ties: the first name).
    """
    from temseg.data.readers import read_raw

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    eligible = []
    for model in candidates:
        try:
            jobs = check_images(
                images, None, pixel_size_nm=options.pixel_size_nm,
                model_pixel_size_nm=model.pixel_size_nm, resample=options.resample,
            )  # fmt: skip
        except ValueError:
            continue  # another pixel size: not a candidate
        if model.contrast is not None:
            eligible.append((model, jobs))
    if not eligible:
        raise ValueError(
            "--model auto: no registered model with a known training contrast was trained at "
            "the images' pixel size: "
            + ", ".join(f"{m.source} ({m.pixel_size_nm:g} nm/px)" for m in candidates)
        )
    distance = np.zeros(len(eligible))
    for i in range(len(eligible[0][1])):
        estimates = [
            _segment_frame(read_raw(jobs[i].path).data[0], jobs[i], [m], options, 0).contrast
            for m, jobs in eligible
        ]
        score = float(np.nanmin(estimates))
        say(f"auto: {eligible[0][1][i].name}: contrast score {score:.3g} (estimates "
            + ", ".join(f"{e:.3g}" for e in estimates) + ")")  # fmt: skip
        distance += [guard.contrast_distance(score, m.contrast) for m, _ in eligible]
    best = eligible[int(np.argmin(distance))][0]
    say(f"auto: chose {best.source} (training contrast {best.contrast:.3g})")
    return best


def _progress(total: int, enabled: bool):
    """A tqdm bar over frames if tqdm is installed, else one stderr line per image."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", desc="segment", file=sys.stderr)
