"""Standardized images and masks -> patches -> grouped split -> contrast -> patch store.

The last common stretch of ingest (real files) and synth (generated raw counts): both
preprocess each image with :func:`temseg.data.preprocess.preprocess` and hand the result
here, so the two paths cannot drift apart. :func:`write_generated_store` is the generators'
way in: raw counts and masks in, the same preprocessing as real files, one store out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from temseg.data.contrast import CONTRAST_DEFINITION, measure_contrast
from temseg.data.patches import SPLIT_FRACTIONS, cut_patches, particle_filter, split_patches
from temseg.data.preprocess import XRAY_THRESHOLDS, preprocess, preprocessing_record
from temseg.data.store import SPLITS, write_store


@dataclass(frozen=True)
class PreparedImage:
    """One preprocessed image on its way into a store."""

    image: np.ndarray  # (H, W) float32, standardized
    mask: np.ndarray  # (H, W) uint8 0/1
    source: int  # index into the store's ``sources``
    group: int  # split group (a file; frames of one stack share it)
    label: str  # for error messages: file name (and frame)


def assemble_store(
    out: str | os.PathLike,
    prepared: Iterable[PreparedImage],
    *,
    sources: list[str],
    pixel_size_nm: float,
    patch_size: int,
    min_particle_px: int,
    seed: int,
    kind: str,
    preprocessing: dict[str, Any],
    extra_attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
) -> Path:
    """Cut, filter, split, measure and write; returns the store path.

    Raises
    ------
    ValueError
        An image is smaller than the patch, or no patch keeps ``min_particle_px`` particle
        pixels (the message names the sources).
    """
    imgs, msks, srcs, grps = [], [], [], []
    labels = []
    n_total = 0
    for item in prepared:
        labels.append(item.label)
        h, w = item.image.shape
        if h < patch_size or w < patch_size:
            raise ValueError(
                f"{item.label}: image of {h}x{w} px is smaller than the {patch_size} px patch "
                "(use a smaller --patch-size)"
            )
        pi, pm = cut_patches(item.image, item.mask, patch_size)
        keep = particle_filter(pm, min_particle_px)
        n_total += len(pi)
        imgs.append(pi[keep])
        msks.append(pm[keep])
        srcs.append(np.full(int(keep.sum()), item.source, dtype=np.int32))
        grps.append(np.full(int(keep.sum()), item.group, dtype=np.int64))
        if progress:
            progress(f"{item.label}: {int(keep.sum())}/{len(pi)} patches kept")
    images = np.concatenate(imgs) if imgs else np.zeros((0, patch_size, patch_size), np.float32)
    if len(images) == 0:
        shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
        raise ValueError(
            f"no patch left after filtering: none of the {n_total} patches of {patch_size} px "
            f"from {shown or 'no image'} has >= {min_particle_px} particle pixels; lower "
            "--min-particle-px, use a smaller --patch-size, or check the masks"
        )
    masks = np.concatenate(msks)
    source = np.concatenate(srcs)
    groups = np.concatenate(grps)
    assignment, split_record = split_patches(groups, seed=seed, fractions=split_fractions)
    contrast = measure_contrast(images, masks)
    record = dict(preprocessing)
    record.update(
        patch_size=int(patch_size),
        min_particle_px=int(min_particle_px),
        patches_cut=int(n_total),
        patches_kept=int(len(images)),
        split=split_record,
    )
    attrs = {
        "pixel_size_nm": float(pixel_size_nm),
        "kind": kind,
        "contrast": contrast["contrast"],
        "contrast_detail": {**contrast, "definition": CONTRAST_DEFINITION},
        "sources": list(sources),
        "preprocessing": record,
    }
    attrs.update(extra_attrs or {})
    splits = {
        name: (images[assignment == s], masks[assignment == s], source[assignment == s])
        for s, name in enumerate(SPLITS)
    }
    return write_store(out, splits, attrs, overwrite=overwrite)


def write_generated_store(
    out: str | os.PathLike,
    raw: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    origin: str,
    images: int,
    seed: int,
    regime: str,
    flat_field: bool,
    pixel_size_nm: float,
    patch_size: int,
    min_particle_px: int,
    extra_attrs: dict[str, Any],
    overwrite: bool = False,
    split_fractions: Sequence[float] | None = None,
    restandardize: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    standardization: str | None = None,
) -> Path:
    """Preprocess generated raw counts as real files are, and write them as a patch store.

    ``raw`` yields ``images`` (counts, mask) pairs; image i is its own split group and its
    source is ``{origin}:seed{seed}:image{i}``. The x-ray threshold is the ``regime``'s
    (``hr`` or ``lr``); ``extra_attrs`` holds the generator's record (its parameters, seed
    and image count). ``restandardize`` ``(standardized, mask) -> image``, when given, maps
    each preprocessed image once more (the multislice field context), and ``standardization``
    then says how in the ``preprocessing`` record. The store write of
    :func:`temseg.data.synth.make_synthetic_store` and
    :func:`temseg.data.simulate.make_simulated_store`.
    """
    threshold = XRAY_THRESHOLDS[regime]
    sources = [f"{origin}:seed{seed}:image{i}" for i in range(images)]
    record = preprocessing_record(regime, threshold, flat_field=flat_field)
    if standardization is not None:
        record["standardization"] = standardization

    def prepared():
        for i, (counts, mask) in enumerate(raw):
            std, _ = preprocess(counts, xray_threshold=threshold, flat_field=flat_field)
            if restandardize is not None:
                std = restandardize(std, mask)
            yield PreparedImage(std, mask, i, i, sources[i])

    return assemble_store(
        out,
        prepared(),
        sources=sources,
        pixel_size_nm=pixel_size_nm,
        patch_size=patch_size,
        min_particle_px=min_particle_px,
        seed=seed,
        kind="synthetic",
        preprocessing=record,
        extra_attrs=extra_attrs,
        overwrite=overwrite,
        **({} if split_fractions is None else {"split_fractions": tuple(split_fractions)}),
    )
