"""Fourier-filtering baseline: segment Au nanoparticles by their lattice fringes alone.

The paper's classical comparison (Sytwu, Groschner & Scott 2022, "Fourier Filtering"; SPEC.md
section 6): FFT of a patch, keep an annulus around the first-order Au reflections, inverse
FFT, magnitude, Gaussian blur, Otsu threshold. It sees texture only (no amplitude contrast),
which is why the paper compares its false negatives with those of small-RF networks
(Figure 7): a network that can only see a few lattice periods should miss what this filter
misses.

The annulus is not hand-tuned per dataset: it follows from the pixel size and the fcc Au
d-spacings (:func:`fourier_band`), and the baseline refuses sampling where the band lies
above Nyquist (the low-resolution 0.1243 nm/px data, where Au fringes cannot be resolved).

Dice here is the pooled hard dice of temseg (SPEC.md section 5): 2 sum(I) / (sum|X| +
sum|Y|) over every pixel of every patch of a split, both-empty counted as 1, the same form
as ``temseg.metrics.dice_masks`` (re-stated here so the baseline needs no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

# One definition each: the lattice constant and the Nyquist frequency of the generator, the
# {111} spacing (0.2355 nm, rounded as the paper) that the preprocessing limits pixels by.
from temseg.data.preprocess import AU_D111_NM
from temseg.data.synth import AU_LATTICE_NM, nyquist_inv_nm  # noqa: F401

# fcc Au, a = 0.4078 nm: d_hkl = a / sqrt(h^2 + k^2 + l^2) (SPEC.md section 4).
AU_D200_NM = 0.2039
AU_D_SPACINGS_NM = (AU_D111_NM, AU_D200_NM)
# Half-width of the band beyond the outermost reflections, in nm^-1; see fourier_band.
BAND_MARGIN_INV_NM = 0.5
# The paper's "Gaussian filter (9 pixel filter size)", read as sigma = 9 px.
BLUR_SIGMA_PX = 9.0


@dataclass(frozen=True)
class FourierBand:
    """The annulus kept by the Fourier filter, in FFT pixels and in nm^-1.

    ``inner_px``/``outer_px`` are radii in FFT pixels of a ``patch_size`` patch (whole
    pixels, as the authors gave them); ``inner_inv_nm``/``outer_inv_nm`` are the same radii as
    spatial frequencies, ``radius_px / (patch_size * pixel_size_nm)``.
    """

    pixel_size_nm: float
    patch_size: int
    inner_px: int
    outer_px: int

    @property
    def inner_inv_nm(self) -> float:
        return self.inner_px / (self.patch_size * self.pixel_size_nm)

    @property
    def outer_inv_nm(self) -> float:
        return self.outer_px / (self.patch_size * self.pixel_size_nm)

    @property
    def nyquist_inv_nm(self) -> float:
        return nyquist_inv_nm(self.pixel_size_nm)


def reflection_radius_px(d_nm: float, pixel_size_nm: float, patch_size: int) -> float:
    """Radius in FFT pixels of the reflection of lattice planes spaced ``d_nm``.

    A fringe of period ``d_nm / pixel_size_nm`` px in a ``patch_size`` px patch completes
    ``patch_size * pixel_size_nm / d_nm`` cycles, which is its distance from the FFT centre.

    >>> round(reflection_radius_px(0.2355, 0.02, 512), 2)  # Au {111}
    43.48
    """
    return patch_size * pixel_size_nm / d_nm


def fourier_band(
    pixel_size_nm: float,
    patch_size: int,
    *,
    d_spacings_nm: tuple[float, ...] = AU_D_SPACINGS_NM,
    margin_inv_nm: float = BAND_MARGIN_INV_NM,
) -> FourierBand:
    """The Fourier-filter annulus for a pixel size and patch size, from the Au d-spacings.

    Parameters
    ----------
    pixel_size_nm
        Sampling of the image, nm per pixel.
    patch_size
        Side of the (square) patch in pixels; FFT radii scale with it.
    d_spacings_nm
        Lattice spacings whose first-order reflections the band must cover; default Au
        {111} and {200}, the dominant first-order peaks of fcc Au.
    margin_inv_nm
        How far the band reaches beyond the outermost reflections, in nm^-1.

    Returns
    -------
    FourierBand
        Inner and outer radius in whole FFT pixels (rounded to nearest).

    Raises
    ------
    ValueError
        If the outer edge of the band lies above Nyquist (``patch_size / 2`` FFT px): the
        fringes are not resolved at this sampling and the baseline does not apply.

    Notes
    -----
    With ``k_d = 1 / d`` the spatial frequency of a reflection, the band is

        [min(k_d) - m, max(k_d) + m]  nm^-1,   radius_px = patch_size * pixel_size_nm * k

    Au {111} is at 4.246 nm^-1 and {200} at 4.904 nm^-1. The margin m = 0.5 nm^-1 is the
    half-width of a reflection broadened by the shape transform of a ~2 nm particle (width
    ~1/D), the smallest particles of the study; it also spans a few percent of lattice strain.
    At 0.02 nm/px and 512 px this gives 38.36 -> 38 and 55.33 -> 55 FFT px, i.e. 3.71-5.37
    nm^-1: exactly the authors' hand-chosen band (SPEC.md section 6).

    Examples
    --------
    >>> b = fourier_band(0.02, 512)
    >>> b.inner_px, b.outer_px, round(b.inner_inv_nm, 2), round(b.outer_inv_nm, 2)
    (38, 55, 3.71, 5.37)
    """
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    if int(patch_size) != patch_size or patch_size < 2:
        raise ValueError(f"patch_size must be an integer >= 2, got {patch_size}")
    if not d_spacings_nm or any(not d > 0 for d in d_spacings_nm):
        raise ValueError(f"d_spacings_nm must be positive spacings, got {d_spacings_nm}")
    if margin_inv_nm < 0:
        raise ValueError(f"margin_inv_nm must be >= 0, got {margin_inv_nm}")
    k = sorted(1.0 / d for d in d_spacings_nm)
    lo_inv_nm = max(k[0] - margin_inv_nm, 0.0)
    hi_inv_nm = k[-1] + margin_inv_nm
    nyq = nyquist_inv_nm(pixel_size_nm)
    if hi_inv_nm > nyq:
        raise ValueError(
            f"Fourier filtering does not apply at {pixel_size_nm} nm/px: the Au band "
            f"{lo_inv_nm:.2f}-{hi_inv_nm:.2f} nm^-1 (d = "
            f"{', '.join(f'{d:.4f}' for d in d_spacings_nm)} nm, margin {margin_inv_nm} nm^-1) "
            f"lies above Nyquist {nyq:.2f} nm^-1 = 1/(2 x {pixel_size_nm} nm); lattice fringes "
            f"are not resolved unless pixels are <= {1 / (2 * hi_inv_nm):.4f} nm"
        )
    scale = patch_size * pixel_size_nm  # FFT px per nm^-1
    inner = int(math.floor(lo_inv_nm * scale + 0.5))
    outer = int(math.floor(hi_inv_nm * scale + 0.5))
    return FourierBand(float(pixel_size_nm), int(patch_size), inner, outer)


def fourier_applicable(pixel_size_nm: float, patch_size: int = 512) -> bool:
    """Whether :func:`fourier_band` accepts this sampling (band below Nyquist)."""
    try:
        fourier_band(pixel_size_nm, patch_size)
    except ValueError:
        return False
    return True


def annulus_mask(patch_size: int, band: FourierBand) -> np.ndarray:
    """Boolean (P, P) mask in unshifted FFT order, True where inner <= radius <= outer px."""
    f = np.fft.fftfreq(patch_size) * patch_size  # integer FFT pixel coordinates
    radius = np.hypot(f[:, None], f[None, :])
    return (radius >= band.inner_px) & (radius <= band.outer_px)


def _check_patch(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected one square 2-D patch (P, P), got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("patch holds NaN or infinite values")
    return image


def fourier_response(
    image: np.ndarray,
    pixel_size_nm: float,
    *,
    blur_sigma_px: float = BLUR_SIGMA_PX,
    band: FourierBand | None = None,
) -> np.ndarray:
    """Blurred magnitude of the band-passed patch: the filter's texture map (P, P), float64."""
    image = _check_patch(image)
    size = image.shape[0]
    band = band or fourier_band(pixel_size_nm, size)
    if band.patch_size != size:
        raise ValueError(f"band was made for {band.patch_size} px patches, patch is {size} px")
    spectrum = np.fft.fft2(image - image.mean())
    filtered = np.fft.ifft2(np.where(annulus_mask(size, band), spectrum, 0))
    return ndimage.gaussian_filter(np.abs(filtered), blur_sigma_px, mode="reflect")


