"""The bootstrap over test images: intervals that count the draw of the test set, not only
the training seeds.

Every finished trial logs, per test image, the intersection, predicted and true particle
pixel counts of its best checkpoint, summed over the image's patches and their 8 dihedral
copies (``test_images.json``, :func:`temseg.train.write_test_images`); the pooled hard dice
2 sum(I) / (sum(P) + sum(T)) over the images is the logged ``test_hard_dice``.

A bootstrap replicate draws the test images with replacement (``w_j`` times image j) and
recomputes every trial's dice as 2 sum_j w_j I_j / sum_j w_j (P_j + T_j). All trials of a
dataset share its test images, so one replicate applies the same image draw to every trial
of the dataset (the paired comparison between RFs keeps its pairing); where a group holds
several datasets (data draws), each dataset's images are drawn from its own images
(stratified). The analysis draws the seeds first, as the seed-only bootstrap does, then the
images, and refits per replicate (:func:`temseg.analysis.plateau.fit_plateau`,
:func:`temseg.analysis.answer.level_answers`). Trials logged without the record keep the
seed-only interval; ``interval_over`` says which kind each interval is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEEDS_ONLY = "seeds"
SEEDS_AND_IMAGES = "seeds and test images"
COUNT_COLUMNS = ("intersection", "predicted", "true")
IMAGE_COLUMNS = ["run_id", "source", "name", *COUNT_COLUMNS]


@dataclass(frozen=True)
class ImageCounts:
    """Per-image pixel counts of the trials of one group: (n trials, J images) each, and the
    dataset (stratum) of every image column."""

    intersection: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    strata: np.ndarray

    def subset(self, rows: np.ndarray) -> ImageCounts:
        """The counts of some trials (a boolean mask or indices over the trials)."""
        return ImageCounts(
            self.intersection[rows], self.predicted[rows], self.true[rows], self.strata
        )


def counts_for(members: pd.DataFrame, images: pd.DataFrame | None) -> ImageCounts | None:
    """The :class:`ImageCounts` of ``members`` (trials with ``run_id`` and ``dataset``), in
    their row order, from ``images`` (:func:`temseg.analysis.collect.load_test_images`).

    None (seed-only intervals) when there is no image table or any member lacks a record:
    a bootstrap over images needs every trial of the group evaluated on the same images.
    Image columns are the (dataset, source) pairs; every trial of a dataset must list the
    same images, else None as well.
    """
    if images is None or images.empty or "run_id" not in members:
        return None
    runs = members["run_id"].to_numpy()
    rec = images[images["run_id"].isin(runs)]
    if rec["run_id"].nunique() < len(set(runs)):
        return None
    rec = rec.merge(members[["run_id", "dataset"]].drop_duplicates("run_id"), on="run_id")
    n_images = rec.groupby("dataset")["source"].transform("nunique")
    if (rec.groupby("run_id")["source"].transform("size") != n_images).any():
        return None  # some trial of a dataset lists other images than the rest
    pairs = rec[["dataset", "source"]].drop_duplicates().sort_values(["dataset", "source"])
    cols = pd.MultiIndex.from_frame(pairs)
    out = []
    for name in COUNT_COLUMNS:
        wide = rec.pivot_table(name, "run_id", ["dataset", "source"], aggfunc="sum")
        out.append(wide.reindex(index=runs, columns=cols).fillna(0.0).to_numpy(float))
    strata = pd.factorize(cols.get_level_values("dataset"))[0]
    return ImageCounts(*out, strata=strata)


def image_weights(strata: np.ndarray, n_boot: int, gen: np.random.Generator) -> np.ndarray:
    """(n_boot, J) times each image is drawn: images resampled with replacement, each
    stratum (dataset) from its own images, as many as it has.

    >>> image_weights(np.array([0]), 2, np.random.default_rng(0))
    array([[1.],
           [1.]])
    """
    out = np.zeros((n_boot, len(strata)))
    rows = np.arange(n_boot)[:, None]
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        np.add.at(out, (rows, idx[gen.integers(0, len(idx), size=(n_boot, len(idx)))]), 1.0)
    return out


def resampled_dice(counts: ImageCounts, weights: np.ndarray) -> np.ndarray:
    """Pooled hard dice of every trial under every image draw, (B, n trials); 0/0 (no
    particle predicted or present in the drawn images) is 1, as :mod:`temseg.metrics` has it.

    >>> c = ImageCounts(np.array([[1.0, 3.0]]), np.array([[2.0, 4.0]]), np.array([[2.0, 4.0]]),
    ...                 np.array([0, 0]))
    >>> resampled_dice(c, np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])).round(4).tolist()
    [[0.6667], [0.5], [0.75]]
    """
    inter = weights @ counts.intersection.T
    total = weights @ (counts.predicted + counts.true).T
    return np.where(total > 0, 2.0 * inter / np.where(total > 0, total, 1.0), 1.0)


def replicate_dice(
    y: np.ndarray, counts: ImageCounts | None, n_boot: int, gen: np.random.Generator
) -> tuple[np.ndarray, str]:
    """The dice each bootstrap replicate sees, (n_boot, n) with an image draw per replicate
    (drawn from ``gen`` after the caller's seed draw), or ``y`` as (1, n) without counts;
    and the kind of interval that gives (:data:`SEEDS_AND_IMAGES` or :data:`SEEDS_ONLY`)."""
    if counts is None:
        return np.asarray(y, dtype=float)[None, :], SEEDS_ONLY
    return resampled_dice(counts, image_weights(counts.strata, n_boot, gen)), SEEDS_AND_IMAGES
