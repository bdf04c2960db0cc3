"""The images to segment, checked before anything runs, and resampling to a model's pixel size."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIXED_RTOL = 0.01  # images pooled into one size distribution share a pixel size within 1 %
PIXEL_SIZE_RTOL = 0.10  # refuse images whose pixel size differs more from the model's


@dataclass
class ImageJob:
    """One input file, validated: frames are read again when it is segmented."""

    path: Path
    name: str
    frames: int
    shape: tuple[int, int]
    pixel_size_nm: float
    truth: Path | None = None


def _refuse_empty(path: Path, data: np.ndarray) -> None:
    """An image without pixels, or one value everywhere, has nothing to segment."""
    if data.size == 0:
        raise ValueError(f"{path}: empty image (no pixels, shape {data.shape}): nothing to segment")
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if not lo < hi:
        raise ValueError(f"{path}: empty image (every pixel is {lo:g}): nothing to segment")


def check_images(
    images: Sequence[str | os.PathLike],
    truth: Sequence[str | os.PathLike] | None,
    *,
    pixel_size_nm: float | None,
    model_pixel_size_nm: float,
    resample: bool,
) -> list[ImageJob]:
    """Read every image (and truth) once and refuse any problem before inference starts."""
    from temseg.data.readers import ReadError, anisotropic_message, read_mask, read_raw

    if not images:
        raise ValueError("no image given")
    if truth and len(truth) != len(images):
        raise ValueError(
            f"give one --truth mask per image ({len(images)} images, {len(truth)} masks)"
        )
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise ValueError(f"--pixel-size-nm must be > 0, got {pixel_size_nm}")
    jobs, names = [], {}
    for i, image in enumerate(images):
        path = Path(image)
        raw = read_raw(path)
        if raw.pixel_size_yx_nm is not None and not raw.isotropic and pixel_size_nm is None:
            raise ReadError(anisotropic_message(raw).replace("--resample", "--pixel-size-nm"))
        px = pixel_size_nm
        if px is None and raw.pixel_size_yx_nm is not None:
            px = float(np.mean(raw.pixel_size_yx_nm))
        if px is None:
            raise ReadError(
                f"{path}: the file carries no pixel size; give --pixel-size-nm (the model was "
                f"trained at {model_pixel_size_nm:g} nm/px)"
            )
        _refuse_empty(path, raw.data)
        first = jobs[0] if jobs else None
        if first and not resample and abs(px - first.pixel_size_nm) > MIXED_RTOL * px:
            raise ValueError(
                f"{path}: pixel size {px:g} nm differs from {first.path.name}'s "
                f"{first.pixel_size_nm:g} nm: sizes pooled over images would mix scales; pass "
                "--resample to put every image on the model's pixel size, or segment them apart"
            )
        off = abs(px - model_pixel_size_nm) / model_pixel_size_nm
        if off > PIXEL_SIZE_RTOL and not resample:
            raise ValueError(
                f"{path}: pixel size {px:g} nm differs from the model's {model_pixel_size_nm:g} "
                f"nm by {100 * off:.0f}% (more than {100 * PIXEL_SIZE_RTOL:.0f}%): the network "
                "would see particles and lattice fringes at the wrong scale; pass --resample to "
                "resample the image onto the model's pixel size (scikit-image), or correct "
                "--pixel-size-nm"
            )
        name = path.stem
        if name in names:
            raise ValueError(f"{path}: same name {name!r} as {names[name]}; outputs would collide")
        names[name] = path
        job = ImageJob(path, name, raw.data.shape[0], raw.data.shape[1:], px)
        if truth:
            t = Path(truth[i])
            m = read_mask(t)
            if m.shape != raw.data.shape:
                raise ValueError(
                    f"{t}: truth mask of shape {m.shape} does not fit {path} "
                    f"(frames, height, width {raw.data.shape})"
                )
            job.truth = t
        jobs.append(job)
    return jobs


def resample_to(image: np.ndarray, factor: float, *, order: int) -> np.ndarray:
    from skimage.transform import rescale

    return rescale(
        image, factor, order=order, anti_aliasing=order > 0 and factor < 1, preserve_range=True
    ).astype(image.dtype, copy=False)


def back_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    out = resize(mask, shape, order=0, preserve_range=True, anti_aliasing=False)
    return out.astype(np.uint8)