def fourier_segment(
    image: np.ndarray,
    pixel_size_nm: float,
    *,
    blur_sigma_px: float = BLUR_SIGMA_PX,
    band: FourierBand | None = None,
) -> np.ndarray:
    """Segment one patch with the Fourier filter; returns a boolean (P, P) particle mask.

    Parameters
    ----------
    image
        One square patch (P, P), any scale (temseg stores standardized patches).
    pixel_size_nm
        Its sampling; sets the annulus through :func:`fourier_band`.
    blur_sigma_px
        Gaussian blur of the magnitude image, default 9 px (the paper's filter size).
    band
        A precomputed band, to skip recomputing it for every patch.

    Notes
    -----
    FFT -> keep ``inner_px <= |k| <= outer_px`` -> inverse FFT -> magnitude -> Gaussian blur
    -> pixels above the Otsu threshold of this patch are particle. A patch whose response
    is constant (e.g. all zeros) has no texture to find and gives an empty mask.

    Examples
    --------
    >>> fourier_segment(np.zeros((64, 64)), 0.02).any()
    np.False_
    """
    from skimage.filters import threshold_otsu

    response = fourier_response(image, pixel_size_nm, blur_sigma_px=blur_sigma_px, band=band)
    lo, hi = float(response.min()), float(response.max())
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        return np.zeros(response.shape, dtype=bool)
    return response > threshold_otsu(response)


