"""Particle statistics of a binary mask: one row per particle, per-image summaries, and the
comparison with a true mask. Pure numpy / scikit-image / pandas (no torch).

A particle is an 8-connected component of the mask (``skimage.measure.label`` with
connectivity 2). Its size is reported in nm from the image's pixel size:

* ``area_nm2 = area_px * pixel_size_nm**2``;
* ``diameter_nm = 2 * sqrt(area_nm2 / pi)``, the equivalent-circle diameter, as particle
  sizing from TEM usually reports it;
* ``feret_max_nm``: the largest caliper width (``regionprops.feret_diameter_max``) in nm;
* ``circularity = 4 pi area_px / perimeter_px**2`` with scikit-image's perimeter estimate:
  about 0.9 for a large digital disc, above 1 possible for a few-pixel blob, NaN for one pixel;
* ``touches_border``: the component reaches the image's first or last row or column, so it
  may be cut by the edge; summaries leave those out of the size statistics.

Touching particles form one 8-connected component; :func:`split_touching` separates them by a
watershed of the distance transform (each particle a basin around its own distance maximum).
:func:`member_sizes` measures each particle of an ensemble's mask in every member network's mask.

Dice is the pooled hard dice of temseg (SPEC.md section 5): ``2 |X and Y| / (|X| + |Y|)``
over all pixels of one image (1 when both masks are empty).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PARTICLE_COLUMNS = [
    "image",
    "frame",
    "label",
    "area_px",
    "area_nm2",
    "diameter_nm",
    "feret_max_nm",
    "circularity",
    "centroid_x_nm",
    "centroid_y_nm",
    "touches_border",
]
SUMMARY_COLUMNS = [
    "count",
    "count_interior",
    "diameter_mean_nm",
    "diameter_median_nm",
    "diameter_sd_nm",
]
TRUTH_COLUMNS = [
    "dice",
    "true_count_interior",
    "count_error",
    "matched",
    "diameter_error_mean",
    "diameter_abs_error_mean",
    "median_diameter_error",
]
MATCH_IOU = 0.5


def label_particles(mask: np.ndarray) -> np.ndarray:
    """8-connected components of a 2-D mask as an int32 label image (0 = background)."""
    from skimage.measure import label

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    return label(mask > 0, connectivity=2).astype(np.int32, copy=False)


SPLIT_H = 0.15  # a distance maximum must rise this share of the median radius above its saddle
CATCHMENT = 0.25  # a particle's catchment: its pixels and those within this share of the median d


def split_touching(mask: np.ndarray, *, h: float = SPLIT_H) -> np.ndarray:
    """Label image of ``mask`` with touching particles split (distance-transform watershed).

    Each pixel's Euclidean distance to the background is computed (``scipy.ndimage``);
    its regional maxima that rise at least ``h`` times the median equivalent radius of the
    mask's components (at least 1 px) above their surroundings (``skimage.morphology.
    h_maxima``) seed a watershed of the negated distance inside the mask. Two discs that
    touch meet at a neck whose distance is far below their centres', so they become two
    labels; a single convex particle has one maximum and stays whole.

    >>> yy, xx = np.mgrid[:40, :60]
    >>> pair = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 < 100)
    >>> int(label_particles(pair).max()), int(split_touching(pair).max())
    (1, 2)
    """
    from scipy import ndimage
    from skimage.measure import label
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = np.asarray(mask) > 0
    components = label_particles(mask)
    if components.max() == 0:
        return components
    areas = np.bincount(components.ravel())[1:]
    radius = math.sqrt(float(np.median(areas)) / math.pi)
    dist = ndimage.distance_transform_edt(mask)
    markers = label(h_maxima(dist, max(1.0, h * radius)) & mask)
    out = watershed(-dist, markers, mask=mask, connectivity=2)
    # a component without a marker (too small for a maximum) keeps its own label
    lost = mask & (out == 0)
    if lost.any():
        out[lost] = label(lost, connectivity=2)[lost] + out.max()
    return out.astype(np.int32, copy=False)


def member_sizes(
    labels: np.ndarray, members: list[np.ndarray], pixel_size_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Equivalent-circle and max Feret diameter (nm) of each labelled particle in each mask
    of ``members``: arrays (n_labels, K), row i for label i + 1.

    A particle's catchment is its label grown by :data:`CATCHMENT` x the median diameter
    (``skimage.segmentation.expand_labels``, never into another particle); its size in a
    member is that of the member's mask inside the catchment. Where a member has no pixel
    there, NaN (the caller decides: the ensemble's own size, no spread).
    """
    from skimage.measure import regionprops
    from skimage.segmentation import expand_labels

    n = int(labels.max(initial=0))
    d = np.full((n, len(members)), np.nan)
    f = np.full((n, len(members)), np.nan)
    if n == 0:
        return d, f
    areas = np.bincount(labels.ravel())[1:]
    grow = CATCHMENT * 2 * math.sqrt(float(np.median(areas[areas > 0])) / math.pi)
    catchment = expand_labels(labels, distance=max(1.0, grow))
    for k, member in enumerate(members):
        for r in regionprops(np.where(np.asarray(member) > 0, catchment, 0)):
            d[r.label - 1, k] = 2 * math.sqrt(r.area / math.pi) * pixel_size_nm
            f[r.label - 1, k] = float(r.feret_diameter_max) * pixel_size_nm
    return d, f


