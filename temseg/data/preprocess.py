"""The paper's image preprocessing (SPEC.md section 4, read off the authors' code).

Raw counts in, a standardized float32 image out; the same function runs on real files at
ingest and on the synthetic generator's raw counts, so both paths see identical processing:

1. negative values set to 0 (bias-subtracted cameras give a few);
2. x-ray outliers removed: pixels above ``median + T`` raw counts (T = 1500 for
   high-resolution images, 400 for low-resolution ones) are replaced by the mean of their
   8 neighbours, brightest first, in two passes (a second pass catches clusters whose
   neighbours were themselves outliers);
3. optionally (``flat_field=True``, off by default: the paper did not flat-field), uneven
   illumination divided out: a low-order 2-D polynomial fitted robustly to the background
   (:func:`fit_background`) and the image divided by it, as the same lab's later work
   (HRTEM-Generalization's dataset creation) corrected its camera images;
4. per-image standardization to mean 0 and standard deviation 1.

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
# Flat-field model: a polynomial of this total degree in (y, x), fitted to the medians of a
# grid of about FLAT_FIELD_GRID x FLAT_FIELD_GRID blocks; blocks further than FLAT_FIELD_CLIP
# robust sigmas from the fit (particles, holes, contamination) are left out, for up to
# FLAT_FIELD_ROUNDS rounds (until the blocks kept stop changing). Blocks are >= 8 px, so the
# fit averages over lattice fringes and shot noise.
FLAT_FIELD_ORDER = 2
FLAT_FIELD_GRID = 32
FLAT_FIELD_CLIP = 2.5
FLAT_FIELD_ROUNDS = 30


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


def preprocessing_record(
    regime: str, threshold: float, *, from_flag: bool = False, flat_field: bool = False
) -> dict:
    """What :func:`preprocess` did to a store's images, as its ``preprocessing`` attribute.

    >>> preprocessing_record("hr", 1500.0)["xray_threshold_source"]
    'hr default'
    >>> "flat_field" in preprocessing_record("hr", 1500.0)
    False

    The ``flat_field`` keys are written only when it was applied, so a store made without it
    is byte for byte (content hash included) what temseg wrote before the option existed.
    """
    record = {
        "negatives": "set to 0",
        "xray_regime": regime,
        "xray_threshold": threshold,
        "xray_threshold_source": "flag" if from_flag else f"{regime} default",
        "xray_passes": XRAY_PASSES,
        "standardization": "per image: mean 0, std 1",
    }
    if flat_field:
        record["flat_field"] = True
        record["flat_field_model"] = (
            f"divided by a degree-{FLAT_FIELD_ORDER} 2-D polynomial fitted to the medians of "
            f"~{FLAT_FIELD_GRID}x{FLAT_FIELD_GRID} blocks, excluding blocks beyond "
            f"{FLAT_FIELD_CLIP} robust sigmas (refitted until stable)"
        )
    return record


def flat_field_of(preprocessing: dict | None) -> bool:
    """Whether a ``preprocessing`` record (a store's, a model card's) says flat-field: stores
    written before the option existed carry no key and were not corrected."""
    return bool((preprocessing or {}).get("flat_field", False))


def store_flat_field(path: object) -> bool:
    """Whether the patch store at ``path`` was flat-fielded (what a network trained on it
    needs at inference); no path, or a store no longer there, counts as not."""
    from temseg.data.store import StoreError, read_attrs

    if not isinstance(path, str) or not path:
        return False
    try:
        return flat_field_of(read_attrs(path).get("preprocessing"))
    except (StoreError, OSError):
        return False


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


def _poly_terms(y: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    """The monomials y**i * x**j, i + j <= order, of coordinates in [-1, 1], as columns."""
    return np.stack(
        [y**i * x**j for i in range(order + 1) for j in range(order + 1 - i)], axis=-1
    )


def fit_background(
    image: np.ndarray,
    *,
    order: int = FLAT_FIELD_ORDER,
    grid: int = FLAT_FIELD_GRID,
) -> np.ndarray:
    """A smooth background fitted away from the particles: the float64 surface, image-shaped.

    The image is cut into about ``grid`` x ``grid`` blocks (the remainder rows and columns
    are left out of the fit); each block's median is one sample at its centre. A degree-
    ``order`` polynomial in (y, x) is fitted by least squares; samples whose residual is more
    than :data:`FLAT_FIELD_CLIP` robust sigmas (1.4826 MAD) from it, on either side, are
    dropped and the fit repeated until the blocks kept stop changing: particles are dark (or,
    off focus, bright) blobs that the background does not have. No label is used, even where
    one exists (ingest, synth): a network then sees the same correction at training and at
    inference, where there is none.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:128, 0:128] / 127.0
    >>> ramp = 100 + 40 * yy - 30 * xx * yy
    >>> float(np.abs(fit_background(ramp) - ramp).max()) < 0.01  # block medians, not centres
    True
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    b = max(8, min(h, w) // grid)
    gh, gw = h // b, w // b
    if gh < 2 or gw < 2:
        raise ValueError(f"image of {h}x{w} px is too small to fit a background (>= 16 px)")
    blocks = img[: gh * b, : gw * b].reshape(gh, b, gw, b).swapaxes(1, 2).reshape(gh, gw, -1)
    samples = np.median(blocks, axis=-1).ravel()
    centre = (np.arange(gh) + 0.5) * b - 0.5, (np.arange(gw) + 0.5) * b - 0.5
    cy, cx = np.meshgrid(*centre, indexing="ij")
    scale_y, scale_x = (h - 1) / 2 or 1.0, (w - 1) / 2 or 1.0
    terms = _poly_terms(cy.ravel() / scale_y - 1, cx.ravel() / scale_x - 1, order)
    # start from a flat background at the median block; each round refits on the blocks
    # within the clip of the last fit (every block competes again, so a biased round heals)
    coef = np.zeros(terms.shape[1])
    coef[0] = np.median(samples)
    keep = np.ones(samples.shape, bool)
    for k in range(FLAT_FIELD_ROUNDS):
        resid = samples - terms @ coef
        sigma = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
        new = np.abs(resid) <= FLAT_FIELD_CLIP * sigma if sigma > 0 else keep
        if new.sum() < terms.shape[1] or (k > 0 and (new == keep).all()):
            break
        keep = new
        coef = np.linalg.lstsq(terms[keep], samples[keep], rcond=None)[0]
    yy = np.arange(h) / scale_y - 1
    xx = np.arange(w) / scale_x - 1
    return _poly_terms(yy[:, None], xx[None, :], order) @ coef


def correct_flat_field(image: np.ndarray) -> np.ndarray:
    """Divide out uneven illumination: ``image / background * mean(background)``.

    The background is :func:`fit_background`'s; the product keeps the image's level, so an
    evenly lit image comes back unchanged to within the fit's noise. Raises ValueError when
    the fitted background is not positive everywhere (no illumination to divide by: an image
    of mostly zeros, or one whose level crosses zero).
    """
    img = np.asarray(image, dtype=np.float64)
    bg = fit_background(img)
    low = float(bg.min())
    if not low > 0:
        raise ValueError(
            f"flat field: the fitted background reaches {low:.4g} counts; it must stay > 0 "
            "to divide by (is the image raw counts?)"
        )
    return (img / bg * float(bg.mean())).astype(np.float32)


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
    flat_field: bool = False,
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
    flat_field
        Divide out uneven illumination (:func:`correct_flat_field`) after x-ray removal, before
        standardization. Off by default (the paper's protocol).

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
    if flat_field:
        img = correct_flat_field(img)
    return standardize(img), {"xray_threshold": float(xray_threshold), "xray_replaced": n}
