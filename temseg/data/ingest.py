"""Ingest real microscope images and hand-drawn masks into a patch store.

Each image file (a 3-D stack gives one image per frame) is read with its calibration,
checked against its mask, run through the paper's preprocessing and cut into patches; the
patches of one file stay on one side of the 70/10/20 split when there are at least 3 files.
Every bad input raises before anything is written, with a message naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from temseg.data.pipeline import PreparedImage, assemble_store
from temseg.data.preprocess import (
    XRAY_THRESHOLDS,
    preprocess,
    preprocessing_record,
    regime_for_pixel_size,
)
from temseg.data.readers import (
    SUFFIXES,
    ReadError,
    anisotropic_message,
    read_mask,
    read_raw,
    resample_isotropic,
)

MASK_SUFFIX = re.compile(r"[_-](mask|masks|label|labels)$", re.IGNORECASE)
# Files whose pixel sizes differ by more than this cannot share one store.
PIXEL_SIZE_RTOL = 0.01


def pair_folder(
    folder: str | os.PathLike, mask_folder: str | os.PathLike | None = None
) -> list[tuple[Path, Path]]:
    """Pair images with masks by file stem.

    With one folder, masks are the files whose stem ends in ``_mask`` or ``_label`` (also
    ``-mask``, ``_labels``...): ``a.dm4`` pairs with ``a_mask.png``. With ``mask_folder``,
    ``a.dm4`` pairs with ``mask_folder/a.png`` or ``mask_folder/a_mask.png``. Files of
    unsupported types are ignored; an image without a mask, a mask without an image or two
    files with one stem raise ValueError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    mfolder = Path(mask_folder) if mask_folder is not None else folder
    if not mfolder.is_dir():
        raise FileNotFoundError(f"{mfolder}: no such folder")

    def files(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)

    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for p in files(folder):
        is_mask = mask_folder is None and MASK_SUFFIX.search(p.stem)
        if is_mask:
            key, table = MASK_SUFFIX.sub("", p.stem), masks
        else:
            key, table = p.stem, images
        if key in table:
            raise ValueError(f"{p}: two files for stem {key!r} ({table[key].name}, {p.name})")
        table[key] = p
    if mask_folder is not None:
        for p in files(mfolder):
            key = MASK_SUFFIX.sub("", p.stem)
            if key in masks:
                raise ValueError(f"{p}: two masks for stem {key!r} ({masks[key].name}, {p.name})")
            masks[key] = p
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images:
        raise ValueError(
            f"{images[lonely_images[0]]}: no mask found (expected e.g. "
            f"{mfolder / (lonely_images[0] + '_mask.png')}); unpaired: {lonely_images}"
        )
    if lonely_masks:
        raise ValueError(
            f"{masks[lonely_masks[0]]}: mask without an image; unpaired: {lonely_masks}"
        )
    if not images:
        raise ValueError(f"{folder}: no image files ({', '.join(SUFFIXES)})")
    return [(images[k], masks[k]) for k in sorted(images)]


