"""Flat-field correction (``--flat-field``): a no-op on evenly lit images, removes a known
illumination ramp, recorded in the store's provenance and carried to segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.io

from temseg.cli import main
from temseg.data.preprocess import (
    correct_flat_field,
    fit_background,
    flat_field_of,
    preprocess,
    preprocessing_record,
)
from temseg.data.store import read_attrs

S = 256


def discs_image(seed: int = 0, level: float = 2000.0) -> tuple[np.ndarray, np.ndarray]:
    """Evenly lit raw counts: a constant background, 16 dark discs (20 % darker), Poisson."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    mask = np.zeros((S, S), bool)
    for cy in range(32, S, 64):
        for cx in range(32, S, 64):
            dy, dx = rng.integers(-8, 9, 2)
            mask |= (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= 18**2
    expected = level * (1 - 0.2 * mask)
    return rng.poisson(expected).astype(np.float32), mask


def ramp(a: float = 0.3) -> np.ndarray:
    """A degree-2 illumination surface, 1 at the centre, from 1 - a to about 1 + a."""
    y, x = np.mgrid[:S, :S] / (S - 1) * 2 - 1
    return 1 + a * (0.6 * y - 0.4 * x + 0.2 * x * y - 0.3 * y * y)


def test_evenly_lit_image_is_left_as_it_was():
    raw, _ = discs_image()
    plain, _ = preprocess(raw, xray_threshold=1500)
    flat, _ = preprocess(raw, xray_threshold=1500, flat_field=True)
    diff = np.abs(flat - plain)
    # the fitted surface is flat to within the shot noise of ~1000 block medians (2000
    # counts, within 3): the standardized image moves by at most 3 % of its spread
    assert diff.max() < 0.03
    assert diff.mean() < 0.01
    bg = fit_background(raw)
    assert np.ptp(bg) / bg.mean() < 0.003  # 1997.5 to 2002.0 counts


def test_a_known_ramp_is_removed():
    raw, mask = discs_image(seed=1)
    even, _ = preprocess(raw, xray_threshold=1500)
    lit = raw * ramp()
    uneven, _ = preprocess(lit, xray_threshold=1500)
    corrected, _ = preprocess(lit, xray_threshold=1500, flat_field=True)
    err_before = np.abs(uneven - even)
    err_after = np.abs(corrected - even)
    assert err_before.max() > 1.0  # the ramp moves the background by whole sigmas
    assert err_after.max() < 0.1
    assert err_after.mean() < 0.01
    # the fitted surface is the ramp times the background level, particles left out
    bg = fit_background(lit)
    rel = bg / (2000 * ramp())
    assert np.abs(rel - 1).max() < 0.01
    # background pixels in the four corners now agree (before: ~2 sigma apart)
    corners = [(slice(0, 32), slice(0, 32)), (slice(-32, None), slice(-32, None))]
    means = [corrected[c][~mask[c]].mean() for c in corners]
    assert abs(means[0] - means[1]) < 0.1


def test_an_exact_polynomial_background_divides_to_a_constant():
    surface = 500.0 * ramp(0.5)
    out = correct_flat_field(surface)
    assert np.allclose(out, surface.mean(), rtol=2e-3)


def test_a_background_that_crosses_zero_is_refused():
    y = np.mgrid[:S, :S][0] / (S - 1)
    with pytest.raises(ValueError, match="must stay > 0"):
        correct_flat_field(100.0 * (y - 0.5))


def test_record_says_whether_and_how():
    off = preprocessing_record("hr", 1500.0)
    on = preprocessing_record("hr", 1500.0, flat_field=True)
    assert "flat_field" not in off and "flat_field_model" not in off
    assert on["flat_field"] is True and "degree-2" in on["flat_field_model"]
    assert flat_field_of(on) and not flat_field_of(off)
    assert not flat_field_of({"xray_threshold": 1500.0})  # a store from before the option
    assert not flat_field_of(None)


def test_ingest_records_flat_field_and_applies_it(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        raw, mask = discs_image(seed=i)
        np.save(src / f"img{i}.npy", raw * ramp())
        png = (mask * 255).astype(np.uint8)
        skimage.io.imsave(src / f"img{i}_mask.png", png, check_contrast=False)
    common = ["--folder", str(src), "--pixel-size-nm", "0.02", "--patch-size", "128"]
    assert main(["ingest", str(tmp_path / "off.zarr"), *common]) == 0
    assert main(["ingest", str(tmp_path / "on.zarr"), *common, "--flat-field"]) == 0
    off, on = read_attrs(tmp_path / "off.zarr"), read_attrs(tmp_path / "on.zarr")
    assert "flat_field" not in off["preprocessing"]
    assert on["preprocessing"]["flat_field"] is True
    assert "flat_field_model" in on["preprocessing"]
    # the measured contrast rises once the ramp no longer widens the background's spread
    assert on["contrast"] > off["contrast"]


def test_store_flat_field_reads_the_store(tmp_path):
    from temseg.data.preprocess import store_flat_field
    from temseg.data.synth import make_synthetic_store

    common = dict(preset="hr-2.2nm", contrast=0.1, images=3, seed=0, image_size=128,
                  patch_size=64, min_particle_px=0)
    on = make_synthetic_store(tmp_path / "on.zarr", flat_field=True, **common)
    off = make_synthetic_store(tmp_path / "off.zarr", **common)
    assert store_flat_field(str(on)) is True
    assert store_flat_field(str(off)) is False
    assert store_flat_field(str(tmp_path / "gone.zarr")) is False and not store_flat_field(None)
