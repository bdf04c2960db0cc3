"""The bootstrap over test images (temseg.analysis.image_bootstrap) and its use by the plateau
fit and the answer: exact values on hand-made count tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temseg.analysis import answer, image_bootstrap, plateau
from temseg.analysis.image_bootstrap import SEEDS_AND_IMAGES, SEEDS_ONLY, ImageCounts
from tests.test_answer import trials_table

SEEDS = (752, 2245, 140)
RFS = (44, 80, 120)


def test_resampled_dice_is_the_pooled_dice_of_the_drawn_images():
    # trial 0: image dice 2/4 and 6/8; trial 1 finds nothing on image 1 (0/0 there)
    c = ImageCounts(
        intersection=np.array([[1.0, 3.0], [2.0, 0.0]]),
        predicted=np.array([[2.0, 4.0], [2.0, 0.0]]),
        true=np.array([[2.0, 4.0], [2.0, 0.0]]),
        strata=np.array([0, 0]),
    )
    w = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    assert image_bootstrap.resampled_dice(c, w).tolist() == [[8 / 12, 1.0], [0.5, 1.0], [0.75, 1.0]]


def test_image_draws_stay_in_their_dataset_and_repeat_with_the_seed():
    strata = np.array([0, 0, 0, 1, 1])
    a = image_bootstrap.image_weights(strata, 50, np.random.default_rng(3))
    b = image_bootstrap.image_weights(strata, 50, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert (a[:, :3].sum(axis=1) == 3).all() and (a[:, 3:].sum(axis=1) == 2).all()
    other = image_bootstrap.image_weights(strata, 50, np.random.default_rng(4))
    assert not np.array_equal(a, other)


def _curve(n_images: int, identical: bool = True, rng: int = 0):
    """3 RFs x 3 seeds of a rising curve, with per-image counts whose pooled dice is each
    trial's dice: n_images copies of one image (identical) or images of varied difficulty."""
    gen = np.random.default_rng(rng)
    rf = np.repeat(RFS, len(SEEDS)).astype(float)
    seeds = np.tile(SEEDS, len(RFS))
    base = 0.9 - 0.2 * (rf / 44) ** -2 + gen.normal(0, 0.01, len(rf))
    scale = np.ones(n_images) if identical else np.linspace(0.6, 1.1, n_images)
    true = np.full((len(rf), n_images), 1000.0)
    inter = np.round(true * np.clip(base[:, None] * scale[None, :], 0, 1))
    counts = ImageCounts(inter, true.copy(), true, np.zeros(n_images, dtype=int))
    dice = 2 * inter.sum(axis=1) / (2 * true.sum(axis=1))
    return rf, dice, seeds, counts


def _intervals(fit):
    return np.array([fit.gain_lo, fit.gain_hi, fit.plateau_dice_lo, fit.plateau_dice_hi])


@pytest.mark.parametrize("n_images", [1, 5])
def test_one_image_or_identical_images_give_the_seed_interval(n_images):
    rf, dice, seeds, counts = _curve(n_images)
    seed_only = plateau.fit_plateau(rf, dice, seeds, n_boot=300)
    joint = plateau.fit_plateau(rf, dice, seeds, n_boot=300, counts=counts)
    assert (seed_only.interval_over, joint.interval_over) == (SEEDS_ONLY, SEEDS_AND_IMAGES)
    assert np.allclose(_intervals(joint), _intervals(seed_only), atol=1e-12, rtol=0)
    assert joint.gain == seed_only.gain and joint.verdict == seed_only.verdict


def test_images_of_varied_difficulty_widen_the_interval_deterministically():
    rf, dice, seeds, counts = _curve(8, identical=False)
    seed_only = plateau.fit_plateau(rf, dice, seeds, n_boot=300)
    joint = plateau.fit_plateau(rf, dice, seeds, n_boot=300, counts=counts)
    again = plateau.fit_plateau(rf, dice, seeds, n_boot=300, counts=counts)
    other = plateau.fit_plateau(rf, dice, seeds, n_boot=300, counts=counts, rng=1)
    assert np.array_equal(_intervals(joint), _intervals(again))
    assert not np.array_equal(_intervals(joint), _intervals(other))
    width = _intervals(joint)[1] - _intervals(joint)[0]
    assert width > _intervals(seed_only)[1] - _intervals(seed_only)[0]


def _table_and_images():
    """Every seed trains the same networks (no seed noise); two test images: on image 0 the
    smallest RF finds half the particle pixels (dice 0.5) and the others all (1.0); image 1
    is found whole at every RF. Pooled: 0.75 at 44 px, 1.0 above."""
    trials = trials_table(lambda rf: 0.75 if rf == 44 else 1.0, rfs=RFS)
    trials["run_id"] = [f"r{r.rf_px}-{r.seed}" for r in trials.itertuples()]
    images = []
    for r in trials.itertuples():
        images.append((r.run_id, 0, "a", 2 if r.rf_px == 44 else 4, 4, 4))
        images.append((r.run_id, 1, "b", 4, 4, 4))
    table = pd.DataFrame(images, columns=image_bootstrap.IMAGE_COLUMNS)
    return trials, table.sample(frac=1.0, random_state=0)  # any row order


def test_observed_gain_interval_spans_the_image_draws_exactly():
    trials, images = _table_and_images()
    # draws: image 0 twice (gain 0.5), image 1 twice (0.0) or both (0.25): the 95 % interval
    # is [0, 0.5] over seeds and test images; over seeds alone it has no width
    fits = plateau.fit_plateaus(trials, n_boot=200, images=images)
    row = answer.level_answers(trials, fits, images).iloc[0]
    assert row["observed_gain"] == 0.25
    assert (row["observed_gain_lo"], row["observed_gain_hi"]) == (0.0, 0.5)
    assert row["interval_over"] == SEEDS_AND_IMAGES
    assert "95% interval over seeds and test images" in row["sentence"]
    seed_only = answer.level_answers(trials, plateau.fit_plateaus(trials, n_boot=200)).iloc[0]
    assert (seed_only["observed_gain_lo"], seed_only["observed_gain_hi"]) == (0.25, 0.25)
    assert seed_only["interval_over"] == SEEDS_ONLY


def test_a_trial_without_a_record_keeps_the_group_on_seed_intervals():
    trials, images = _table_and_images()
    counts = image_bootstrap.counts_for(trials, images)
    assert counts.intersection.shape == (9, 2) and counts.intersection[0].tolist() == [2.0, 4.0]
    assert image_bootstrap.counts_for(trials, images[images["run_id"] != "r80-140"]) is None
    assert image_bootstrap.counts_for(trials, None) is None
    partial = images[~((images["run_id"] == "r80-140") & (images["source"] == 1))]
    assert image_bootstrap.counts_for(trials, partial) is None  # lists fewer images than the rest
