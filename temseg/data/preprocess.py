"""The paper's image preprocessing (SPEC.md section 4, read off the authors' code).

Raw counts in, a standardized float32 image out; the same function runs on real files at
ingest and on the synthetic generator's raw counts, so both paths see identical processing:

1. negative values set to 0 (bias-subtracted cameras give a few);
2. x-ray outliers removed: pixels above ``median + T`` raw counts (T = 1500 for
   high-resolution images, 400 for low-resolution ones) are replaced by the mean of their
   8 neighbours, brightest first, in two passes (a second pass catches clusters whose
   neighbours were themselves outliers);
3. per-image standardization to mean 0 and standard deviation 1.

The regime follows from the pixel size: Au {111} fringes (d = 0.2355 nm) are resolvable
when they lie below 0.9 of the Nyquist frequency, i.e. at pixel sizes up to
0.9 * 0.2355 / 2 = 0.106 nm; such images are "hr", coarser ones "lr".
"""

from __future__ import annotations

import numpy as np

XRAY_THRESHOLDS = {"hr": 1500.0, "lr": 400.0}
XRAY_PASSES = 2
AU_D111_NM = 0.2355
NYQUIST_FRACTION = 0.9
HR_MAX_PIXEL_NM = NYQUIST_FRACTION * AU_D111_NM / 2  # 0.106 nm


def regime_for_pixel_size(pixel_size_nm: float) -> str:
    """``"hr"`` when Au {111} lattice fringes are resolvable at this pixel size, else ``"lr"``.

    >>> regime_for_pixel_size(0.02), regime_for_pixel_size(0.1243)
    ('hr', 'lr')
    """
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    return "hr" if pixel_size_nm <= HR_MAX_PIXEL_NM else "lr"


def xray_threshold_for(pixel_size_nm: float) -> float:
    """The authors' x-ray threshold T (raw counts above the median) for this pixel size."""
    return XRAY_THRESHOLDS[regime_for_pixel_size(pixel_size_nm)]


def preprocessing_record(regime: str, threshold: float, *, from_flag: bool = False) -> dict:
    """What :func:`preprocess` did to a store's images, as its ``preprocessing`` attribute.

    >>> preprocessing_record("hr", 1500.0)["xray_threshold_source"]
    'hr default'
    """
    return {
        "negatives": "set to 0",
        "xray_regime": regime,
        "xray_threshold": threshold,
        "xray_threshold_source": "flag" if from_flag else f"{regime} default",
        "xray_passes": XRAY_PASSES,
        "standardization": "per image: mean 0, std 1",
    }


def remove_xrays(
    image: np.ndarray, *, threshold: float, passes: int = XRAY_PASSES
) -> tuple[np.ndarray, int]:
    """Replace x-ray outliers by the mean of their 8 neighbours; returns (image, n replaced).

    Parameters
    ----------
    image
        2-D raw counts (not modified).
    threshold
        T: a pixel is an outlier when it exceeds ``median(image) + T``.
    passes
        Detection passes; each re-computes the median and the outlier set.

    Notes
    -----
    Within a pass outliers are replaced one at a time from the brightest down, each by the
    mean of its current 8 neighbours (fewer at the border), so a replaced pixel feeds the
    next one's mean as in the authors' loop.

    Examples
    --------
    >>> img = np.full((5, 5), 10.0); img[2, 2] = 5000.0
    >>> out, n = remove_xrays(img, threshold=1500)
    >>> float(out[2, 2]), n
    (10.0, 1)
    """
    out = np.array(image, dtype=np.float32, copy=True)
    h, w = out.shape
    total = 0
    for _ in range(passes):
        limit = float(np.median(out)) + float(threshold)
        ys, xs = np.nonzero(out > limit)
        if ys.size == 0:
            break
        order = np.argsort(-out[ys, xs], kind="stable")
        for y, x in zip(ys[order].tolist(), xs[order].tolist(), strict=True):
            y0, y1, x0, x1 = max(y - 1, 0), min(y + 2, h), max(x - 1, 0), min(x + 2, w)
            win = out[y0:y1, x0:x1]
            n = win.size - 1
            out[y, x] = (float(win.sum(dtype=np.float64)) - float(out[y, x])) / n if n else 0.0
        total += int(ys.size)
    return out, total


def standardize(image: np.ndarray) -> np.ndarray:
    """Mean 0, standard deviation 1 (a constant image becomes all zeros)."""
    img = np.asarray(image, dtype=np.float64)
    std = img.std()
    centred = img - img.mean()
    return (centred / std if std > 0 else centred).astype(np.float32)


def preprocess(
    image: np.ndarray,
    *,
    pixel_size_nm: float | None = None,
    xray_threshold: float | None = None,
) -> tuple[np.ndarray, dict]:
    """The paper's preprocessing of one raw image; returns (standardized float32, record).

    Parameters
    ----------
    image
        2-D raw counts.
    pixel_size_nm
        Chooses the x-ray threshold by regime (:func:`xray_threshold_for`) when
        ``xray_threshold`` is not given.
    xray_threshold
        T in raw counts above the median; overrides the regime default.

    Returns
    -------
    image
        float32, negatives clipped, x-rays removed, mean 0 / std 1.
    record
        ``{"xray_threshold": T, "xray_replaced": n}``: what was applied to this image.

    Raises
    ------
    ValueError
        The image is not 2-D, holds NaN/inf, or neither threshold nor pixel size is given.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError(f"image holds {int((~np.isfinite(img)).sum())} NaN or infinite pixels")
    if xray_threshold is None:
        if pixel_size_nm is None:
            raise ValueError("give xray_threshold or pixel_size_nm (to choose it by regime)")
        xray_threshold = xray_threshold_for(pixel_size_nm)
    if not xray_threshold > 0:
        raise ValueError(f"xray_threshold must be > 0 raw counts, got {xray_threshold}")
    img = np.maximum(img.astype(np.float32, copy=False), 0.0)
    img, n = remove_xrays(img, threshold=xray_threshold)
    return standardize(img), {"xray_threshold": float(xray_threshold), "xray_replaced": n}
