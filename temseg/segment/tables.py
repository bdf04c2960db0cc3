"""The tables of a segmentation run: particles.csv, summary.csv and sizes.csv.

summary.csv has one row per image and frame and, with more than one, a last row
``image = all`` pooling their particles. Columns: the image's own (pixel size, resampling,
x-rays, specks), the counts and the old mean / median / sd diameter
(:data:`temseg.particles.SUMMARY_COLUMNS`), ``networks`` (ensemble size), ``contrast`` and
``in_domain`` (:mod:`temseg.segment.guard`), ``interval_over`` and ``boundary_rms`` (what
the intervals draw; D50 and D90 widened by the boundary error of
:mod:`temseg.segment.calibration` when measured), every size statistic with its 95 % interval
over particles (and networks) (:mod:`temseg.segment.sizes`), and with ``--truth`` the
comparison (:mod:`temseg.segment.truth`). sizes.csv has every statistic in long format, and
for the pooled row also the interval over images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from temseg import particles as pt
from temseg.segment import sizes, truth

IMAGE_COLUMNS = ["image", "frame", "pixel_size_nm", "resampled", "xray_replaced", "removed_specks"]
GUARD_COLUMNS = ["networks", "contrast", "contrast_otsu", "in_domain"]
BOUNDARY_COLUMNS = ["interval_over", "boundary_rms"]
SIZE_COLUMNS = ["gsd", *sizes.interval_columns(), *(f"needed_{n}" for n in sizes.NEEDED_FOR)]


def _interior(fr) -> np.ndarray:
    return ~fr.table["touches_border"].to_numpy(bool)


def _truth_row(frames: list, n_boot: int, seed: int) -> dict:
    """Block-bootstrap comparison over the given frames (their blocks pooled)."""
    seg_d, seg_b, true_d, true_b = [], [], [], []
    for i, (job, f, fr, true_mask) in enumerate(frames):
        h, w = fr.mask.shape
        wh = (w * job.pixel_size_nm, h * job.pixel_size_nm)
        inner = fr.table[_interior(fr)]
        seg_d.append(inner["diameter_nm"].to_numpy())
        seg_b.append(truth.block_ids(inner, *wh, i * truth.BLOCKS**2))
        tt = pt.particle_table(true_mask, job.pixel_size_nm, image=job.name, frame=f)
        tt = tt[~tt["touches_border"].astype(bool)]
        true_d.append(tt["diameter_nm"].to_numpy())
        true_b.append(truth.block_ids(tt, *wh, i * truth.BLOCKS**2))
    return truth.compare_sizes(
        (np.concatenate(seg_d), np.concatenate(seg_b)),
        (np.concatenate(true_d), np.concatenate(true_b)),
        len(frames) * truth.BLOCKS**2,
        n_boot=n_boot,
        seed=seed,
    )


def _sizes_of(frames: list) -> tuple[np.ndarray, ...]:
    keep = [_interior(fr) for fr in frames]
    d = np.concatenate(
        [fr.table["diameter_nm"].to_numpy()[k] for fr, k in zip(frames, keep, strict=True)]
    )
    f = np.concatenate(
        [fr.table["feret_max_nm"].to_numpy()[k] for fr, k in zip(frames, keep, strict=True)]
    )
    md = np.concatenate([fr.members_d[k] for fr, k in zip(frames, keep, strict=True)])
    mf = np.concatenate([fr.members_f[k] for fr, k in zip(frames, keep, strict=True)])
    return d, f, md, mf


def _boundary(n_networks: int, calibration) -> dict:
    """summary.csv's :data:`BOUNDARY_COLUMNS`: what the intervals draw and, if the D50 /
    D90 intervals carry the boundary-error term (:mod:`temseg.segment.calibration`), its
    per-image rms (log scale; NaN without the term)."""
    over = "particles" + ("+networks" if n_networks > 1 else "")
    if calibration is None:
        return {"interval_over": over, "boundary_rms": np.nan}
    return {
        "interval_over": f"{over}; d50 d90 {sizes.BOUNDARY}",
        "boundary_rms": calibration.rms,
    }


def build(collected: list, n_networks: int, options, *, with_truth: bool, calibration=None):
    """(summary, sizes, particles) from ``(job, frame, resampled, Frame, in_domain,
    true_mask)`` per segmented frame; ``calibration`` (or ``None``) widens D50 and D90."""
    rows, long = [], []
    boot = {"n_boot": options.n_boot, "seed": options.seed}
    extra = None if calibration is None else calibration.extra()
    for job, f, scaled, fr, ok, true_mask in collected:
        d, fer, md, mf = _sizes_of([fr])
        raw = sizes.particle_bootstrap(d, fer, members_d=md, members_feret=mf, **boot)
        iv = sizes.widen_intervals(d, fer, raw, extra)
        row = {
            "image": job.name, "frame": f, "pixel_size_nm": job.pixel_size_nm,
            "resampled": scaled, "xray_replaced": fr.xray_replaced, "removed_specks": fr.removed,
            **pt.summarize(fr.table), "networks": n_networks, "contrast": fr.contrast,
            "contrast_otsu": fr.contrast_otsu, "in_domain": ok,
            **_boundary(n_networks, calibration), **sizes.statistics_row(d, fer, iv, raw),
        }  # fmt: skip
        if with_truth:
            tl = pt.label_particles(true_mask)
            tt = pt.particle_table(true_mask, job.pixel_size_nm, labels=tl)
            row.update(pt.compare_with_truth(fr.table, fr.labels, tt, tl))
            row.update(_truth_row([(job, f, fr, true_mask)], **boot))
        rows.append(row)
        scope = f"{job.name}[{f}]"
        long.append(sizes.long_table(scope, "particles", row, iv, len(d), extra or (), raw))
    if len(collected) > 1:
        rows.append(_pooled(collected, n_networks, options, with_truth, long, calibration))
    columns = IMAGE_COLUMNS + pt.SUMMARY_COLUMNS + GUARD_COLUMNS + BOUNDARY_COLUMNS + SIZE_COLUMNS
    if with_truth:
        columns += pt.TRUTH_COLUMNS + truth.TRUTH_INTERVAL_COLUMNS
    summary = pd.DataFrame(rows, columns=columns)
    particles = pd.concat([c[3].table for c in collected], ignore_index=True)
    return summary, pd.concat(long, ignore_index=True), particles


def _pooled(collected, n_networks, options, with_truth, long, calibration) -> dict:
    frames = [c[3] for c in collected]
    boot = {"n_boot": options.n_boot, "seed": options.seed}
    extra = None if calibration is None else calibration.extra()
    d, fer, md, mf = _sizes_of(frames)
    raw = sizes.particle_bootstrap(d, fer, members_d=md, members_feret=mf, **boot)
    iv = sizes.widen_intervals(d, fer, raw, extra)
    table = pd.concat([fr.table for fr in frames], ignore_index=True)
    oks = np.array([c[4] for c in collected], float)
    row = {
        "image": "all", "frame": np.nan, "pixel_size_nm": np.nan,
        "resampled": any(c[2] for c in collected),
        "xray_replaced": sum(fr.xray_replaced for fr in frames),
        "removed_specks": sum(fr.removed for fr in frames), **pt.summarize(table),
        "networks": n_networks, "contrast": float(np.nanmedian([fr.contrast for fr in frames])),
        "contrast_otsu": float(np.nanmedian([fr.contrast_otsu for fr in frames])),
        "in_domain": np.nan if np.isnan(oks).any() else float(oks.all()),
        **_boundary(n_networks, calibration), **sizes.statistics_row(d, fer, iv, raw),
    }  # fmt: skip
    long.append(sizes.long_table("all", "particles", row, iv, len(d), extra or (), raw))
    groups = [(g[0], g[1]) for g in (_sizes_of([fr]) for fr in frames)]
    raw_images = sizes.image_bootstrap(groups, **boot)
    over_images = sizes.widen_intervals(d, fer, raw_images, extra)
    long.append(
        sizes.long_table("all", "images", row, over_images, len(d), extra or (), raw_images)
    )
    if with_truth:
        row.update(_truth_row([(c[0], c[1], c[3], c[5]) for c in collected], **boot))
    return row
