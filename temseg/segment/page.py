"""The report page of a segmentation run: overlays, the size histogram and index.html."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from temseg.segment.models import SegmentModel

OVERLAY_MAX_SIDE = 1024


def write_overlay(
    image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None, path: Path
) -> None:
    """PNG of the image (at most 1024 px a side) with the mask's outline in red (the truth's
    in cyan)."""
    from skimage.io import imsave
    from skimage.measure import block_reduce
    from skimage.segmentation import find_boundaries

    k = max(1, math.ceil(max(image.shape) / OVERLAY_MAX_SIDE))
    small = block_reduce(image.astype(np.float32), (k, k), np.mean)
    lo, hi = np.percentile(small, [1, 99])
    grey = np.clip((small - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    layers = [(truth, (0, 220, 255))] if truth is not None else []
    for m, colour in [*layers, (mask, (255, 40, 40))]:
        edge = block_reduce(find_boundaries(m > 0, mode="inner"), (k, k), np.max)
        rgb[edge[: rgb.shape[0], : rgb.shape[1]]] = colour
    imsave(path, rgb, check_contrast=False)


def write_histogram(particles, truth_particles, path: Path) -> None:
    """Histogram of the equivalent-circle diameters of interior particles (and the truth's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temseg.particles import interior_diameters

    inner = interior_diameters(particles)
    truth = None if truth_particles is None else interior_diameters(truth_particles)
    both = np.concatenate([inner.to_numpy(), [] if truth is None else truth.to_numpy()])
    bins = np.histogram_bin_edges(both, bins=30) if both.size else 10
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(inner, bins=bins, color="tab:red", alpha=0.7, label=f"segmented (n={len(inner)})")
    if truth is not None:
        ax.hist(
            truth, bins=bins, histtype="step", color="k", lw=1.5, label=f"truth (n={len(truth)})"
        )
    ax.set_xlabel("equivalent-circle diameter (nm), particles not touching the border")
    ax.set_ylabel("particles")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_index(out: Path, summary, model: SegmentModel, overlays: list[str], notes: list[str]):
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in summary.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
        for r in summary.itertuples(index=False)
    )
    figs = "".join(
        f'<figure><img src="{html.escape(f)}" width="512"><figcaption>{html.escape(f)}'
        "</figcaption></figure>"
        for f in overlays
    )
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>temseg segment</title>"
        "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right}"
        "figure{display:inline-block;margin:4px}</style>"
        f"<h1>Segmented micrographs</h1><p>Model: {html.escape(model.describe())}</p>"
        f"<ul>{note}</ul><h2>Summary</h2><table><tr>{head}</tr>{rows}</table>"
        "<p>Files: <a href='particles.csv'>particles.csv</a>, "
        "<a href='summary.csv'>summary.csv</a>, masks <code>&lt;name&gt;_mask.tif</code>.</p>"
        '<h2>Size distribution</h2><img src="sizes.png">'
        f"<h2>Overlays</h2><p>Red: segmented outline; cyan: truth.</p>{figs}"
    )
