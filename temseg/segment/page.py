"""The page of a segmentation run (``index.html``): the pooled size statistics on one
screen, one row per image, the size histogram with the D50 interval marked, and overlays
(a reduced copy on the page, linked to the full-resolution one)."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

OVERLAY_MAX_SIDE = 1024
CSS = (
    "body{font-family:sans-serif;margin:12px 20px;max-width:1360px}"
    "h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:14px 0 4px}"
    "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 7px;text-align:right;"
    "border-bottom:1px solid #ddd;white-space:nowrap}th{background:#f2f2f2}.warn{color:#b00}"
    ".head{font-size:15px;margin:6px 0}.row{display:flex;gap:24px;align-items:flex-start}"
    "figure{display:inline-block;margin:4px}figcaption{font-size:12px}"
    "small{color:#555}"
)


def write_overlay(image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None, path: Path,
                  *, max_side: int | None = OVERLAY_MAX_SIDE) -> None:  # fmt: skip
    """PNG of the image (at most ``max_side`` px a side; None: full resolution) with the
    mask's outline in red (the truth's in cyan)."""
    from skimage.io import imsave
    from skimage.measure import block_reduce
    from skimage.segmentation import find_boundaries

    k = 1 if max_side is None else max(1, math.ceil(max(image.shape) / max_side))
    small = block_reduce(image.astype(np.float32), (k, k), np.mean)
    lo, hi = np.percentile(small, [1, 99])
    grey = np.clip((small - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    layers = [(truth, (0, 220, 255))] if truth is not None else []
    for m, colour in [*layers, (mask, (255, 40, 40))]:
        edge = block_reduce(find_boundaries(m > 0, mode="inner"), (k, k), np.max)
        rgb[edge[: rgb.shape[0], : rgb.shape[1]]] = colour
    imsave(path, rgb, check_contrast=False)


def write_histogram(d: np.ndarray, true_d: np.ndarray | None, pooled: pd.Series, path: Path):
    """Histogram of interior equivalent-circle diameters (and the truth's), with D50 and its
    95 % interval marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = np.concatenate([d, [] if true_d is None else true_d])
    bins = np.histogram_bin_edges(both, bins=30) if both.size else 10
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.hist(d, bins=bins, color="tab:red", alpha=0.7, label=f"segmented (n={len(d)})")
    if true_d is not None:
        ax.hist(true_d, bins=bins, histtype="step", color="k", lw=1.5,
                label=f"truth (n={len(true_d)})")  # fmt: skip
    if np.isfinite(pooled["d50_lo_nm"]):
        ax.axvspan(pooled["d50_lo_nm"], pooled["d50_hi_nm"], color="tab:blue", alpha=0.25,
                   label="D50 95 % interval")  # fmt: skip
    if np.isfinite(pooled["d50_nm"]):
        ax.axvline(
            pooled["d50_nm"], color="tab:blue", lw=1.5, label=f"D50 {pooled['d50_nm']:.3g} nm"
        )
    ax.set_xlabel("equivalent-circle diameter (nm), particles not touching the border")
    ax.set_ylabel("particles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ci(row: pd.Series, name: str) -> str:
    v, lo, hi = row[f"{name}_nm"], row[f"{name}_lo_nm"], row[f"{name}_hi_nm"]
    if not np.isfinite(v):
        return ""
    return f"{v:.3f} <small>[{lo:.3f}, {hi:.3f}]</small>" if np.isfinite(lo) else f"{v:.3f}"


def _flag(v: float) -> str:
    if not np.isfinite(v):
        return "unknown"
    return "yes" if v else "<span class='warn'>NO</span>"


def _rows(summary: pd.DataFrame, truth: bool) -> str:
    head = ["image", "n", "D10 nm", "D50 nm", "D90 nm", "D[4,3] nm", "GSD",
            "contrast<br><small>net / Otsu</small>", "in domain"]  # fmt: skip
    if truth:
        head += ["dice", "D50 bias nm", "count err %", "KS"]
    out = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for _, r in summary.iterrows():
        name = r["image"] if r["image"] == "all" else f"{r['image']}[{int(r['frame'])}]"
        cells = [html.escape(name), f"{int(r['count_interior'])}",
                 *(_ci(r, s) for s in ("d10", "d50", "d90", "dvmean")),
                 f"{r['gsd']:.3g}", f"{r['contrast']:.3g} / {r['contrast_otsu']:.3g}",
                 _flag(r["in_domain"])]  # fmt: skip
        if truth:
            dice = "" if not np.isfinite(r["dice"]) else f"{r['dice']:.3f}"
            cells += [dice] + [
                f"{r[c]:+.{k}f} <small>[{r[c + '_lo']:+.{k}f}, {r[c + '_hi']:+.{k}f}]</small>"
                for c, k in (("d50_bias_nm", 3), ("count_error_pct", 1))
            ]
            cells.append(f"{r['ks']:.3f} <small>[{r['ks_lo']:.3f}, {r['ks_hi']:.3f}]</small>")
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + "".join(out) + "</table>"


def _headline(p: pd.Series, n_networks: int) -> str:
    need = max(p[f"needed_{s}"] for s in ("d50", "d90", "dvmean"))
    enough = "enough" if np.isfinite(need) and p["count_interior"] >= need else "not enough"
    boundary = (
        f" and, for D50 and D90, the per-image boundary error measured on held-out data (rms "
        f"{100 * p['boundary_rms']:.1f} %)"
        if np.isfinite(p["boundary_rms"])
        else "; no boundary-error term: see the notes"
    )
    return (
        f"<p class='head'><b>D50 = {_ci(p, 'd50')} nm</b> (95 % interval over particles"
        f"{', ' + str(n_networks) + ' networks' if n_networks > 1 else ''}{boundary}); "
        f"D90 = {_ci(p, 'd90')} nm; volume-weighted D[4,3] = {_ci(p, 'dvmean')} nm; "
        f"GSD {p['gsd']:.3g}. Particles measured / needed for +-5 % at 95 %: "
        f"{int(p['count_interior'])} / {need:.0f} ({enough}).</p>"
    )


def write_page(out: Path, result, models, collected) -> None:
    """Overlays, sizes.png, the CSV files and index.html of a run into ``out``."""
    result.particles.to_csv(out / "particles.csv", index=False)
    result.summary.to_csv(out / "summary.csv", index=False)
    result.sizes.to_csv(out / "sizes.csv", index=False)
    truth = any(c[5] is not None for c in collected)
    figs = []
    for job, f, _, fr, _, true_mask in collected:
        if f:
            continue
        for suffix, side in (("overlay", OVERLAY_MAX_SIDE), ("overlay_full", None)):
            write_overlay(
                fr.std, fr.mask, true_mask, out / f"{job.name}_{suffix}.png", max_side=side
            )
        figs.append(
            f'<figure><a href="{html.escape(job.name)}_overlay_full.png"><img src="'
            f'{html.escape(job.name)}_overlay.png" width="420"></a><figcaption>'
            f"{html.escape(job.name)} (click: full resolution)</figcaption></figure>"
        )
    pooled = result.summary.iloc[-1]
    d = [
        c[3].table.loc[~c[3].table["touches_border"].astype(bool), "diameter_nm"] for c in collected
    ]
    true_d = None
    if truth:
        from temseg.particles import interior_diameters, particle_table

        true_d = np.concatenate([
            interior_diameters(particle_table(c[5], c[0].pixel_size_nm)).to_numpy() for c in collected
        ])  # fmt: skip
    write_histogram(np.concatenate(d), true_d, pooled, out / "sizes.png")
    notes = "".join(
        f"<li class='{'warn' if n.startswith('warning') else ''}'>{html.escape(n)}</li>"
        for n in result.notes
    )
    nets = "".join(f"<li>{html.escape(m.describe())}</li>" for m in models)
    (out / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>temseg segment</title><style>{CSS}</style>"
        f"<h1>Particle sizes</h1>{_headline(pooled, len(models))}"
        f"{_rows(result.summary, truth)}"
        f"<div class='row'><img src='sizes.png' width='460'><div><ul>{notes}</ul>"
        f"<h2>Networks ({len(models)})</h2><ul><small>{nets}</small></ul></div></div>"
        "<p><small>Brackets: 95 % bootstrap intervals (D50 and D90 also with the boundary "
        "error, when the headline says so). D10/D50/D90: number-weighted "
        "equivalent-circle diameters of particles not touching the border; Dv50 and D[4,3]: "
        "volume-weighted. Files: <a href='summary.csv'>summary.csv</a>, "
        "<a href='sizes.csv'>sizes.csv</a> (every statistic, number and volume weighted, "
        "equivalent and Feret diameter), <a href='particles.csv'>particles.csv</a>, masks "
        "<code>&lt;name&gt;_mask.tif</code>.</small></p>"
        f"<h2>Overlays</h2><p><small>Red: segmented outline; cyan: truth.</small></p>{''.join(figs)}"
    )