def remove_specks(
    mask: np.ndarray, pixel_size_nm: float, min_diameter_nm: float
) -> tuple[np.ndarray, int]:
    """Drop 8-connected components whose equivalent-circle diameter is below ``min_diameter_nm``.

    A component of A px has diameter 2 sqrt(A p^2 / pi) nm (as in :func:`particle_table`), so
    it is kept when A p^2 >= pi (d_min / 2)^2. Returns the uint8 0/1 mask and the number of
    components removed; ``min_diameter_nm`` <= 0 keeps everything.

    >>> m = np.zeros((6, 6), np.uint8); m[0, 0] = 1; m[2:5, 2:5] = 1
    >>> kept, n = remove_specks(m, 0.1, 0.2)  # 1 px: 0.113 nm; 9 px: 0.339 nm
    >>> int(kept.sum()), n
    (9, 1)
    """
    out = (np.asarray(mask) > 0).astype(np.uint8)
    if min_diameter_nm <= 0:
        return out, 0
    labels = label_particles(out)
    areas_nm2 = np.bincount(labels.ravel()) * pixel_size_nm**2
    small = areas_nm2 < math.pi * (min_diameter_nm / 2) ** 2
    small[0] = False  # background
    out[small[labels]] = 0
    return out, int(small.sum())