def ingest(
    out: str | os.PathLike,
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    *,
    pixel_size_nm: float | None = None,
    patch_size: int = 512,
    min_particle_px: int = 400,
    xray_threshold: float | None = None,
    seed: int = 0,
    resample: bool = False,
    flat_field: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Read (image, mask) file pairs, preprocess, patch, split and write a patch store.

    Parameters
    ----------
    out
        Target store directory; must not exist unless ``overwrite``.
    pairs
        (image file, mask file). A 3-D image needs a mask with the same frames.
    pixel_size_nm
        Overrides the files' calibration (required for TIFF/PNG/.npy).
    patch_size, min_particle_px
        Patch side (paper 512) and the particle pixels a patch needs to be kept (paper 400).
    xray_threshold
        T in raw counts above the median; default by regime (1500 HR, 400 LR).
    seed
        Seeds the split.
    resample
        Interpolate anisotropic pixels onto square ones instead of refusing them.
    flat_field
        Divide out uneven illumination before standardization
        (:func:`temseg.data.preprocess.correct_flat_field`); recorded in the store.

    Returns
    -------
    Path
        The absolute store path.
    """
    out = Path(out).absolute()
    pairs = _checked_pairs(
        out, pairs, patch_size, min_particle_px, pixel_size_nm, xray_threshold, overwrite
    )

    loaded = [_load_pair(img, msk, pixel_size_nm, resample, patch_size) for img, msk in pairs]
    ref = _common_pixel_size(pairs, loaded)
    regime = regime_for_pixel_size(ref)
    threshold = float(xray_threshold) if xray_threshold is not None else XRAY_THRESHOLDS[regime]
    sources: list[str] = []
    for (img, _), (frames, _, _) in zip(pairs, loaded, strict=True):
        if len(frames) == 1:
            sources.append(img.name)
        else:
            sources.extend(f"{img.name}#frame{k}" for k in range(len(frames)))

    def prepared() -> Iterator[PreparedImage]:
        index = 0
        for group, ((img, _), (frames, masks, _)) in enumerate(zip(pairs, loaded, strict=True)):
            for k, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
                std, _ = preprocess(frame, xray_threshold=threshold, flat_field=flat_field)
                label = sources[index]
                yield PreparedImage(std, mask, index, group, label)
                index += 1
                if progress and len(frames) > 1:
                    progress(f"{img.name}: frame {k + 1}/{len(frames)}")

    preprocessing = {
        **preprocessing_record(
            regime, threshold, from_flag=xray_threshold is not None, flat_field=flat_field
        ),
        "resampled": bool(resample),
    }
    extra = {
        "pixel_size_source": "flag" if pixel_size_nm is not None else "file metadata",
        "mask_files": [m.name for _, m in pairs],
    }
    return assemble_store(
        out,
        prepared(),
        sources=sources,
        pixel_size_nm=ref,
        patch_size=patch_size,
        min_particle_px=min_particle_px,
        seed=seed,
        kind="ingested",
        preprocessing=preprocessing,
        extra_attrs=extra,
        overwrite=overwrite,
        progress=progress,
    )


def _checked_pairs(
    out: Path,
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    patch_size: int,
    min_particle_px: int,
    pixel_size_nm: float | None,
    xray_threshold: float | None,
    overwrite: bool,
) -> list[tuple[Path, Path]]:
    """Check the arguments of :func:`ingest` and that every file is there and readable by
    its suffix, before anything is read; the pairs as Paths."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    if not pairs:
        raise ValueError("no image/mask pair given")
    if patch_size < 8:
        raise ValueError(f"patch_size must be >= 8 px, got {patch_size}")
    if min_particle_px < 0:
        raise ValueError(f"min_particle_px must be >= 0, got {min_particle_px}")
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    if xray_threshold is not None and not xray_threshold > 0:
        raise ValueError(f"xray_threshold must be > 0 raw counts, got {xray_threshold}")
    pairs = [(Path(i), Path(m)) for i, m in pairs]
    for img, msk in pairs:
        for p in (img, msk):
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file")
            if p.suffix.lower() not in SUFFIXES:
                raise ReadError(
                    f"{p}: unsupported file type {p.suffix!r}; supported: {', '.join(SUFFIXES)}"
                )
    return pairs


def _common_pixel_size(pairs: list[tuple[Path, Path]], loaded: list) -> float:
    """The one pixel size (nm) of the loaded pairs; ValueError naming a file that differs."""
    sizes = {str(pair[0]): px for pair, (_, _, px) in zip(pairs, loaded, strict=True)}
    ref = loaded[0][2]
    for name, px in sizes.items():
        if abs(px - ref) > PIXEL_SIZE_RTOL * ref:
            raise ValueError(
                f"{name}: pixel size {px:g} nm differs from {pairs[0][0]} ({ref:g} nm); one "
                "store holds one pixel size (ingest them separately, or give --pixel-size-nm)"
            )
    return ref


def _load_pair(
    img: Path, msk: Path, pixel_size_nm: float | None, resample: bool, patch_size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Read and check one pair: (frames float32, mask frames uint8, pixel size nm)."""
    raw = read_raw(img)
    frames = raw.data
    masks = read_mask(msk)
    if masks.shape[1:] != frames.shape[1:]:
        raise ValueError(
            f"{msk}: mask shape {masks.shape[1:]} differs from image {img} shape {frames.shape[1:]}"
        )
    if len(masks) != len(frames):
        raise ValueError(
            f"{msk}: mask has {len(masks)} frame(s) but image {img} has {len(frames)}; a "
            "stack needs a mask stack with one mask per frame"
        )
    bad = ~np.isfinite(frames)
    if bad.any():
        where = np.argwhere(bad)[0]
        frame = f" (frame {where[0]})" if len(frames) > 1 else ""
        raise ValueError(
            f"{img}: {int(bad.sum())} NaN or infinite pixel(s){frame}, first at (y, x) = "
            f"({where[1]}, {where[2]}); fix or crop the image"
        )
    if not raw.isotropic:
        if not resample:
            raise ReadError(anisotropic_message(raw))
        try:
            frames, px = resample_isotropic(frames, raw.pixel_size_yx_nm, order=1)
            masks, _ = resample_isotropic(masks, raw.pixel_size_yx_nm, order=0)
        except ValueError as exc:
            raise ReadError(f"{img}: {exc}") from None
    else:
        px = None if raw.pixel_size_yx_nm is None else float(np.mean(raw.pixel_size_yx_nm))
    if pixel_size_nm is not None:
        px = float(pixel_size_nm)
    if px is None:
        raise ValueError(
            f"{img}: no pixel size in the file ({img.suffix} files carry none, or it is "
            "uncalibrated); give --pixel-size-nm"
        )
    h, w = frames.shape[1:]
    if h < patch_size or w < patch_size:
        raise ValueError(
            f"{img}: image of {h}x{w} px is smaller than the {patch_size} px patch "
            "(use a smaller --patch-size)"
        )
    return frames, masks, px
