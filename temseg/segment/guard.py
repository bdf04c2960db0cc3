"""The domain guard: is an image like the data the network was trained on?

A network is trusted where its training data were: the contrast score
(:func:`temseg.data.contrast.measure_contrast`, the robust standardized particle/background
difference of the store's patches) and the pixel size. Each registered model carries both
(tags ``temseg.contrast`` and ``temseg.pixel_size_nm`` of its version, and the model card).
For an image, the contrast score is measured the same way on the standardized image the
network sees, twice, since the true mask is unknown: with the networks' own mask, and with a
mask no network made, Otsu's threshold of the image smoothed by a Gaussian of
:data:`OTSU_SIGMA_PX` px (``contrast_otsu``). A network far from its training data gets its
mask wrong, and its estimate with it (measured: the demo's network trained at score 0.44 puts
an image of true score 1.24 at 0.86; Otsu's mask at 1.41, and 0.70 for an image of true
score 0.59), so the guard needs both estimates inside the range.

``in_domain`` holds when both contrast estimates lie within a factor :data:`CONTRAST_FACTOR`
of the range of the models' training contrasts, i.e. ``min_c / 2 <= c <= 2 max_c``, and the
pixel size (after ``--resample``, the model's) within :data:`PIXEL_FACTOR` of the models'.
A factor of 2 is about the step between the demo's two contrast levels (0.44 and 1.0), and
the spread of single images within one store (0.25-0.60 per image in the demo's C = 0.09
store). Unknown training contrast (authors' checkpoints, an unregistered checkpoint without
its store) gives ``in_domain`` = NaN, not a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONTRAST_FACTOR = 2.0
PIXEL_FACTOR = 1.10
OTSU_SIGMA_PX = 3.0


def image_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Contrast score of a standardized image split by a mask (NaN when a class is empty)."""
    from temseg.data.contrast import measure_contrast

    c = measure_contrast(image, mask)["contrast"]
    return math.nan if c is None else float(c)


def otsu_contrast(image: np.ndarray) -> float:
    """Contrast score of a standardized image split by Otsu's threshold of its Gaussian-
    smoothed copy (particles dark): an estimate no network's mask enters."""
    from skimage.filters import gaussian, threshold_otsu

    smooth = gaussian(np.asarray(image, np.float32), OTSU_SIGMA_PX)
    return image_contrast(image, smooth < threshold_otsu(smooth))


def in_domain(
    contrast: float | Sequence[float],
    pixel_size_nm: float,
    trained_contrasts: Sequence[float | None],
    trained_pixel_size_nm: float,
) -> float:
    """1.0 inside the trained range, 0.0 outside, NaN when the training contrast is unknown.
    ``contrast``: one estimate, or several that must all lie inside.

    >>> in_domain(0.5, 0.04, [0.44], 0.04), in_domain(1.4, 0.04, [0.44], 0.04)
    (1.0, 0.0)
    >>> in_domain([0.86, 1.41], 0.04, [0.44], 0.04)  # the networks' mask says in, Otsu's out
    0.0
    >>> in_domain(0.5, 0.05, [0.44], 0.04)  # 25 % off the pixel size
    0.0
    """
    known = [float(c) for c in trained_contrasts if c is not None and np.isfinite(c)]
    ratio = pixel_size_nm / trained_pixel_size_nm
    if not PIXEL_FACTOR**-1 <= ratio <= PIXEL_FACTOR:
        return 0.0
    estimates = np.atleast_1d(np.asarray(contrast, float))
    if not known or not np.isfinite(estimates).all():
        return math.nan
    lo, hi = min(known) / CONTRAST_FACTOR, max(known) * CONTRAST_FACTOR
    return float(((lo <= estimates) & (estimates <= hi)).all())


def contrast_distance(contrast: float, trained: float | None) -> float:
    """``|ln(contrast / trained)|``: how far, in factors, an image is from a training store
    (inf when either is unknown or not positive).

    >>> round(contrast_distance(0.88, 0.44), 4)
    0.6931
    """
    if trained is None or not (np.isfinite(contrast) and contrast > 0 and trained > 0):
        return math.inf
    return abs(math.log(contrast / trained))


def warning(name: str, contrast: Sequence[float], pixel_size_nm: float, models) -> str:
    """The one warning line of an image outside the trained range."""
    trained = ", ".join(
        f"{m.source}: contrast {m.contrast:.3g} at {m.pixel_size_nm:g} nm/px"
        if m.contrast is not None
        else f"{m.source}: contrast unknown at {m.pixel_size_nm:g} nm/px"
        for m in models[:2]
    )
    more = f" (+{len(models) - 2} more)" if len(models) > 2 else ""
    return (
        f"warning: {name}: contrast score {contrast[0]:.3g} (Otsu's mask: {contrast[1]:.3g}) "
        f"at {pixel_size_nm:g} nm/px is outside "
        f"the trained range (within x{CONTRAST_FACTOR:g} of {trained}{more}); its sizes are "
        "not to be trusted (in_domain = false)"
    )
