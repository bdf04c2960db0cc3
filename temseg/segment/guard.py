"""The domain guard: is an image like the data the network was trained on?

A network is trusted where its training data were: the contrast score
(:func:`temseg.data.contrast.measure_contrast`, the robust standardized particle/background
difference of the store's patches) and the pixel size. Each registered model carries both
(tags ``temseg.contrast`` and ``temseg.pixel_size_nm`` of its version, and the model card).
For an image, the contrast score is measured the same way on the standardized image the
network sees, with the network's own mask standing in for the unknown truth.

``in_domain`` holds when the image's contrast lies within a factor :data:`CONTRAST_FACTOR`
of the range of the models' training contrasts, i.e. ``min_c / 2 <= c <= 2 max_c``, and its
pixel size (after ``--resample``, the model's) within :data:`PIXEL_FACTOR` of the models'.
A factor of 2 is about the step between the demo's two contrast levels (0.44 and 1.0):
within it, the nearer level's network is the one to trust. Unknown training contrast
(authors' checkpoints, an unregistered checkpoint without its store) gives
``in_domain`` = NaN, not a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONTRAST_FACTOR = 2.0
PIXEL_FACTOR = 1.10


def image_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Contrast score of a standardized image split by a mask (NaN when a class is empty)."""
    from temseg.data.contrast import measure_contrast

    c = measure_contrast(image, mask)["contrast"]
    return math.nan if c is None else float(c)


def in_domain(
    contrast: float,
    pixel_size_nm: float,
    trained_contrasts: Sequence[float | None],
    trained_pixel_size_nm: float,
) -> float:
    """1.0 inside the trained range, 0.0 outside, NaN when the training contrast is unknown.

    >>> in_domain(0.5, 0.04, [0.44], 0.04), in_domain(1.4, 0.04, [0.44], 0.04)
    (1.0, 0.0)
    >>> in_domain(0.5, 0.05, [0.44], 0.04)  # 25 % off the pixel size
    0.0
    """
    known = [float(c) for c in trained_contrasts if c is not None and np.isfinite(c)]
    ratio = pixel_size_nm / trained_pixel_size_nm
    if not PIXEL_FACTOR**-1 <= ratio <= PIXEL_FACTOR:
        return 0.0
    if not known or not np.isfinite(contrast):
        return math.nan
    lo, hi = min(known) / CONTRAST_FACTOR, max(known) * CONTRAST_FACTOR
    return float(lo <= contrast <= hi)


def contrast_distance(contrast: float, trained: float | None) -> float:
    """``|ln(contrast / trained)|``: how far, in factors, an image is from a training store
    (inf when either is unknown or not positive).

    >>> round(contrast_distance(0.88, 0.44), 4)
    0.6931
    """
    if trained is None or not (np.isfinite(contrast) and contrast > 0 and trained > 0):
        return math.inf
    return abs(math.log(contrast / trained))


def warning(name: str, contrast: float, pixel_size_nm: float, models) -> str:
    """The one warning line of an image outside the trained range."""
    trained = ", ".join(
        f"{m.source}: contrast {m.contrast:.3g} at {m.pixel_size_nm:g} nm/px"
        if m.contrast is not None
        else f"{m.source}: contrast unknown at {m.pixel_size_nm:g} nm/px"
        for m in models[:2]
    )
    more = f" (+{len(models) - 2} more)" if len(models) > 2 else ""
    return (
        f"warning: {name}: contrast score {contrast:.3g} at {pixel_size_nm:g} nm/px is outside "
        f"the trained range (within x{CONTRAST_FACTOR:g} of {trained}{more}); its sizes are "
        "not to be trusted (in_domain = false)"
    )