def fourier_segment_batch(
    images: np.ndarray, pixel_size_nm: float, *, blur_sigma_px: float = BLUR_SIGMA_PX
) -> np.ndarray:
    """:func:`fourier_segment` over a stack (n, P, P); returns a boolean stack."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected a stack of patches (n, P, P), got shape {images.shape}")
    band = fourier_band(pixel_size_nm, images.shape[-1])
    out = np.zeros(images.shape, dtype=bool)
    for i, image in enumerate(images):
        out[i] = fourier_segment(image, pixel_size_nm, blur_sigma_px=blur_sigma_px, band=band)
    return out


def pooled_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pooled hard dice 2 sum(I) / (sum|X| + sum|Y|) over all pixels; both empty gives 1.

    >>> pooled_dice(np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0]))
    0.6666666666666666
    """
    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != label shape {truth.shape}")
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, truth).sum()) / total


def fourier_dice(images: np.ndarray, masks: np.ndarray, pixel_size_nm: float) -> float:
    """Pooled hard dice of the Fourier filter on a split (images (n, P, P), masks (n, P, P))."""
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.shape != masks.shape:
        raise ValueError(f"images {images.shape} and masks {masks.shape} differ in shape")
    return pooled_dice(fourier_segment_batch(images, pixel_size_nm), masks)


def false_negative_overlap(
    network: np.ndarray, fourier: np.ndarray, truth: np.ndarray
) -> dict[str, float]:
    """How far a network's false negatives coincide with the Fourier filter's (paper Fig. 7).

    Parameters
    ----------
    network, fourier, truth
        Binary masks of the same shape (one patch or a stack); pooled over all pixels.

    Returns
    -------
    dict
        ``fn_network_px``, ``fn_fourier_px``, ``fn_both_px`` (pixel counts),
        ``fn_jaccard`` = |FN_net and FN_ff| / |FN_net or FN_ff| (similarity of the two
        false-negative maps; NaN when neither misses anything) and
        ``fn_network_missed_by_fourier`` = |FN_net and FN_ff| / |FN_net| (share of the
        network's misses that the Fourier filter also misses; NaN when the network misses
        nothing).

    Notes
    -----
    FN_net = truth and not network; FN_ff = truth and not fourier. The paper's claim is that
    small-RF networks have false-negative maps closer to the Fourier filter's than large-RF
    networks, i.e. a higher ``fn_jaccard``.

    Examples
    --------
    >>> t = np.array([1, 1, 1, 1, 0]); n = np.array([1, 1, 0, 0, 0]); f = np.array([0, 1, 0, 1, 1])
    >>> false_negative_overlap(n, f, t)["fn_jaccard"]  # FN_net {2,3}, FN_ff {0,2}
    0.3333333333333333
    """
    network = np.asarray(network).astype(bool)
    fourier = np.asarray(fourier).astype(bool)
    truth = np.asarray(truth).astype(bool)
    if not network.shape == fourier.shape == truth.shape:
        raise ValueError(
            f"masks differ in shape: network {network.shape}, fourier {fourier.shape}, "
            f"truth {truth.shape}"
        )
    fn_net = truth & ~network
    fn_ff = truth & ~fourier
    both = int((fn_net & fn_ff).sum())
    union = int((fn_net | fn_ff).sum())
    n_net, n_ff = int(fn_net.sum()), int(fn_ff.sum())
    return {
        "fn_network_px": n_net,
        "fn_fourier_px": n_ff,
        "fn_both_px": both,
        "fn_jaccard": both / union if union else float("nan"),
        "fn_network_missed_by_fourier": both / n_net if n_net else float("nan"),
    }


def load_test_split(
    data_path: str, *, split: str = "test", max_patches: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Images, masks and attributes of a temseg patch store's split (first ``max_patches``)."""
    from temseg.data.store import load_split, read_attrs

    attrs = dict(read_attrs(data_path))
    images, masks = load_split(data_path, split)
    if max_patches is not None:
        images, masks = images[:max_patches], masks[:max_patches]
    return np.asarray(images), np.asarray(masks), attrs
