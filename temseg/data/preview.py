"""Look at the data: an image beside its mask (and the mask outline on the image) as a PNG.

``temseg preview OUT.png`` renders one synthetic image through the same preprocessing as a
store; ``--store`` shows a stored patch instead. The PNG is the quickest check that the
generator's particles, fringes and carbon look like TEM and that the labels sit on them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SEPARATOR_PX = 8


def to_uint8(image: np.ndarray, *, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Grey values stretched between two percentiles, as uint8."""
    lo, hi = np.percentile(image, [low, high])
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def panel(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, 3W + 2 gaps, 3): image | mask | image with the mask outline in red."""
    from scipy import ndimage

    grey = to_uint8(image)
    m = mask.astype(bool)
    edge = m & ~ndimage.binary_erosion(m, iterations=2)
    over = np.repeat(grey[..., None], 3, axis=2)
    over[edge] = (255, 40, 40)
    gap = np.full((image.shape[0], SEPARATOR_PX, 3), 255, np.uint8)
    left = np.repeat(grey[..., None], 3, axis=2)
    mid = np.repeat((m * 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.concatenate([left, gap, mid, gap, over], axis=1)


def write_preview(out: str | os.PathLike, image: np.ndarray, mask: np.ndarray) -> Path:
    """Save :func:`panel` of ``image`` and ``mask`` as a PNG; returns the absolute path."""
    import skimage.io

    out = Path(out).absolute()
    if out.suffix.lower() != ".png":
        raise ValueError(f"{out}: the preview is a PNG; give a path ending in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(out, panel(image, mask), check_contrast=False)
    return out


def synthetic_preview(
    out: str | os.PathLike,
    *,
    preset: str = "hr-2.2nm",
    contrast: float = 0.06,
    seed: int = 0,
    image_size: int = 512,
    **overrides,
) -> Path:
    """Render one synthetic image, preprocess it like a store does, and write the PNG.

    ``overrides`` are any :func:`temseg.data.synth.generator_params` keywords (the knobs of
    ``temseg preview``: ``defocus_nm``, ``astigmatism_nm``, ``coverage``, ``pixel_size_nm``,
    ``fringe_free_fraction``, ``dose``; or any other GeneratorParams field).
    """
    from temseg.data.preprocess import XRAY_THRESHOLDS, preprocess
    from temseg.data.synth import generator_params, get_preset, render_image

    params = generator_params(preset, contrast=contrast, image_size=image_size, **overrides)
    rendered = render_image(params, np.random.default_rng([seed, 0]))
    std, _ = preprocess(rendered.counts, xray_threshold=XRAY_THRESHOLDS[get_preset(preset).regime])
    return write_preview(out, std, rendered.mask)


def store_preview(out: str | os.PathLike, store: str | os.PathLike, split: str, index: int) -> Path:
    """Write the PNG of patch ``index`` of ``split`` in a patch store."""
    from temseg.data.store import check_split_name, open_store

    check_split_name(split)
    grp = open_store(store)[split]
    n = grp["images"].shape[0]
    if not 0 <= index < n:
        raise ValueError(f"{store}: split {split!r} has {n} patches; index {index} is out of range")
    return write_preview(out, grp["images"][index], grp["masks"][index])
