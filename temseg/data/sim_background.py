"""What surrounds the particles in a multislice image, on the particle's scale, and how
annotators draw them: a carbon film whose thickness varies, contamination patches,
non-flat illumination, and hand-drawn-like polygon labels.

Every function draws only from the generator it is given.

Thickness field: a periodic Gaussian random field (white noise smoothed by a Gaussian of
``correlation_nm``, standardised) mapped through the normal CDF onto [t_min, t_max], so the
thickness is uniform over the range with patches of about ``correlation_nm``. Contamination
patches (hydrocarbon deposits) add Gaussian mounds of carbon, ``height`` high and ``radius``
wide (1/e), on top. Atoms fill the film at the carbon density wherever z < t(x, y).

Illumination: the intensity is multiplied by 1 + a s, s = g + r scaled to mean 0 and
peak-to-peak 1, g a linear ramp of random direction (-1 to 1 across the field), r a smooth
random field (std 1, correlation a quarter of the field): a peak-to-peak variation of ``a``.

Field context: a real patch is cut from a micrograph standardized as a whole (the paper's
4096 px, 88 nm field), a simulated cell is only the patch. :func:`field_statistics` gives
the mean and standard deviation of a modelled field around the cell, fixed by where the
cell's thin carbon sits in it (``carbon_level``, in field sd) and how wide the field's
distribution is (``std_ratio``, field sd over the carbon's sd in the cell); the cell is then
standardized with them (:func:`standardize_in_field`) instead of its own. Both are
calibration constants (docs/physics.md, "Field context").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage, special

THICKNESS_GRID = 128  # the thickness field's samples per side


def smooth_field(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """A periodic (n, n) Gaussian random field of correlation ``sigma_px``, mean 0, std 1."""
    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma_px, mode="wrap")
    return (field - field.mean()) / max(float(field.std()), 1e-12)


def thickness_field(
    rng: np.random.Generator,
    extent_nm: float,
    thickness_nm: Sequence[float],
    *,
    correlation_nm: float,
    patches_per_100nm2: float,
    patch_height_nm: Sequence[float],
    patch_radius_nm: Sequence[float],
) -> np.ndarray:
    """(THICKNESS_GRID, THICKNESS_GRID) film thickness in nm over the periodic cell, [y, x]."""
    n = THICKNESS_GRID
    cell = extent_nm / n
    lo, hi = float(thickness_nm[0]), float(thickness_nm[1])
    z = smooth_field(rng, n, correlation_nm / cell)
    t = lo + (hi - lo) * special.ndtr(z)
    n_patches = int(rng.poisson(patches_per_100nm2 * extent_nm**2 / 100.0))
    coords = (np.arange(n) + 0.5) * cell
    for _ in range(n_patches):
        cy, cx = rng.random(2) * extent_nm
        h = rng.uniform(*patch_height_nm)
        r = rng.uniform(*patch_radius_nm)
        dy = (coords - cy + extent_nm / 2) % extent_nm - extent_nm / 2
        dx = (coords - cx + extent_nm / 2) % extent_nm - extent_nm / 2
        t = t + h * np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / r**2)
    return t


def thickness_at(field: np.ndarray, extent_nm: float, xy_nm: np.ndarray) -> np.ndarray:
    """The film thickness (nm) at points (x, y) in nm, nearest field sample, periodic."""
    n = field.shape[0]
    idx = np.floor(np.asarray(xy_nm) / extent_nm * n).astype(int) % n
    return field[idx[..., 1], idx[..., 0]]


def carve_film(
    box_atoms: np.ndarray, field: np.ndarray, extent_nm: float
) -> np.ndarray:
    """The atoms of a uniform film (z in [0, max t]) that lie below the thickness field."""
    return box_atoms[box_atoms[:, 2] < thickness_at(field, extent_nm, box_atoms[:, :2])]


def illumination(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """(n, n) multiplicative illumination profile, mean ~1 (module notes)."""
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = (np.mgrid[:n, :n] + 0.5) / n * 2 - 1
    ramp = math.cos(angle) * xx + math.sin(angle) * yy
    shape = ramp + smooth_field(rng, n, n / 4)
    shape = (shape - shape.mean()) / float(shape.max() - shape.min())
    return (1.0 + amplitude * shape).astype(np.float32)


def polygon_label(
    mask: np.ndarray, center_yx: Sequence[float], rng: np.random.Generator, *,
    vertices: Sequence[int], jitter_px: float,
) -> np.ndarray:
    """A hand-drawn-like version of one particle's footprint (uint8 0/1, periodic).

    The footprint is rolled so the particle sits in the middle, its outline traced
    (``skimage.measure.find_contours``), ``k`` clicks (k drawn from ``vertices``) placed at
    equal arc length from a random start, each moved by a normal ``jitter_px`` in x and y,
    and the polygon filled (``skimage.draw.polygon``) and rolled back.
    """
    from skimage.draw import polygon
    from skimage.measure import find_contours

    n = mask.shape[0]
    shift = (n // 2 - int(round(center_yx[0])), n // 2 - int(round(center_yx[1])))
    local = np.roll(mask, shift, axis=(0, 1))
    contours = find_contours(np.pad(local, 1).astype(float), 0.5)
    outline = max(contours, key=len) - 1.0
    seg = np.hypot(*np.diff(outline, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    k = int(rng.integers(vertices[0], vertices[1] + 1))
    at = (rng.random() + np.arange(k) / k) % 1.0 * arc[-1]
    ys = np.interp(at, arc, outline[:, 0]) + jitter_px * rng.standard_normal(k)
    xs = np.interp(at, arc, outline[:, 1]) + jitter_px * rng.standard_normal(k)
    out = np.zeros_like(mask)
    rr, cc = polygon(ys, xs, shape=mask.shape)
    out[rr, cc] = 1
    return np.roll(out, (-shift[0], -shift[1]), axis=(0, 1))


def field_statistics(
    image: np.ndarray, mask: np.ndarray, *, carbon_level: float, std_ratio: float
) -> tuple[float, float]:
    """Mean and standard deviation of the modelled field a cell sits in.

    Parameters
    ----------
    image
        The cell (any affine intensity scale: counts, or already standardized).
    mask
        Its label (0 carbon, 1 particle); the carbon is where it is 0 (the whole cell when
        fewer than 2 pixels are).
    carbon_level
        Where the cell's carbon mean sits in the field, in field standard deviations
        (> 0: the field is darker on average than the carbon around the particles).
    std_ratio
        The field's standard deviation over the carbon's in the cell (> 0).

    Notes
    -----
    With the carbon's mean m_c and standard deviation s_c in the cell,
    ``sd = std_ratio * s_c`` and ``mean = m_c - carbon_level * sd``. A flat carbon
    (s_c = 0) counts as s_c = 1 intensity unit.

    Examples
    --------
    >>> img = np.array([[1.0, 3.0], [1.0, 3.0]]); lab = np.array([[0, 0], [1, 1]])
    >>> field_statistics(img, lab, carbon_level=0.5, std_ratio=2.0)  # carbon: mean 2, sd 1
    (1.0, 2.0)
    """
    values = np.asarray(image, dtype=np.float64)
    carbon = values[np.asarray(mask) == 0]
    if carbon.size < 2:
        carbon = values.ravel()
    sd = std_ratio * (float(carbon.std()) or 1.0)
    return float(carbon.mean()) - carbon_level * sd, sd


def standardize_in_field(
    image: np.ndarray, mask: np.ndarray, *, carbon_level: float, std_ratio: float
) -> np.ndarray:
    """The cell standardized with its field's statistics (:func:`field_statistics`), float32:
    its carbon's mean lands at ``carbon_level`` and its carbon's sd at ``1 / std_ratio``."""
    mean, sd = field_statistics(image, mask, carbon_level=carbon_level, std_ratio=std_ratio)
    return ((np.asarray(image, dtype=np.float64) - mean) / sd).astype(np.float32)