def particle_table(
    mask: np.ndarray,
    pixel_size_nm: float,
    *,
    image: str = "",
    frame: int = 0,
    labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per 8-connected particle of ``mask`` (columns :data:`PARTICLE_COLUMNS`).

    Parameters
    ----------
    mask
        2-D binary mask (particle > 0).
    pixel_size_nm
        Side of one pixel in nm.
    image, frame
        Written into every row (the file name and the frame of a stack).
    labels
        The label image of ``mask`` if already computed (:func:`label_particles`).

    Notes
    -----
    area_nm2 = area_px * pixel_size_nm**2 and diameter_nm = 2 sqrt(area_nm2 / pi), computed
    from the pixel count exactly (not from scikit-image's own equivalent diameter).

    Examples
    --------
    >>> m = np.zeros((6, 6), np.uint8); m[1:3, 1:3] = 1; m[5, 5] = 1
    >>> t = particle_table(m, 0.5)
    >>> t["area_px"].tolist(), t["area_nm2"].tolist(), t["touches_border"].tolist()
    ([4, 1], [1.0, 0.25], [False, True])
    """
    from skimage.measure import regionprops

    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    mask = np.asarray(mask)
    lab = label_particles(mask) if labels is None else labels
    h, w = mask.shape
    rows = []
    for r in regionprops(lab):
        area_px = int(r.area)
        area_nm2 = area_px * pixel_size_nm**2
        perimeter = float(r.perimeter)
        y0, x0, y1, x1 = r.bbox
        cy, cx = r.centroid
        rows.append(
            {
                "image": image,
                "frame": int(frame),
                "label": int(r.label),
                "area_px": area_px,
                "area_nm2": area_nm2,
                "diameter_nm": 2.0 * math.sqrt(area_nm2 / math.pi),
                "feret_max_nm": float(r.feret_diameter_max) * pixel_size_nm,
                "circularity": 4 * math.pi * area_px / perimeter**2 if perimeter > 0 else math.nan,
                "centroid_x_nm": float(cx) * pixel_size_nm,
                "centroid_y_nm": float(cy) * pixel_size_nm,
                "touches_border": bool(y0 == 0 or x0 == 0 or y1 == h or x1 == w),
            }
        )
    return pd.DataFrame(rows, columns=PARTICLE_COLUMNS)


def interior_diameters(table: pd.DataFrame) -> pd.Series:
    """``diameter_nm`` of the particles that do not touch the image border."""
    return table.loc[~table["touches_border"].astype(bool), "diameter_nm"].astype(float)


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Count, and mean / median / sd of diameter_nm over particles not touching the border.

    ``sd`` is the sample standard deviation (ddof 1; NaN for fewer than 2 particles).
    """
    inner = interior_diameters(table)
    return {
        "count": int(len(table)),
        "count_interior": int(len(inner)),
        "diameter_mean_nm": float(inner.mean()) if len(inner) else math.nan,
        "diameter_median_nm": float(inner.median()) if len(inner) else math.nan,
        "diameter_sd_nm": float(inner.std(ddof=1)) if len(inner) > 1 else math.nan,
    }


def dice(mask: np.ndarray, truth: np.ndarray) -> float:
    """Pooled hard dice 2|X and Y| / (|X| + |Y|) of two binary masks (1.0 if both empty).

    >>> dice(np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0]))
    0.6666666666666666
    """
    x, y = np.asarray(mask) > 0, np.asarray(truth) > 0
    total = int(x.sum()) + int(y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total


def match_particles(
    labels: np.ndarray, true_labels: np.ndarray, *, min_iou: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """Pairs ``(label, true_label, iou)`` of particles overlapping with IoU > ``min_iou``.

    With ``min_iou >= 0.5`` the pairs are one to one (two regions cannot both cover more
    than half of a third's union with each).
    """
    a, b = np.asarray(labels), np.asarray(true_labels)
    if a.shape != b.shape:
        raise ValueError(f"label images differ in shape: {a.shape} vs {b.shape}")
    na, nb = int(a.max(initial=0)), int(b.max(initial=0))
    if na == 0 or nb == 0:
        return []
    area_a = np.bincount(a.ravel(), minlength=na + 1)
    area_b = np.bincount(b.ravel(), minlength=nb + 1)
    both = (a > 0) & (b > 0)
    pair = a[both].astype(np.int64) * (nb + 1) + b[both]
    keys, inter = np.unique(pair, return_counts=True)
    out = []
    for key, i in zip(keys.tolist(), inter.tolist(), strict=True):
        la, lb = divmod(key, nb + 1)
        iou = i / (area_a[la] + area_b[lb] - i)
        if iou > min_iou:
            out.append((la, lb, float(iou)))
    return out


def compare_with_truth(
    table: pd.DataFrame,
    labels: np.ndarray,
    true_table: pd.DataFrame,
    true_labels: np.ndarray,
) -> dict[str, float]:
    """Dice and size-distribution error of a predicted mask against the true one.

    Returns (columns :data:`TRUTH_COLUMNS`): ``dice``; ``true_count_interior`` and
    ``count_error`` (predicted minus true count of particles not touching the border);
    ``matched`` (true interior particles with a predicted particle at IoU > 0.5);
    ``diameter_error_mean`` and ``diameter_abs_error_mean`` (mean of (d - d_true) / d_true
    and of its absolute value over the matched pairs); ``median_diameter_error`` ((median d -
    median d_true) / median d_true over the interior particles of each mask).
    """
    pairs = match_particles(labels, true_labels)
    pred_d = dict(zip(table["label"], table["diameter_nm"], strict=True))
    true_inner = true_table[~true_table["touches_border"].astype(bool)]
    true_d = dict(zip(true_inner["label"], true_inner["diameter_nm"], strict=True))
    errors = np.array([(pred_d[a] - true_d[b]) / true_d[b] for a, b, _ in pairs if b in true_d])
    mine, theirs = summarize(table), summarize(true_table)
    return {
        "dice": dice(labels > 0, true_labels > 0),
        "true_count_interior": theirs["count_interior"],
        "count_error": mine["count_interior"] - theirs["count_interior"],
        "matched": int(errors.size),
        "diameter_error_mean": float(errors.mean()) if errors.size else math.nan,
        "diameter_abs_error_mean": float(np.abs(errors).mean()) if errors.size else math.nan,
        "median_diameter_error": (mine["diameter_median_nm"] - theirs["diameter_median_nm"])
        / theirs["diameter_median_nm"],
    }
