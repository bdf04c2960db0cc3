"""Preprocessing (x-rays, standardization), patch grid, grouped split, contrast measure."""

from __future__ import annotations

import numpy as np
import pytest

from temseg.data.contrast import measure_contrast
from temseg.data.patches import cut_patches, particle_filter, patch_grid, split_patches
from temseg.data.preprocess import (
    HR_MAX_PIXEL_NM,
    preprocess,
    regime_for_pixel_size,
    remove_xrays,
    standardize,
    xray_threshold_for,
)


def test_thresholds_by_regime():
    # SPEC.md section 4: T = 1500 for HR (0.02 nm/px), 400 for LR (0.1243 nm/px)
    assert xray_threshold_for(0.02) == 1500 and xray_threshold_for(0.02152) == 1500
    assert xray_threshold_for(0.1243) == 400
    assert regime_for_pixel_size(HR_MAX_PIXEL_NM) == "hr"
    assert regime_for_pixel_size(HR_MAX_PIXEL_NM * 1.01) == "lr"


def test_xray_spike_replaced_by_neighbour_mean():
    img = np.arange(25, dtype=np.float32).reshape(5, 5)
    img[2, 2] = 1e5
    out, n = remove_xrays(img, threshold=1500)
    neighbours = [6, 7, 8, 11, 13, 16, 17, 18]
    assert n == 1 and out[2, 2] == pytest.approx(np.mean(neighbours))
    assert img[2, 2] == 1e5  # input untouched


def test_xray_cluster_brightest_first_and_second_pass():
    img = np.full((7, 7), 100.0, dtype=np.float32)
    img[3, 3], img[3, 4] = 9000.0, 5000.0  # a 2-pixel spike
    out, n = remove_xrays(img, threshold=1500)
    # brightest first: (3,3) -> mean of neighbours incl. 5000 = (7*100 + 5000)/8 = 712.5;
    # then (3,4) -> mean incl. the replaced 712.5 = (7*100 + 712.5)/8 = 176.6
    assert out[3, 3] == pytest.approx(712.5)
    assert out[3, 4] == pytest.approx((700 + 712.5) / 8)
    assert n == 2
    # a blob whose pixels are still above threshold after pass 1 is attacked again in pass 2
    img = np.full((5, 5), 0.0, dtype=np.float32)
    img[1:4, 1:4] = 40000.0
    one, n1 = remove_xrays(img, threshold=1500, passes=1)
    two, n2 = remove_xrays(img, threshold=1500, passes=2)
    assert (n1, n2) == (9, 18)
    assert two.max() < one.max() < img.max()


def test_edges_and_corners_use_existing_neighbours():
    img = np.full((4, 4), 10.0, dtype=np.float32)
    img[0, 0] = 1e4
    out, _ = remove_xrays(img, threshold=100)
    assert out[0, 0] == pytest.approx(10.0)


def test_preprocess_negatives_standardization_and_record():
    rng = np.random.default_rng(0)
    img = rng.poisson(100, (64, 64)).astype(np.float32)
    img[0, :5] = -50  # negatives set to 0 before anything else
    img[10, 10] = 1e5
    out, rec = preprocess(img, pixel_size_nm=0.02)
    assert out.dtype == np.float32
    assert out.mean() == pytest.approx(0, abs=1e-5) and out.std() == pytest.approx(1, abs=1e-4)
    assert rec == {"xray_threshold": 1500.0, "xray_replaced": 1}
    ref = np.maximum(img, 0)
    ref[10, 10] = np.mean([ref[9, 9:12].sum() + ref[10, 9] + ref[10, 11] + ref[11, 9:12].sum()]) / 8
    np.testing.assert_allclose(out, standardize(ref), atol=1e-5)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN or infinite"):
        preprocess(np.array([[1.0, np.nan], [1.0, 1.0]]), xray_threshold=10)
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.zeros((2, 2, 2)), xray_threshold=10)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        preprocess(np.zeros((2, 2)))
    assert standardize(np.full((3, 3), 7.0)).tolist() == np.zeros((3, 3)).tolist()


def test_patch_grid_centred_and_cut():
    assert patch_grid(1024, 1024, 512) == [(0, 0), (0, 512), (512, 0), (512, 512)]
    assert patch_grid(1100, 1024, 512)[0] == (38, 0)
    assert patch_grid(511, 1024, 512) == []
    img = np.arange(20 * 20, dtype=np.float32).reshape(20, 20)
    msk = (img % 3 == 0).astype(np.uint8)
    pi, pm = cut_patches(img, msk, 8)
    assert pi.shape == (4, 8, 8) and pm.shape == (4, 8, 8)
    np.testing.assert_array_equal(pi[0], img[2:10, 2:10])
    with pytest.raises(ValueError, match="smaller than the 32 px patch"):
        cut_patches(img, msk, 32)


def test_particle_filter_threshold():
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[1, :20, :20] = 1  # 400 px
    masks[2, :19, : 21 - 2] = 1  # 19 * 19 = 361 px
    assert particle_filter(masks, 400).tolist() == [False, True, False]


@pytest.mark.parametrize("n_groups", [3, 4, 5, 7, 12, 30])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_keeps_groups_together_and_fills_every_split(n_groups, seed):
    rng = np.random.default_rng(seed + 100 * n_groups)
    counts = rng.integers(1, 9, n_groups)
    groups = np.repeat(np.arange(n_groups) * 7 + 3, counts)  # arbitrary ids
    assignment, rec = split_patches(groups, seed=seed)
    assert rec["mode"] == "by_image"
    assert set(assignment.tolist()) == {0, 1, 2}  # every split non-empty
    for g in np.unique(groups):
        assert len(set(assignment[groups == g].tolist())) == 1, "an image straddles splits"
    listed = sorted(rec["groups"]["train"] + rec["groups"]["val"] + rec["groups"]["test"])
    assert listed == sorted(np.unique(groups).tolist())


def test_split_fractions_close_to_70_10_20_with_many_images():
    groups = np.repeat(np.arange(200), 4)
    assignment, _ = split_patches(groups, seed=0)
    shares = np.bincount(assignment, minlength=3) / groups.size
    np.testing.assert_allclose(shares, [0.7, 0.1, 0.2], atol=0.02)


def test_split_is_seeded():
    groups = np.repeat(np.arange(12), 3)
    a, _ = split_patches(groups, seed=5)
    b, _ = split_patches(groups, seed=5)
    c, _ = split_patches(groups, seed=6)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_split_by_patch_below_three_images():
    assignment, rec = split_patches(np.zeros(10, int), seed=0)
    assert rec["mode"] == "by_patch" and "note" in rec
    assert np.bincount(assignment, minlength=3).tolist() == [7, 1, 2]
    assignment, _ = split_patches(np.array([0, 0, 1]), seed=0)
    assert sorted(assignment.tolist()) == [0, 1, 2]


def test_contrast_measure_exact_and_robust():
    rng = np.random.default_rng(0)
    m = (np.arange(400_000) % 4 == 0).astype(np.uint8)
    img = rng.standard_normal(m.size) - 0.8 * m
    res = measure_contrast(img, m)
    assert res["contrast"] == pytest.approx(0.8, abs=0.02)
    assert res["particle_fraction"] == pytest.approx(0.25)
    img[:50] = 1e6  # a few wild pixels barely move the robust measure
    assert measure_contrast(img, m)["contrast"] == pytest.approx(0.8, abs=0.02)
    assert measure_contrast(img, np.zeros_like(m))["contrast"] is None
    brighter = measure_contrast(rng.standard_normal(m.size) + 0.5 * m, m)["contrast"]
    assert brighter < 0
