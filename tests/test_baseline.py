"""Fourier-filtering baseline: band geometry, Nyquist refusal, segmentation, FN overlap."""

from __future__ import annotations

import numpy as np
import pytest

from temseg import baseline
from temseg.baseline import (
    AU_D111_NM,
    AU_D200_NM,
    false_negative_overlap,
    fourier_band,
    fourier_dice,
    fourier_segment,
    pooled_dice,
    reflection_radius_px,
)


def fringed_disc(
    size: int = 256,
    *,
    pixel_size_nm: float = 0.02,
    radius_px: float = 50.0,
    d_nm: float = AU_D111_NM,
    fringe_amplitude: float = 1.0,
    darkening: float = 0.0,
    rng: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A disc of lattice fringes (period d_nm) on white noise; returns (image, mask)."""
    gen = np.random.default_rng(rng)
    yy, xx = np.mgrid[:size, :size].astype(float)
    mask = np.hypot(yy - size / 2, xx - size / 2) <= radius_px
    angle = 0.52  # ~30 degrees: fringes not aligned with the pixel grid
    k = pixel_size_nm / d_nm  # cycles per pixel
    fringes = np.cos(2 * np.pi * k * (xx * np.cos(angle) + yy * np.sin(angle)))
    image = gen.normal(0.0, 1.0, (size, size))
    image += mask * (fringe_amplitude * fringes - darkening)
    return ((image - image.mean()) / image.std()).astype(np.float32), mask


def test_authors_band_at_002_nm_per_px():
    # SPEC.md section 6 (authors' code): radii 38-55 FFT px on 512 px at 0.02 nm/px,
    # i.e. 3.71-5.37 nm^-1, covering {111} at 4.25 and {200} at 4.90 nm^-1.
    band = fourier_band(0.02, 512)
    assert (band.inner_px, band.outer_px) == (38, 55)
    assert band.inner_inv_nm == pytest.approx(3.71, abs=0.005)
    assert band.outer_inv_nm == pytest.approx(5.37, abs=0.005)
    assert 1 / AU_D111_NM == pytest.approx(4.25, abs=0.005)
    assert 1 / AU_D200_NM == pytest.approx(4.90, abs=0.005)
    # radius = patch px * pixel nm / d nm
    assert reflection_radius_px(AU_D111_NM, 0.02, 512) == pytest.approx(43.48, abs=0.005)
    assert reflection_radius_px(AU_D200_NM, 0.02, 512) == pytest.approx(50.22, abs=0.005)


@pytest.mark.parametrize(
    "pixel_size_nm, patch_size", [(0.02, 512), (0.02152, 512), (0.02, 256), (0.05, 512)]
)
def test_band_contains_both_reflections(pixel_size_nm, patch_size):
    band = fourier_band(pixel_size_nm, patch_size)
    for d in (AU_D111_NM, AU_D200_NM):
        r = reflection_radius_px(d, pixel_size_nm, patch_size)
        assert band.inner_px < r < band.outer_px
    assert band.outer_px <= patch_size / 2  # below Nyquist


@pytest.mark.parametrize("pixel_size_nm", [0.1243, 0.1])
def test_refuses_band_above_nyquist(pixel_size_nm):
    # 0.1243 nm/px (paper's low-resolution data): Nyquist 4.02 nm^-1 < Au {111} 4.25 nm^-1
    with pytest.raises(ValueError, match="above Nyquist"):
        fourier_band(pixel_size_nm, 512)
    with pytest.raises(ValueError, match="above Nyquist"):
        fourier_segment(np.zeros((64, 64)), pixel_size_nm)
    assert not baseline.fourier_applicable(pixel_size_nm)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pixel_size_nm"):
        fourier_band(0.0, 512)
    with pytest.raises(ValueError, match="square"):
        fourier_segment(np.zeros((64, 32)), 0.02)
    with pytest.raises(ValueError, match="shape"):
        pooled_dice(np.zeros(3), np.zeros(4))


def test_zeros_in_zeros_out():
    assert not fourier_segment(np.zeros((128, 128)), 0.02).any()


def test_finds_fringed_disc():
    image, mask = fringed_disc()
    pred = fourier_segment(image, 0.02)
    assert pred.shape == mask.shape and pred.dtype == bool
    assert pooled_dice(pred, mask) > 0.85


def test_texture_only_ignores_a_dark_disc_without_fringes():
    # Amplitude contrast alone (no fringes) is invisible to the band-pass: the filter's
    # answer is unrelated to the disc.
    image, mask = fringed_disc(fringe_amplitude=0.0, darkening=1.0)
    assert pooled_dice(fourier_segment(image, 0.02), mask) < 0.5


def test_fourier_dice_on_a_stack():
    pairs = [fringed_disc(rng=s, radius_px=40 + 10 * s) for s in range(3)]
    images = np.stack([p[0] for p in pairs])
    masks = np.stack([p[1] for p in pairs]).astype(np.uint8)
    assert fourier_dice(images, masks, 0.02) > 0.85


def test_pooled_dice_known_values():
    # segmentation_models.pytorch tests/test_losses.py: [1,1,1,1] vs [1,1,0,0] = 2/3
    assert pooled_dice([1, 1, 1, 1], [1, 1, 0, 0]) == pytest.approx(2 / 3)
    assert pooled_dice([0, 0], [0, 0]) == 1.0
    assert pooled_dice([1, 0], [0, 1]) == 0.0


def test_false_negative_overlap_known_values():
    truth = np.array([1, 1, 1, 1, 1, 0, 0])
    network = np.array([1, 1, 0, 0, 0, 1, 0])  # misses 2, 3, 4
    fourier = np.array([0, 1, 0, 1, 0, 0, 1])  # misses 0, 2, 4
    out = false_negative_overlap(network, fourier, truth)
    assert (out["fn_network_px"], out["fn_fourier_px"], out["fn_both_px"]) == (3, 3, 2)
    assert out["fn_jaccard"] == pytest.approx(2 / 4)  # {2, 4} / {0, 2, 3, 4}
    assert out["fn_network_missed_by_fourier"] == pytest.approx(2 / 3)
    perfect = false_negative_overlap(truth, truth, truth)
    assert np.isnan(perfect["fn_jaccard"]) and np.isnan(perfect["fn_network_missed_by_fourier"])
