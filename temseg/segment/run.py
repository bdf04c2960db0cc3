"""``temseg segment``'s run: images -> preprocessing -> tiled network -> masks, particle
tables and the page, written to a temporary folder and renamed at the end."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from temseg.segment.images import back_to, check_images, resample_to
from temseg.segment.models import SegmentModel
from temseg.segment.page import write_histogram, write_index, write_overlay
from temseg.segment.predict import DEFAULT_BATCH, DEFAULT_TILE, predict_tiled

DEFAULT_MIN_DIAMETER_NM = 1.0  # specks below this are not particles (Au NPs of 2-20 nm)


def _progress(total: int, enabled: bool):
    """A tqdm bar over frames if tqdm is installed, else one stderr line per image."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", desc="segment", file=sys.stderr)


def segment(
    images: Sequence[str | os.PathLike],
    *,
    model: SegmentModel,
    out: str | os.PathLike,
    pixel_size_nm: float | None = None,
    truth: Sequence[str | os.PathLike] | None = None,
    resample: bool = False,
    xray_threshold: float | None = None,
    flat_field: bool | None = None,
    min_diameter_nm: float = DEFAULT_MIN_DIAMETER_NM,
    tile: int = DEFAULT_TILE,
    batch_size: int = DEFAULT_BATCH,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Segment micrographs and write masks, particle tables and a report into ``out``.

    Parameters
    ----------
    images
        Files ``temseg ingest`` reads (.dm3, .dm4, .ser, .emd, TIFF, PNG, .npy); a 3-D stack
        is segmented frame by frame.
    model
        From :func:`load_model`.
    out
        Folder to create (refused if it exists, unless ``overwrite``). Everything is written
        to a temporary sibling first and renamed at the end: a failure leaves nothing.
    pixel_size_nm
        Pixel size of every image, overriding the files' calibration (required for files
        without one).
    truth
        One binary mask per image (same frames and shape): adds dice and size errors.
    resample
        Resample images whose pixel size differs from the model's onto it (scikit-image,
        bilinear, anti-aliased when shrinking; the mask comes back at the image's own size).
        Without it, an image more than 10 % off is refused before anything runs.
    xray_threshold
        T of the x-ray removal; default by regime from the image's pixel size, as ingest.
    flat_field
        Divide out uneven illumination (:func:`temseg.data.preprocess.correct_flat_field`)
        before the network; None (default): as the model was trained (``model.flat_field``).
    min_diameter_nm
        Components of the network's mask with an equivalent-circle diameter below this are
        removed before the mask is written and measured (single-pixel specks in the
        background would otherwise count as particles); 0 keeps every component. The
        number removed is ``removed_specks`` in summary.csv.
    tile, batch_size
        See :func:`predict_tiled`.

    Returns
    -------
    Path
        ``out``, holding ``<name>_mask.tif`` per image (uint8 0/1, the image's shape, ImageJ
        calibration), ``particles.csv``, ``summary.csv``, ``<name>_overlay.png``,
        ``sizes.png`` and ``index.html``.
    """
    import pandas as pd

    from temseg import particles as pt
    from temseg.data.preprocess import preprocess, standardize
    from temseg.data.readers import read_mask, read_raw, write_calibrated_tiff

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    if tile < 1:
        raise ValueError(f"--tile must be >= 1 px, got {tile}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if not min_diameter_nm >= 0:
        raise ValueError(f"--min-diameter-nm must be >= 0 nm, got {min_diameter_nm}")
    if xray_threshold is not None and not xray_threshold > 0:
        raise ValueError(f"--xray-threshold must be > 0 raw counts, got {xray_threshold}")
    jobs = check_images(
        images,
        truth,
        pixel_size_nm=pixel_size_nm,
        model_pixel_size_nm=model.pixel_size_nm,
        resample=resample,
    )
    say(f"model: {model.describe()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    notes: list[str] = []
    flat = model.flat_field if flat_field is None else flat_field
    notes.append(
        f"flat field {'on' if flat else 'off'} "
        f"({'as the network was trained' if flat_field is None else 'given'})"
    )
    tables, truth_tables, summaries, overlays = [], [], [], []
    bar = _progress(sum(j.frames for j in jobs), progress)
    try:
        for n, job in enumerate(jobs, 1):
            raw = read_raw(job.path)
            true = read_mask(job.truth) if job.truth else None
            factor = job.pixel_size_nm / model.pixel_size_nm
            scaled = resample and abs(factor - 1) > 1e-6
            if scaled:
                msg = (
                    f"{job.path.name}: resampled from {job.pixel_size_nm:g} to "
                    f"{model.pixel_size_nm:g} nm/px (x{factor:.4g}, scikit-image) for the "
                    "network; mask resampled back to the image's size"
                )
                notes.append(msg)
                say(msg)
            masks = np.zeros(raw.data.shape, np.uint8)
            for f, frame in enumerate(raw.data):
                std, record = preprocess(
                    frame,
                    pixel_size_nm=job.pixel_size_nm,
                    xray_threshold=xray_threshold,
                    flat_field=flat,
                )
                if scaled:
                    # x-rays removed at the native sampling, then resampled and standardized
                    # again (interpolation narrows the spread when shrinking)
                    net_in = standardize(resample_to(std, factor, order=1))
                else:
                    net_in = std
                mask = predict_tiled(model.net, net_in, tile=tile, batch_size=batch_size)
                if scaled:
                    mask = back_to(mask, frame.shape)
                mask, removed = pt.remove_specks(mask, job.pixel_size_nm, min_diameter_nm)
                masks[f] = mask
                labels = pt.label_particles(mask)
                table = pt.particle_table(
                    mask, job.pixel_size_nm, image=job.name, frame=f, labels=labels
                )
                row = {
                    "image": job.name,
                    "frame": f,
                    "pixel_size_nm": job.pixel_size_nm,
                    "resampled": scaled,
                    "xray_replaced": record["xray_replaced"],
                    "removed_specks": removed,
                    **pt.summarize(table),
                }
                if true is not None:
                    tl = pt.label_particles(true[f])
                    tt = pt.particle_table(
                        true[f], job.pixel_size_nm, image=job.name, frame=f, labels=tl
                    )
                    row.update(pt.compare_with_truth(table, labels, tt, tl))
                    truth_tables.append(tt)
                tables.append(table)
                summaries.append(row)
                if f == 0:
                    write_overlay(
                        std,
                        mask,
                        None if true is None else true[0],
                        tmp / f"{job.name}_overlay.png",
                    )
                    overlays.append(f"{job.name}_overlay.png")
                if bar is not None:
                    bar.update(1)
            if raw.data.shape[0] == 1:  # a single image (read as one frame) stays 2-D
                masks = masks[0]
            write_calibrated_tiff(tmp / f"{job.name}_mask.tif", masks, job.pixel_size_nm)
            if bar is None and progress:
                say(f"segment: {n}/{len(jobs)} {job.path.name} ({job.frames} frame(s))")
        if bar is not None:
            bar.close()
        particles = pd.concat(tables, ignore_index=True) if tables else None
        particles.to_csv(tmp / "particles.csv", index=False)
        columns = ["image", "frame", "pixel_size_nm", "resampled", "xray_replaced"]
        columns += ["removed_specks"]
        columns += pt.SUMMARY_COLUMNS + (pt.TRUTH_COLUMNS if truth else [])
        summary = pd.DataFrame(summaries, columns=columns)
        summary.to_csv(tmp / "summary.csv", index=False)
        true_particles = pd.concat(truth_tables, ignore_index=True) if truth_tables else None
        write_histogram(particles, true_particles, tmp / "sizes.png")
        if any(j.frames > 1 for j in jobs):
            notes.append("stacks: the overlay shows frame 0; every frame is in the tables")
        write_index(tmp, summary, model, overlays, notes)
        if out.exists():  # overwrite: swap, then drop the old folder
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
