"""Size statistics with intervals, touching-particle split, the domain guard, the truth
comparison and the refusals of ``temseg segment`` (issue 24). Hand-made particle lists and
masks with known answers; the command runs on random-initialized networks (fast)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from temseg.cli import main
from temseg.data.readers import write_calibrated_tiff
from temseg.data.store import read_attrs, write_store
from temseg.model import ResidualUNet, save_checkpoint
from temseg.particles import label_particles, member_sizes, split_touching
from temseg.segment import SegmentOptions, load_models, segment_images
from temseg.segment import calibration, guard, sizes, truth
from tests.test_segment import write_image

torch.set_num_threads(1)

# ---------------------------------------------------------------------------- statistics


def test_number_and_volume_weighted_statistics_of_a_known_list():
    d = np.array([4.0, 1, 10, 3, 2])  # order must not matter
    s = sizes.size_statistics(d, 2 * d)
    # number weighted, inverted CDF: k/n >= q -> 1 (1/5 >= 0.1), 3 (3/5 >= 0.5), 10 (5/5 >= 0.9)
    assert (s["d10"], s["d50"], s["d90"]) == (1.0, 3.0, 10.0)
    assert s["dmean"] == 4.0
    # volume weights d^3 = 1, 8, 27, 64, 1000 (sum 1100): cumulative 1, 9, 36, 100, 1100;
    # 110 (10 %) is first reached at d = 10, so Dv10 = Dv50 = Dv90 = 10
    assert (s["dv10"], s["dv50"], s["dv90"]) == (10.0, 10.0, 10.0)
    assert s["dvmean"] == pytest.approx((1 + 16 + 81 + 256 + 10_000) / 1100)  # D[4,3]
    # Feret statistics weighted by the equivalent sphere's volume, so exactly 2x here
    assert (s["feret50"], s["feretv50"]) == (6.0, 20.0)
    assert s["feretvmean"] == pytest.approx(2 * s["dvmean"])
    assert s["gsd"] == pytest.approx(math.exp(np.log(d).std(ddof=1)))


def test_quantile_at_an_exact_share_takes_the_lower_value():
    d = np.arange(1.0, 11.0)  # 10 particles: 1/10 of them is exactly 10 %
    s = sizes.size_statistics(d, d)
    assert (s["d10"], s["d50"], s["d90"]) == (1.0, 5.0, 9.0)
    assert s["d50"] == np.quantile(d, 0.5, method="inverted_cdf")


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(3)
    d = rng.lognormal(math.log(2.2), 0.12, 400)
    a = sizes.particle_bootstrap(d, d, n_boot=300, seed=7)
    assert a == sizes.particle_bootstrap(d, d, n_boot=300, seed=7)
    assert a != sizes.particle_bootstrap(d, d, n_boot=300, seed=8)
    point = sizes.size_statistics(d, d)
    for name in sizes.STATISTICS:
        lo, hi = a[name]
        assert lo <= point[name] <= hi, name
    # the standard error of a median of 400 log-normal sizes (sd 0.12 in ln) is about
    # 1.2533 * 0.12 * 2.2 / sqrt(400) = 0.0165 nm: a 95 % interval ~0.065 nm wide
    assert 0.04 < a["d50"][1] - a["d50"][0] < 0.10


def test_between_network_spread_widens_the_interval():
    rng = np.random.default_rng(0)
    d = rng.lognormal(math.log(2.2), 0.12, 300)
    same = np.stack([d, d, d], 1)
    apart = np.stack([0.9 * d, d, 1.1 * d], 1)  # networks disagree by 10 % on every particle
    one = sizes.particle_bootstrap(d, d, members_d=same, members_feret=same, n_boot=400)
    three = sizes.particle_bootstrap(d, d, members_d=apart, members_feret=apart, n_boot=400)
    alone = sizes.particle_bootstrap(d, d, n_boot=400)
    for name in sizes.STATISTICS:  # no spread: the same particle draws, to rounding
        assert one[name] == pytest.approx(alone[name], rel=1e-12)
    width = lambda iv: iv["d50"][1] - iv["d50"][0]  # noqa: E731
    assert width(three) > 2 * width(one)


def test_particles_needed_and_image_bootstrap():
    # a 95 % half-width of 2 % of the value needs 0.16x the particles for +-5 %
    assert sizes.particles_needed(10.0, 9.8, 10.2, 1000) == 160.0
    assert math.isnan(sizes.particles_needed(10.0, math.nan, math.nan, 10))
    groups = [(np.full(50, 2.0), np.full(50, 2.0)), (np.full(50, 3.0), np.full(50, 3.0))]
    iv = sizes.image_bootstrap(groups, n_boot=200)
    assert iv["d50"] == (2.0, 3.0)  # an image drawn twice decides the median
    assert all(math.isnan(x) for x in sizes.image_bootstrap(groups[:1])["d50"])


# ---------------------------------------------------------------------------- split


def touching_discs(pairs: int, *, radius: int = 14, gap: float = -1.0, seed: int = 0):
    """A mask of ``pairs`` pairs of discs whose rims meet (centres 2r + gap apart), on a
    grid, and the true number of discs."""
    rng = np.random.default_rng(seed)
    cell = 5 * radius
    side = int(math.ceil(math.sqrt(pairs)))
    yy, xx = np.mgrid[: side * cell, : side * cell]
    mask = np.zeros(yy.shape, bool)
    for i in range(pairs):
        cy, cx = (i // side + 0.5) * cell, (i % side + 0.5) * cell
        r1, r2 = radius * rng.uniform(0.85, 1.15, 2)
        angle = rng.uniform(0, math.pi)
        sep = (r1 + r2 + gap) / 2
        dy, dx = sep * math.sin(angle), sep * math.cos(angle)
        mask |= (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= r1**2
        mask |= (yy - cy + dy) ** 2 + (xx - cx + dx) ** 2 <= r2**2
    return mask, 2 * pairs


def test_split_counts_touching_pairs_exactly():
    mask, n_true = touching_discs(36)
    assert label_particles(mask).max() == 36  # every pair is one 8-connected component
    assert split_touching(mask).max() == n_true


def test_split_keeps_single_particles_whole():
    yy, xx = np.mgrid[:200, :200]
    mask = ((yy - 50) ** 2 + (xx - 50) ** 2 < 400) | ((yy - 140) ** 2 / 2 + (xx - 140) ** 2 < 500)
    assert split_touching(mask).max() == 2  # a disc and an ellipse: one basin each
    assert split_touching(np.zeros((10, 10))).max() == 0


def test_member_sizes_measure_each_network_inside_the_particles_catchment():
    labels = np.zeros((40, 80), np.int32)
    labels[10:20, 10:20] = 1  # 100 px
    labels[10:20, 50:60] = 2
    grown = np.zeros_like(labels)
    grown[9:21, 9:21] = 1  # one network sees particle 1 a pixel larger all round (144 px)
    d, f = member_sizes(labels, [labels > 0, grown > 0], 0.1)
    assert d[0, 0] == pytest.approx(2 * math.sqrt(100 / math.pi) * 0.1)
    assert d[0, 1] == pytest.approx(2 * math.sqrt(144 / math.pi) * 0.1)
    assert np.isnan(d[1, 1]) and np.isfinite(f[1, 0])  # the second network missed particle 2


# ---------------------------------------------------------------------------- guard, truth


def test_domain_guard_flags_three_times_the_training_contrast():
    assert guard.in_domain(3 * 0.44, 0.04, [0.44], 0.04) == 0.0
    assert guard.in_domain(0.9 * 0.44, 0.04, [0.44], 0.04) == 1.0
    assert guard.in_domain(0.44 / 3, 0.04, [0.44], 0.04) == 0.0
    assert guard.in_domain(0.8, 0.04, [0.44, 1.0], 0.04) == 1.0  # an ensemble's range
    assert math.isnan(guard.in_domain(0.44, 0.04, [None], 0.04))  # unknown: not a guess
    assert guard.in_domain(0.44, 0.02, [0.44], 0.04) == 0.0  # half the pixel size
    assert guard.contrast_distance(0.5, 1.0) == pytest.approx(math.log(2))


def test_truth_comparison_with_block_bootstrap():
    assert truth.ks_distance(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4])) == 0.0
    assert truth.ks_distance(np.array([1.0, 2]), np.array([3.0, 4])) == 1.0
    rng = np.random.default_rng(1)
    t = rng.normal(2.2, 0.25, 320)
    blocks = rng.integers(0, 16, 320)
    keep = np.arange(320) % 10 != 0  # 10 % missed
    out = truth.compare_sizes((t[keep] * 1.05, blocks[keep]), (t, blocks), 16, n_boot=300)
    assert out["count_error_pct"] == pytest.approx(-10.0)
    assert out["count_error_pct_lo"] <= -10.0 <= out["count_error_pct_hi"]
    d50_true = np.quantile(t, 0.5, method="inverted_cdf")
    d50_seg = np.quantile(t[keep] * 1.05, 0.5, method="inverted_cdf")
    assert out["d50_bias_nm"] == pytest.approx(d50_seg - d50_true)
    assert out["d50_bias_nm_lo"] <= out["d50_bias_nm"] <= out["d50_bias_nm_hi"]
    assert 0 < out["ks_lo"] <= out["ks"] <= out["ks_hi"] < 0.5


# ---------------------------------------------------------------------------- the command


def random_checkpoint(path: Path, pixel_size_nm: float, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = ResidualUNet(2, (2, 2)).eval()
    return save_checkpoint(path, net, {"pixel_size_nm": pixel_size_nm})


def discs_image(path: Path, pixel_size_nm: float, *, seed: int = 0) -> Path:
    return write_image(path, pixel_size_nm, size=128, seed=seed)


@pytest.mark.parametrize(
    "case, message",
    [
        ("mixed", "b.tif: pixel size 0.021 nm differs from a.tif's 0.02 nm"),
        ("ensemble", "an ensemble's networks must be trained at one pixel size"),
        ("empty", "b.tif: empty image (every pixel is 0)"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path, capsys, case, message):
    a = discs_image(tmp_path / "a.tif", 0.02)
    if case == "empty":
        b = write_calibrated_tiff(tmp_path / "b.tif", np.zeros((64, 64), np.float32), 0.02)
    else:
        b = discs_image(tmp_path / "b.tif", 0.021 if case == "mixed" else 0.02, seed=1)
    models = [str(random_checkpoint(tmp_path / "m1.pt", 0.02))]
    if case == "ensemble":
        models.append(str(random_checkpoint(tmp_path / "m2.pt", 0.04, seed=1)))
    out = tmp_path / "res" / "seg"
    rc = main(["segment", str(a), str(b), "--model", *models, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "res").exists()


def test_ensemble_run_writes_intervals_over_particles_networks_and_images(tmp_path):
    images = [str(discs_image(tmp_path / f"i{k}.tif", 0.02, seed=k)) for k in range(2)]
    models = [str(random_checkpoint(tmp_path / f"m{k}.pt", 0.02, seed=k)) for k in range(2)]
    out = tmp_path / "seg"
    args = ["segment", *images, "--model", *models, "--out", str(out), "--quiet",
            "--min-diameter-nm", "0", "--bootstrap", "200", "--split"]  # fmt: skip
    assert main(args) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary["image"].tolist() == ["i0", "i1", "all"]
    assert (summary["networks"] == 2).all()
    for col in ("d50_nm", "d50_lo_nm", "d50_hi_nm", "dvmean_nm", "feretv90_hi_nm", "in_domain"):
        assert col in summary
    assert summary["in_domain"].isna().all()  # random checkpoints carry no training contrast
    table = pd.read_csv(out / "sizes.csv")
    assert set(table["over"]) == {"particles", "images"}
    assert len(table) == 4 * len(sizes.STATISTICS)  # two images, all over particles and images
    html = (out / "index.html").read_text()
    assert "D50 =" in html and "i1_overlay_full.png" in html


# ------------------------------------------------------------- the boundary-error term


def test_widen_adds_the_term_in_quadrature_to_each_log_half_width():
    lo, hi = sizes.widen(2.0, 2.0 * math.exp(-0.03), 2.0 * math.exp(0.04), 0.03)
    assert lo == pytest.approx(2.0 * math.exp(-math.sqrt(0.03**2 + 0.03**2)), rel=1e-12)
    assert hi == pytest.approx(2.0 * math.exp(0.05), rel=1e-12)  # sqrt(0.04^2 + 0.03^2)
    assert sizes.widen(2.0, 1.9, 2.1, 0.0) == pytest.approx((1.9, 2.1), rel=1e-12)
    assert sizes.widen(2.0, 2.1, 2.2, 0.1)[0] == pytest.approx(2.0 * math.exp(-0.1))  # inverted
    lo, hi = sizes.widen(math.nan, math.nan, math.nan, 0.1)
    assert math.isnan(lo) and math.isnan(hi)
    d = np.array([1.0, 2, 3, 4, 10])
    iv = {k: (1.0, 20.0) for k in sizes.STATISTICS}
    wide = sizes.widen_intervals(d, d, iv, {"d50": 0.2})
    lo = 3 * math.exp(-math.hypot(math.log(3), 0.2))
    hi = 3 * math.exp(math.hypot(math.log(20 / 3), 0.2))
    assert wide["d50"] == pytest.approx((lo, hi))
    assert wide["d90"] == (1.0, 20.0) and sizes.widen_intervals(d, d, iv, None) is iv


def test_between_image_spread_is_the_method_of_moments_with_its_particle_noise_removed():
    mu, tau = calibration.between_images(np.array([-0.1, 0.0, 0.1]), np.array([1e-3, 2e-3, 3e-3]))
    assert mu == 0.0 and tau == pytest.approx(math.sqrt(0.01 - 0.002), rel=1e-12)
    # within-image noise larger than the spread between images: tau = 0, mu stays
    mu, tau = calibration.between_images(np.array([-0.04, -0.02]), np.array([0.01, 0.01]))
    assert (mu, tau) == (pytest.approx(-0.03), 0.0)
    assert all(map(math.isnan, calibration.between_images(np.array([0.1]), np.array([0.0]))))
    cal = calibration.Calibration("s", "test", 8, 40, -0.03, 0.04, [], 1.0)
    assert cal.rms == pytest.approx(0.05)
    assert cal.extra() == {"d50": pytest.approx(1.959964 * 0.05), "d90": pytest.approx(0.0979982)}


def test_without_a_training_store_the_intervals_stay_and_say_so(tmp_path):
    image = str(discs_image(tmp_path / "i.tif", 0.02))
    model = str(random_checkpoint(tmp_path / "m.pt", 0.02))  # its config names no store
    out = tmp_path / "seg"
    assert main(["segment", image, "--model", model, "--out", str(out), "--quiet",
                 "--bootstrap", "100", "--min-diameter-nm", "0"]) == 0  # fmt: skip
    summary = pd.read_csv(out / "summary.csv")
    assert summary["interval_over"].tolist() == ["particles"]
    assert summary["boundary_rms"].isna().all()
    table = pd.read_csv(out / "sizes.csv")
    assert (table["interval_over"] == table["over"]).all()
    assert not (out / "calibration.json").exists()
    assert "no boundary-error term" in (out / "index.html").read_text()


def tiny_store(path: Path, pixel_size_nm: float) -> str:
    """A real patch store of dark discs: 4 test patches from 2 source images."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    masks = np.zeros((4, 64, 64), np.uint8)
    for m, (cy, cx) in zip(masks, rng.integers(16, 48, (4, 2)), strict=True):
        m[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 1
    images = (rng.standard_normal(masks.shape) - 2 * masks).astype(np.float32)
    split = (images, masks, np.array([0, 0, 1, 1]))
    empty = (images[:0], masks[:0], np.zeros(0, int))
    attrs = {"pixel_size_nm": pixel_size_nm, "kind": "synthetic", "contrast": 1.0,
             "sources": ["a", "b"], "preprocessing": {}}  # fmt: skip
    return str(write_store(path, {"train": split, "val": empty, "test": split}, attrs))


def test_cached_term_widens_d50_and_d90_exactly_and_marks_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMSEG_CACHE_DIR", str(tmp_path / "cache"))
    store = tiny_store(tmp_path / "store.zarr", 0.02)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", ResidualUNet(2, (2, 2)).eval(),
                           {"pixel_size_nm": 0.02, "data": store})  # fmt: skip
    models = load_models([str(ckpt)])
    assert models[0].store == store
    measured = [calibration.measure(models, store, min_diameter_nm=0.0, tile=64, batch_size=2)
                for _ in range(2)]  # fmt: skip
    assert [dataclasses.replace(m, seconds=0) for m in measured] == [
        dataclasses.replace(measured[0], seconds=0)
    ] * 2  # deterministic
    # a hand-made term in the cache: segment reads it instead of measuring
    cal = calibration.Calibration(store, "test", 8, 40, -0.03, 0.04, [0.0] * 8, 1.0)
    path = calibration.cache_path(models, read_attrs(store)["content_hash"], min_diameter_nm=0.0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dataclasses.asdict(cal)))
    image = [discs_image(tmp_path / "i.tif", 0.02)]
    opts = {"min_diameter_nm": 0.0, "n_boot": 100}
    plain = segment_images(image, models, tmp_path / "plain", progress=False, log=print,
                           options=SegmentOptions(calibrate=False, **opts))  # fmt: skip
    plain = plain.summary.iloc[0]
    res = segment_images(image, models, tmp_path / "cal", progress=False, log=print,
                         options=SegmentOptions(**opts))  # fmt: skip
    wide = res.summary.iloc[0]
    assert np.isfinite(plain["d50_nm"]) and wide["d50_lo_nm"] < plain["d50_lo_nm"]
    for q in ("d50", "d90"):
        expect = sizes.widen(plain[f"{q}_nm"], plain[f"{q}_lo_nm"], plain[f"{q}_hi_nm"],
                             calibration.Z * 0.05)  # fmt: skip
        assert (wide[f"{q}_lo_nm"], wide[f"{q}_hi_nm"]) == pytest.approx(expect, rel=1e-12)
    assert (wide["d10_lo_nm"], wide["d10_hi_nm"]) == (plain["d10_lo_nm"], plain["d10_hi_nm"])
    # particles needed: from the bootstrap's interval, which shrinks with n; the term does not
    assert (wide["needed_d50"], wide["needed_d90"]) == (plain["needed_d50"], plain["needed_d90"])
    assert wide["interval_over"] == "particles; d50 d90 +boundary"
    assert wide["boundary_rms"] == pytest.approx(0.05)
    kinds = res.sizes.set_index("statistic")["interval_over"]
    assert (kinds["d50"], kinds["d90"]) == ("particles+boundary",) * 2
    assert kinds["d10"] == "particles"
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["tau"] == 0.04
