"""What a study starts from: the folder's image/mask pairs and the images to segment only.

Everything here reads and checks, and refuses a bad folder with one line naming the file
(ValueError / FileNotFoundError, exit 2 at the command line) before anything is written or
trained: no pairs, a mask without an image, an unreadable file, an image without a pixel
size, mixed pixel sizes (unless ``resample``), an image to segment far off the others' pixel
size (unless ``resample``). With ``resample`` every paired image and mask is resampled onto
the finest pixel size among them (:func:`resample_onto`), as calibrated TIFFs that ingest
then reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from temseg.data.ingest import PIXEL_SIZE_RTOL, pair_folder
from temseg.data.readers import (
    SUFFIXES,
    ReadError,
    RawImage,
    read_mask,
    read_raw,
    write_calibrated_tiff,
)

# An image to segment whose pixel size is further off than this needs --resample (as segment)
SEGMENT_PIXEL_RTOL = 0.10


@dataclass(frozen=True)
class Micrograph:
    """One image of the study: its file, its mask (None: segment only) and what was read."""

    path: Path
    mask: Path | None
    pixel_size_nm: float
    pixel_size_yx_nm: tuple[float, float]
    frames: int
    shape: tuple[int, int]

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class StudyInputs:
    folder: Path
    pairs: tuple[Micrograph, ...]
    extra: tuple[Micrograph, ...]  # --segment-folder: segmented, never trained on

    @property
    def pixel_size_nm(self) -> float:
        """The paired images' pixel size (the finest, when they are resampled onto it)."""
        return min(m.pixel_size_nm for m in self.pairs)

    def odd_one(self) -> Micrograph | None:
        """The first paired image whose pixels are not those of the first image (other size,
        or not square), None when all agree to within ingest's 1 %."""
        ref = self.pairs[0].pixel_size_nm
        for m in self.pairs:
            if any(abs(v - ref) > PIXEL_SIZE_RTOL * ref for v in m.pixel_size_yx_nm):
                return m
        return None


def _read(path: Path, pixel_size_nm: float | None) -> tuple[RawImage, tuple[float, float]]:
    """Read one image; any failure becomes one line naming the file."""
    try:
        raw = read_raw(path)
    except (ReadError, FileNotFoundError):
        raise
    except Exception as exc:  # a corrupt file: the reader's own exception, whatever it is
        raise ReadError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if pixel_size_nm is not None:
        return raw, (float(pixel_size_nm), float(pixel_size_nm))
    if raw.pixel_size_yx_nm is None:
        raise ValueError(
            f"{path}: no pixel size in the file ({path.suffix} files carry none, or it is "
            "uncalibrated); give --pixel-size-nm"
        )
    return raw, raw.pixel_size_yx_nm


def _micrograph(path: Path, mask: Path | None, pixel_size_nm: float | None) -> Micrograph:
    raw, yx = _read(path, pixel_size_nm)
    frames, h, w = raw.data.shape
    if not np.isfinite(raw.data).all():
        raise ValueError(f"{path}: holds NaN or infinite pixels; fix or crop the image")
    if mask is not None:
        try:
            m = read_mask(mask)
        except (ReadError, FileNotFoundError):
            raise
        except Exception as exc:
            raise ReadError(f"{mask}: unreadable ({type(exc).__name__}: {exc})") from None
        if m.shape[1:] != (h, w) or len(m) != frames:
            raise ValueError(
                f"{mask}: mask of {len(m)} x {m.shape[1:]} does not match image {path.name} "
                f"({frames} x {(h, w)})"
            )
    return Micrograph(path, mask, float(np.mean(yx)), yx, frames, (h, w))


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not found:
        raise ValueError(f"{folder}: no image files ({', '.join(SUFFIXES)})")
    return found


def find_inputs(
    folder: str | os.PathLike,
    *,
    mask_folder: str | os.PathLike | None = None,
    segment_folder: str | os.PathLike | None = None,
    pixel_size_nm: float | None = None,
    resample: bool = False,
) -> StudyInputs:
    """Pair, read and check every file of the study; see the module docstring."""
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise ValueError(f"--pixel-size-nm must be > 0, got {pixel_size_nm}")
    folder = Path(folder).absolute()
    pairs = tuple(
        _micrograph(img, msk, pixel_size_nm) for img, msk in pair_folder(folder, mask_folder)
    )
    inputs = StudyInputs(folder, pairs, ())
    odd = inputs.odd_one()
    if odd is not None and not resample:
        ref = pairs[0]
        raise ValueError(
            f"{odd.path}: pixel size {odd.pixel_size_yx_nm[0]:g} x {odd.pixel_size_yx_nm[1]:g} "
            f"nm differs from {ref.path.name} ({ref.pixel_size_nm:g} nm); one network is "
            "trained at one pixel size: give --resample to resample every image onto the "
            f"finest ({inputs.pixel_size_nm:g} nm), or study them separately"
        )
    if segment_folder is None:
        return inputs
    paired = {m.path for m in pairs}
    extra = tuple(
        _micrograph(p, None, pixel_size_nm)
        for p in _images_in(Path(segment_folder).absolute())
        if p not in paired
    )
    for m in extra:
        off = abs(m.pixel_size_nm - inputs.pixel_size_nm) / inputs.pixel_size_nm
        if off > SEGMENT_PIXEL_RTOL and not resample:
            raise ValueError(
                f"{m.path}: pixel size {m.pixel_size_nm:g} nm is {off:.0%} off the training "
                f"images' {inputs.pixel_size_nm:g} nm; give --resample to segment it resampled"
            )
    return replace(inputs, extra=extra)


def _rescale(frames: np.ndarray, scale: tuple[float, float], order: int) -> np.ndarray:
    from skimage.transform import rescale

    smooth = order > 0 and min(scale) < 1  # anti-alias when shrinking an image
    out = [
        rescale(f, scale, order=order, anti_aliasing=smooth, preserve_range=True) for f in frames
    ]
    return np.stack(out).astype(frames.dtype)


def resample_onto(inputs: StudyInputs, out_dir: Path) -> StudyInputs:
    """The pairs resampled onto the finest pixel size (bilinear images, nearest masks), as
    calibrated TIFFs in ``out_dir``; pairs already there with the same pixel size are kept."""
    target = inputs.pixel_size_nm
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for m in inputs.pairs:
        img, msk = out_dir / f"{m.name}.tif", out_dir / f"{m.name}_mask.tif"
        if not (img.exists() and msk.exists()):
            scale = (m.pixel_size_yx_nm[0] / target, m.pixel_size_yx_nm[1] / target)
            raw = read_raw(m.path).data
            write_calibrated_tiff(msk, _rescale(read_mask(m.mask), scale, 0), target)
            write_calibrated_tiff(img, _rescale(raw, scale, 1), target)
        done.append(_micrograph(img, msk, None))
    return replace(inputs, pairs=tuple(done))
