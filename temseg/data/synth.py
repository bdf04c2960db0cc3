"""Synthetic TEM images of Au nanoparticles on amorphous carbon, as raw counts.

A fast phenomenological image model (SPEC.md section 4), built so that particle/background
contrast (``contrast``, C) and texture difficulty (fringe strength, fringe-free fraction) can
be varied independently, which is what tests the paper's hypothesis that the receptive field a
network needs grows as contrast falls. One image, on a grid padded so the lens never wraps:

1. particles: diameters normal around the preset (sd 12 %), placed without overlap (and
   allowed to be cut by the image edge); each a sphere truncated by 6 or 8 facets, with
   projected thickness ``t = sqrt(1 - rho**2)`` (rho: gauge function of the faceted outline).
   The label is the projected footprint ``rho <= 1``.
2. exit wave ``psi = sqrt(A) * exp(i * phi)``:
   A = (1 - C_p * t) * carbon mottle, with C_p = C times a per-particle jitter, so the
   intensity at a particle centre is 1 - C_p (amplitude contrast scaled with thickness);
   phi = carbon phase texture (random, power peaked at 0.22 nm, near Au {111}, which is what
   makes texture alone ambiguous) + particle mean inner potential (phase proportional to
   the projected thickness in nm: ``mean_inner_phase_rad_per_nm * diameter * t``) + lattice
   fringes of fcc Au (a = 0.4078 nm) as a phase grating ``s * t * sum_j w_j cos(2 pi g_j.r)``
   over the reflection sets of a zone axis: [110] (111, 11-1, 002), [100] (020, 002), [111]
   (three 220), a single {111} or {200} set, or none. Reflections above 0.9 of the Nyquist
   frequency are dropped (at 0.1243 nm/px no Au fringe is drawn: it would alias into a
   false moire). Some particles are faint, fringe-free or half-fringed, and 0-2 twin
   boundaries mirror the lattice across a {111}-type plane.
3. lens: ``H(k) = exp(-i chi(k)) E_t(k) E_s(k)`` with ``chi = pi lambda (df + A cos
   2(phi - phi_A)) k^2 + pi/2 Cs lambda^3 k^4`` (300 kV, lambda = 1.969 pm; twofold
   astigmatism A drawn per image, 0-2 nm, random azimuth), temporal and spatial coherence
   envelopes, and an aperture at 0.9 Nyquist; applied by FFT on the padded grid, then
   cropped. HR defocus is drawn per image across Gaussian focus, -12..+12 nm, as in a real
   focal series: at -12 nm sin chi at {111} is ~ -0.97 (strong fringes), near 0 nm the
   phase grating barely transfers and particles show by amplitude contrast only, so texture
   alone cannot find every particle. LR defocus is tens of nm of underfocus.
4. detector: slight Gaussian blur, uneven illumination (gradient and a broad bump),
   Poisson electron counts at the dose (e/A^2 times pixel area), a gain in counts per
   electron, and a few x-ray spikes 20-200x the median.

Version 3 (the default for new stores; ``version=2`` reproduces older ones byte for byte)
changes, by :data:`VERSION_DEFAULTS`: the lattice of a strong, dynamical scatterer, a phase
grating of 0.8 rad with an amplitude part ``absorb *= 1 + fringe_amplitude_ratio * fringe``
that the lens transfers as cos chi (so fringes stay at Gaussian focus, as in multislice);
every fringed particle at full strength (no faint or half-fringed ones); carbon phase texture
0.02 rad instead of 0.05 (multislice fringes stand 5-11x above the carbon); and a detector
DQE of 0.3: counts = gain / DQE * Poisson(DQE * electrons), the noise of a scintillator
camera at the same mean. Tuned with the authors' real-data networks (:mod:`temseg.realism`),
docs/physics.md "Re-tuning the fast generator".

The raw counts then go through :func:`temseg.data.preprocess.preprocess`, exactly as real
files do. Each image draws from its own ``np.random.default_rng([seed, index])`` and draws
every random number before C is used, so a contrast series with one seed holds the same
particles, carbon and lens in every store: only C differs (and the Poisson draw).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

GENERATOR_VERSION = 3  # what new stores get; version 2 stays reproducible by seed

# The dataclass defaults of GeneratorParams are version 2's; a version's entry here changes
# them (a value given by the caller still wins). Version 3 (issue 22) is tuned so that the
# authors' real-data networks score on an hr-5nm store about as on real images (`temseg
# realism`; docs/physics.md, "Re-tuning the fast generator"): lattice fringes a strong,
# dynamical scatterer's (phase 0.8 rad with an amplitude part, every particle fringed, none
# faint), carbon texture weaker than the fringes (0.02 rad), and a detector whose DQE 0.3
# adds the noise of a scintillator camera.
VERSION_DEFAULTS: dict[int, dict[str, Any]] = {
    2: {},
    3: {
        "fringe_phase_rad": 0.8,
        "fringe_amplitude_ratio": 1.0,
        "faint_fraction": 0.0,
        "partial_fringe_fraction": 0.0,
        "carbon_phase_rad": 0.02,
        "dqe": 0.3,
    },
}
# Fields that version 2 did not have: absent from a version-2 store's provenance, and held at
# the values that reproduce version 2 when it is asked for.
V3_FIELDS = ("carbon_peak_width_inv_nm", "carbon_broad", "fringe_amplitude_ratio", "dqe")

# fcc Au (SPEC.md section 4)
AU_LATTICE_NM = 0.4078
D111_NM = AU_LATTICE_NM / math.sqrt(3)  # 0.2355
D200_NM = AU_LATTICE_NM / 2  # 0.2039
D220_NM = AU_LATTICE_NM / math.sqrt(8)  # 0.1442
CARBON_PEAK_NM = 0.22
NYQUIST_FRACTION = 0.9
WAVELENGTH_300KV_NM = 0.0019687

# Zone axes as (in-plane angle in degrees, d-spacing, relative strength) per reflection set.
# Angles are those of the projected reciprocal vectors, e.g. in [110] the 111 and 11-1
# vectors lie at +-35.26 deg from 220 and 002 at 90 deg.
_A111 = math.degrees(math.atan(1 / math.sqrt(2)))  # 35.26
ZONES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "[110]": ((_A111, D111_NM, 1.0), (-_A111, D111_NM, 1.0), (90.0, D200_NM, 0.7)),
    "[100]": ((0.0, D200_NM, 0.8), (90.0, D200_NM, 0.8)),
    "[111]": ((0.0, D220_NM, 0.6), (60.0, D220_NM, 0.6), (120.0, D220_NM, 0.6)),
    "single-111": ((0.0, D111_NM, 1.0),),
    "single-200": ((0.0, D200_NM, 0.8),),
    "none": (),
}
ZONE_WEIGHTS = {
    "[110]": 0.35,
    "[100]": 0.2,
    "[111]": 0.1,
    "single-111": 0.25,
    "single-200": 0.1,
}


@dataclass(frozen=True)
class Preset:
    """A dataset of the paper (Table 1) as the generator's defaults."""

    name: str
    diameter_nm: float
    pixel_size_nm: float
    regime: str  # "hr" or "lr"
    dose: float  # e/A^2
    image_size: int  # the paper's raw image side
    coverage: float  # particle area fraction
    fringe_free_fraction: float
    defocus_nm: tuple[float, float]  # range drawn per image (negative = underfocus)


# HR defocus is drawn per image across Gaussian focus, as in a real focal series: near
# df = 0 the phase grating of the lattice transfers weakly (sin chi at {111} ~ 0), so
# fringes alone cannot find every particle. At -12 nm sin chi({111}) ~ -0.97.
HR_DEFOCUS_NM = (-12.0, 12.0)

PRESETS: dict[str, Preset] = {
    "hr-2.2nm": Preset("hr-2.2nm", 2.2, 0.02, "hr", 423.0, 4096, 0.18, 0.15, HR_DEFOCUS_NM),
    "hr-5nm": Preset("hr-5nm", 5.0, 0.02152, "hr", 423.0, 4096, 0.22, 0.15, HR_DEFOCUS_NM),
    "hr-10nm": Preset("hr-10nm", 10.0, 0.02, "hr", 423.0, 4096, 0.25, 0.15, HR_DEFOCUS_NM),
    "lr-20nm": Preset("lr-20nm", 20.0, 0.1243, "lr", 16.0, 2048, 0.22, 1.0, (-150.0, -30.0)),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class GeneratorParams:
    """Every parameter of the image model; stored whole in a synthetic store's attributes."""

    preset: str
    pixel_size_nm: float
    diameter_nm: float
    contrast: float
    image_size: int
    dose: float  # e/A^2
    fringe_free_fraction: float
    coverage: float
    defocus_nm: tuple[float, float]
    diameter_sd: float = 0.12  # relative
    contrast_jitter: float = 0.15  # relative, per particle
    faint_fraction: float = 0.2  # particles whose fringes are 15-40 % as strong
    partial_fringe_fraction: float = 0.25  # particles whose fringes fade across them
    twin_probabilities: tuple[float, float, float] = (0.6, 0.3, 0.1)  # 0, 1, 2 boundaries
    fringe_phase_rad: float = 0.2  # phase-grating amplitude at full thickness
    # particle phase from the mean inner potential per nm of projected thickness (a full-
    # thickness 2.2 nm particle: 0.15 rad); scales with size, as the potential integrates
    mean_inner_phase_rad_per_nm: float = 0.068
    thickness_exponent: float = 3.0  # t = sqrt(1 - rho**e); 2 is a sphere, larger is flatter
    carbon_phase_rad: float = 0.05  # std of the carbon phase texture
    carbon_peak_nm: float = CARBON_PEAK_NM
    carbon_peak_width_inv_nm: float = 0.7  # sd of the carbon spectrum's ring around 1/peak
    carbon_broad: float = 0.25  # weight of its broad part, 1 / (1 + k^2) (k in nm^-1)
    mottle: float = 0.015  # std of the carbon thickness (amplitude) mottle
    mottle_nm: float = 1.5  # its correlation length
    cs_mm: tuple[float, float] = (0.0, 0.02)  # aberration-corrected
    astigmatism_nm: tuple[float, float] = (0.0, 2.0)  # twofold, magnitude drawn per image
    focal_spread_nm: float = 3.0
    convergence_mrad: float = 0.05
    voltage_kv: float = 300.0
    blur_px: float = 0.6
    illumination: float = 0.08  # amplitude of the illumination gradient and bump
    # lattice amplitude modulation per rad of fringe phase (a strong, dynamical scatterer);
    # it transfers as cos chi where the phase grating transfers as sin chi
    fringe_amplitude_ratio: float = 0.0
    dqe: float = 1.0  # detective quantum efficiency: counts ~ Poisson(dqe * electrons) / dqe
    gain: float = 10.0  # counts per electron
    xray_spikes_per_mpx: float = 12.0
    pad_px: int = 32
    version: int = 2  # the defaults above are version 2's; generator_params applies others

    def to_dict(self) -> dict[str, Any]:
        """Every field (a version-2 store's provenance: without the fields v2 lacked)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if self.version >= 3 or k not in V3_FIELDS
        }


def generator_params(
    preset: str,
    *,
    contrast: float,
    image_size: int | None = None,
    fringe_free_fraction: float | None = None,
    dose: float | None = None,
    **overrides: Any,
) -> GeneratorParams:
    """The parameters of a preset with the given overrides, validated."""
    p = get_preset(preset)
    if not 0.0 <= float(contrast) < 1.0:
        raise ValueError(f"contrast C must lie in [0, 1), got {contrast}")
    size = p.image_size if image_size is None else int(image_size)
    if size < 16:
        raise ValueError(f"image_size must be >= 16 px, got {size}")
    ff = p.fringe_free_fraction if fringe_free_fraction is None else float(fringe_free_fraction)
    if not 0.0 <= ff <= 1.0:
        raise ValueError(f"fringe_free_fraction must lie in [0, 1], got {ff}")
    d = p.dose if dose is None else float(dose)
    if not d > 0:
        raise ValueError(f"dose must be > 0 e/A^2, got {d}")
    known = {f.name for f in dataclasses.fields(GeneratorParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown generator parameter(s) {unknown}; valid: {sorted(known)}")
    version = int(overrides.pop("version", GENERATOR_VERSION))
    if version not in VERSION_DEFAULTS:
        raise ValueError(f"version {version}: valid generator versions {sorted(VERSION_DEFAULTS)}")
    if version < 3 and (late := sorted(set(overrides) & set(V3_FIELDS))):
        raise ValueError(f"{late[0]} needs generator version 3 or later (asked for {version})")
    fields: dict[str, Any] = {
        "preset": p.name,
        "pixel_size_nm": p.pixel_size_nm,
        "diameter_nm": p.diameter_nm,
        "coverage": p.coverage,
        "defocus_nm": p.defocus_nm,
        **VERSION_DEFAULTS[version],
        "version": version,
    }
    fields.update(overrides)  # a preset's value is a default, never a second keyword
    fields.update(contrast=float(contrast), image_size=size, dose=d, fringe_free_fraction=ff)
    for name in ("defocus_nm", "cs_mm", "astigmatism_nm"):
        if name not in fields:
            continue
        value = fields[name]
        pair = [value, value] if isinstance(value, (int, float)) else list(value)
        if len(pair) != 2 or not float(pair[0]) <= float(pair[1]):
            raise ValueError(f"{name} must be a range (min, max) with min <= max, got {value}")
        fields[name] = (float(pair[0]), float(pair[1]))
    if not float(fields["pixel_size_nm"]) > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {fields['pixel_size_nm']}")
    if not 0.0 < float(fields["coverage"]) < 0.6:
        raise ValueError(f"coverage must lie in (0, 0.6), got {fields['coverage']}")
    if not float(fields["diameter_nm"]) > 0:
        raise ValueError(f"diameter_nm must be > 0, got {fields['diameter_nm']}")
    if not 0.0 < float(fields.get("dqe", 1.0)) <= 1.0:
        raise ValueError(f"dqe must lie in (0, 1], got {fields['dqe']}")
    return GeneratorParams(**fields)


# ----------------------------------------------------------------------------- physics


def nyquist_inv_nm(pixel_size_nm: float) -> float:
    """Nyquist frequency 1 / (2 * pixel) in nm^-1."""
    return 1.0 / (2.0 * pixel_size_nm)


def lattice_reflections(
    zone: str, angle_deg: float, pixel_size_nm: float
) -> list[tuple[float, float, float]]:
    """Reciprocal vectors (gy, gx in nm^-1, strength) of a zone axis that can be drawn.

    A set whose spatial frequency 1/d exceeds 0.9 of the Nyquist frequency is dropped:
    drawing it would alias into a false moire.

    Examples
    --------
    >>> len(lattice_reflections("[110]", 0.0, 0.02)), len(lattice_reflections("[110]", 0.0, 0.1243))
    (3, 0)
    """
    if zone not in ZONES:
        raise ValueError(f"unknown zone {zone!r}; valid zones: {', '.join(ZONES)}")
    limit = NYQUIST_FRACTION * nyquist_inv_nm(pixel_size_nm)
    out = []
    for ang, d, w in ZONES[zone]:
        k = 1.0 / d
        if k > limit:
            continue
        a = math.radians(ang + angle_deg)
        out.append((k * math.sin(a), k * math.cos(a), w))
    return out


def wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength in nm (300 kV: 0.001969 nm)."""
    v = voltage_kv * 1e3
    h, m0, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 2.99792458e8
    return h / math.sqrt(2 * m0 * e * v * (1 + e * v / (2 * m0 * c**2))) * 1e9


def transfer_function(
    n: int,
    pixel_size_nm: float,
    *,
    defocus_nm: float,
    cs_mm: float,
    focal_spread_nm: float,
    convergence_mrad: float,
    voltage_kv: float,
    astigmatism_nm: float = 0.0,
    astigmatism_angle_rad: float = 0.0,
) -> np.ndarray:
    """Lens transfer ``exp(-i chi) E_t E_s`` on an n x n FFT grid (complex64), aperture at
    0.9 Nyquist.

    Notes
    -----
    chi(k) = pi lambda (df + A cos 2(phi - phi_A)) k^2 + (pi/2) Cs lambda^3 k^4 (twofold
    astigmatism A at azimuth phi_A);
    E_t = exp(-(pi lambda Delta)^2 k^4 / 2) (focal spread Delta);
    E_s = exp(-(pi alpha / lambda)^2 (df lambda k + Cs lambda^3 k^3)^2) (convergence alpha).
    """
    lam = wavelength_nm(voltage_kv)
    # float32 is ample (chi stays below ~100 rad) and keeps this a few ms per image
    f = sfft.fftfreq(n, d=pixel_size_nm).astype(np.float32)
    k2 = f[:, None] ** 2 + f[None, :] ** 2
    k = np.sqrt(k2)
    cs = cs_mm * 1e6
    chi = np.float32(np.pi * lam * defocus_nm) * k2 + np.float32(0.5 * np.pi * cs * lam**3) * (
        k2 * k2
    )
    if astigmatism_nm:
        fy, fx = f[:, None], f[None, :]
        c2, s2 = math.cos(2 * astigmatism_angle_rad), math.sin(2 * astigmatism_angle_rad)
        chi += np.float32(np.pi * lam * astigmatism_nm) * (
            (fx * fx - fy * fy) * c2 + 2 * fx * fy * s2
        )
    spatial = np.float32(defocus_nm * lam) * k + np.float32(cs * lam**3) * k * k2
    alpha = convergence_mrad * 1e-3
    damping = np.float32(0.5 * (np.pi * lam * focal_spread_nm) ** 2) * (k2 * k2) + np.float32(
        (np.pi * alpha / lam) ** 2
    ) * (spatial * spatial)
    env = np.exp(-damping)
    env[k > NYQUIST_FRACTION * nyquist_inv_nm(pixel_size_nm)] = 0
    h = np.empty((n, n), dtype=np.complex64)
    h.real = np.cos(chi) * env
    h.imag = -np.sin(chi) * env
    return h


def _radial_field(
    rng: np.random.Generator,
    n: int,
    pixel_size_nm: float,
    spectrum: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """A real Gaussian random field (n x n, std 1) with radial amplitude spectrum ``spectrum(k)``."""
    fy = sfft.fftfreq(n, d=pixel_size_nm).astype(np.float32)
    fx = sfft.rfftfreq(n, d=pixel_size_nm).astype(np.float32)
    k = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = spectrum(k).astype(np.float32)
    amp[k > NYQUIST_FRACTION * nyquist_inv_nm(pixel_size_nm)] = 0
    noise = rng.standard_normal((2, n, fx.size), dtype=np.float32)
    z = np.empty((n, fx.size), dtype=np.complex64)
    z.real = noise[0] * amp
    z.imag = noise[1] * amp
    z[0, 0] = 0
    out = sfft.irfft2(z, s=(n, n), overwrite_x=True)
    std = float(out.std())
    return (out / std if std > 0 else out).astype(np.float32, copy=False)


@dataclass
class Particle:
    """One generated particle (image coordinates, px), for tests and previews."""

    center_yx: tuple[float, float]
    diameter_nm: float
    contrast: float
    zone: str
    angle_deg: float
    fringe_phase_rad: float
    reflections: list[tuple[float, float, float]] = field(default_factory=list)
    twins: int = 0
    faint: bool = False
    partial: bool = False
    # the footprint (the label) as drawn, faceted and scaled: its pixels inside the image,
    # and whether it reaches the image's edge rows/columns or beyond (cut by the edge)
    area_px: int = 0
    touches_border: bool = False


@dataclass
class Rendered:
    """One synthetic image: raw counts, label, noise-free expected counts and its makings."""

    counts: np.ndarray  # (S, S) float32 raw counts, with x-ray spikes
    mask: np.ndarray  # (S, S) uint8
    expected: np.ndarray  # (S, S) float32 expected counts (gain * electrons), no noise/spikes
    particles: list[Particle]
    lens: dict[str, float]


def _place_particles(
    params: GeneratorParams, rng: np.random.Generator
) -> list[tuple[float, float, float]]:
    """Non-overlapping (cy, cx, radius px) in image coordinates, possibly cut by the edge."""
    s = params.image_size
    r_mean = params.diameter_nm / params.pixel_size_nm / 2
    margin = 0.3 * r_mean
    span = s + 2 * margin
    coverage = params.coverage * rng.uniform(0.7, 1.3)
    n_target = max(1, int(round(coverage * span * span / (math.pi * r_mean**2))))
    # Draw all candidates at once (a fixed count keeps the draws independent of C), then
    # accept them in order unless they overlap one already placed (gap 4 % of a diameter).
    tries = 40 * n_target
    cys = rng.uniform(-margin, s + margin, tries)
    cxs = rng.uniform(-margin, s + margin, tries)
    radii = r_mean * np.clip(1 + params.diameter_sd * rng.standard_normal(tries), 0.5, 1.6)
    placed = np.zeros((n_target, 3))
    n = 0
    for cy, cx, r in zip(cys.tolist(), cxs.tolist(), radii.tolist(), strict=True):
        if n >= n_target:
            break
        p = placed[:n]
        if (
            n
            and (
                ((p[:, 0] - cy) ** 2 + (p[:, 1] - cx) ** 2) < (p[:, 2] + r + 0.08 * r_mean) ** 2
            ).any()
        ):
            continue
        placed[n] = (cy, cx, r)
        n += 1
    return [(float(cy), float(cx), float(r)) for cy, cx, r in placed[:n]]


def _particle_design(params: GeneratorParams, rng: np.random.Generator) -> dict:
    """Every random choice for one particle (drawn in a fixed order, independent of C)."""
    n_facets = int(rng.choice([6, 8]))
    theta0 = rng.uniform(0, 2 * np.pi)
    facet_angles = theta0 + 2 * np.pi * np.arange(n_facets) / n_facets
    facet_angles = facet_angles + rng.uniform(-0.1, 0.1, n_facets)
    facet_dist = rng.uniform(0.93, 1.0, n_facets)  # relative to the outline radius
    zones = list(ZONE_WEIGHTS)
    w = np.array([ZONE_WEIGHTS[z] for z in zones])
    zone = zones[int(rng.choice(len(zones), p=w / w.sum()))]
    fringe_free = rng.random() < params.fringe_free_fraction
    if fringe_free:
        zone = "none"
    faint = rng.random() < params.faint_fraction
    strength = params.fringe_phase_rad * rng.uniform(0.75, 1.25)
    if faint:
        strength *= rng.uniform(0.15, 0.4)
    partial = rng.random() < params.partial_fringe_fraction
    fade_angle = rng.uniform(0, 2 * np.pi)
    fade_offset = rng.uniform(-0.3, 0.3)
    twins = int(
        rng.choice(3, p=np.asarray(params.twin_probabilities) / sum(params.twin_probabilities))
    )
    twin_offsets = np.sort(rng.uniform(-0.6, 0.6, 2))[:twins]
    return {
        "facet_angles": facet_angles,
        "facet_dist": facet_dist,
        "zone": zone,
        "angle_deg": float(rng.uniform(0, 360)),
        "phases": rng.uniform(0, 2 * np.pi, 3),
        "strength": float(strength),
        "faint": bool(faint),
        "partial": bool(partial),
        "fade_angle": fade_angle,
        "fade_offset": fade_offset,
        "twins": twins,
        "twin_offsets": twin_offsets,
        "twin_set": int(rng.integers(0, 3)),
        "contrast_factor": float(1 + params.contrast_jitter * rng.uniform(-1, 1)),
        "radius_scale": float(rng.uniform(0.98, 1.04)),
    }


def _draw_particle(
    params: GeneratorParams,
    design: dict,
    cy: float,
    cx: float,
    radius_px: float,
    n: int,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, Particle] | None:
    """Thickness t (0..1) and fringe phase of one particle on its bounding box of the padded
    grid (particle centre given in padded coordinates)."""
    rc = radius_px * design["radius_scale"]
    y0, y1 = max(int(math.floor(cy - rc)) - 1, 0), min(int(math.ceil(cy + rc)) + 2, n)
    x0, x1 = max(int(math.floor(cx - rc)) - 1, 0), min(int(math.ceil(cx + rc)) + 2, n)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]
    # gauge function of a sphere truncated by facets: rho <= 1 inside
    rho = np.sqrt(yy * yy + xx * xx) / rc
    for ang, dist in zip(design["facet_angles"], design["facet_dist"], strict=True):
        proj = (yy * math.sin(ang) + xx * math.cos(ang)) / (dist * rc)
        np.maximum(rho, proj, out=rho)
    inside = rho <= 1.0
    if not inside.any():
        return None
    profile = 1.0 - rho**params.thickness_exponent
    t = np.where(inside, np.sqrt(np.clip(profile, 0.0, 1.0)), 0.0).astype(np.float32)

    refl = lattice_reflections(design["zone"], design["angle_deg"], params.pixel_size_nm)
    fringe = np.zeros_like(t)
    if refl:
        px = params.pixel_size_nm
        ys_nm, xs_nm = yy * px, xx * px
        twin_dir = refl[design["twin_set"] % len(refl)]
        gnorm = math.hypot(twin_dir[0], twin_dir[1])
        ny_, nx_ = twin_dir[0] / gnorm, twin_dir[1] / gnorm
        side = np.zeros(t.shape, dtype=bool)
        for off in design["twin_offsets"]:
            side ^= (ys_nm * ny_ + xs_nm * nx_) > off * rc * px
        for (gy, gx, w), ph in zip(refl, design["phases"], strict=False):
            wave = np.cos(2 * np.pi * (gy * ys_nm + gx * xs_nm) + ph)
            if design["twins"]:
                # mirror across the twin plane (normal along the chosen {111}-type set)
                dot = gy * ny_ + gx * nx_
                my, mx = gy - 2 * dot * ny_, gx - 2 * dot * nx_
                mirrored = np.cos(2 * np.pi * (my * ys_nm + mx * xs_nm) + ph)
                wave = np.where(side, mirrored, wave)
            fringe += w * wave.astype(np.float32)
        env = t * design["strength"]
        if design["partial"]:
            a = design["fade_angle"]
            u = (yy * math.sin(a) + xx * math.cos(a)) / rc - design["fade_offset"]
            env = env * np.clip(0.5 + 2.0 * u, 0.0, 1.0)
        fringe *= env
    particle = Particle(
        center_yx=(cy - params.pad_px, cx - params.pad_px),
        diameter_nm=2 * radius_px * params.pixel_size_nm,
        contrast=float(min(params.contrast * design["contrast_factor"], 0.95)),
        zone=design["zone"],
        angle_deg=design["angle_deg"],
        fringe_phase_rad=design["strength"] if refl else 0.0,
        reflections=refl,
        twins=design["twins"] if refl else 0,
        faint=design["faint"],
        partial=design["partial"],
    )
    return (slice(y0, y1), slice(x0, x1)), t, fringe, particle


@dataclass(frozen=True)
class _Draws:
    """Every random draw of one image, made before C is used (so a contrast series with one
    seed holds the same particles, carbon and lens at every level)."""

    placements: list[tuple[float, float, float]]
    designs: list[dict]
    carbon: np.ndarray  # (n, n) carbon phase texture, std 1
    mottle: np.ndarray  # (n, n) carbon amplitude mottle, std 1
    lens: dict[str, float]  # defocus_nm, cs_mm, astigmatism_nm, astigmatism_angle_rad
    illum: np.ndarray  # (3,) gradient y, gradient x, bump strength
    bump_c: np.ndarray  # (2,) bump centre (y, x) px
    bump_w: float  # bump width px
    spike_seed: int
    noise_seed: int


def _draw(params: GeneratorParams, rng: np.random.Generator, n: int) -> _Draws:
    """The image's random draws on the padded ``n`` x ``n`` grid, in a fixed order."""
    px = params.pixel_size_nm
    placements = _place_particles(params, rng)
    designs = [_particle_design(params, rng) for _ in placements]
    k0 = 1.0 / params.carbon_peak_nm
    w, broad = params.carbon_peak_width_inv_nm, params.carbon_broad
    carbon = _radial_field(
        rng, n, px, lambda k: np.exp(-((k - k0) ** 2) / (2 * w**2)) + broad / (1 + (k / 1.0) ** 2)
    )
    lc = params.mottle_nm
    mottle = _radial_field(rng, n, px, lambda k: np.exp(-((np.pi * lc * k) ** 2) / 2))
    lens = {
        "defocus_nm": float(rng.uniform(*params.defocus_nm)),
        "cs_mm": float(rng.uniform(*params.cs_mm)),
        "astigmatism_nm": float(rng.uniform(*params.astigmatism_nm)),
        "astigmatism_angle_rad": float(rng.uniform(0, np.pi)),
    }
    s = params.image_size
    illum = rng.uniform(-1, 1, 3) * params.illumination
    bump_c = rng.uniform(0.2, 0.8, 2) * s
    bump_w = float(rng.uniform(0.3, 0.8) * s)
    spike_seed = int(rng.integers(2**31))
    noise_seed = int(rng.integers(2**31))
    return _Draws(
        placements, designs, carbon, mottle, lens, illum, bump_c, bump_w, spike_seed, noise_seed
    )


def _exit_wave(
    params: GeneratorParams, draws: _Draws, n: int
) -> tuple[np.ndarray, np.ndarray, list[Particle]]:
    """The exit wave on the padded grid, the padded label, and the particles that reach into
    the image."""
    s, pad = params.image_size, params.pad_px
    absorb = np.ones((n, n), dtype=np.float32)
    absorb -= params.mottle * draws.mottle
    phase = params.carbon_phase_rad * draws.carbon
    mask_pad = np.zeros((n, n), dtype=np.uint8)
    particles = []
    for (cy, cx, r), design in zip(draws.placements, draws.designs, strict=True):
        drawn = _draw_particle(params, design, cy + pad, cx + pad, r, n)
        if drawn is None:
            continue
        sl, t, fringe, particle = drawn
        absorb[sl] *= 1.0 - particle.contrast * t
        if params.fringe_amplitude_ratio:
            absorb[sl] *= 1.0 + params.fringe_amplitude_ratio * fringe
        phase[sl] += params.mean_inner_phase_rad_per_nm * particle.diameter_nm * t + fringe
        mask_pad[sl] |= (t > 0).astype(np.uint8)
        particle.area_px, particle.touches_border = _footprint_in_image(sl, t > 0, pad, s)
        if (
            0 <= particle.center_yx[0] + r
            and particle.center_yx[0] - r < s
            and 0 <= particle.center_yx[1] + r
            and particle.center_yx[1] - r < s
        ):
            particles.append(particle)
    np.clip(absorb, 0.0, None, out=absorb)
    amplitude = np.sqrt(absorb)
    wave = np.empty((n, n), dtype=np.complex64)
    wave.real = amplitude * np.cos(phase)
    wave.imag = amplitude * np.sin(phase)
    return wave, mask_pad, particles


def _image_intensity(
    params: GeneratorParams, wave: np.ndarray, lens: dict[str, float]
) -> np.ndarray:
    """The wave through the lens, cropped to the image: its intensity (S, S)."""
    s, pad = params.image_size, params.pad_px
    h = transfer_function(
        wave.shape[0],
        params.pixel_size_nm,
        defocus_nm=lens["defocus_nm"],
        cs_mm=lens["cs_mm"],
        focal_spread_nm=params.focal_spread_nm,
        convergence_mrad=params.convergence_mrad,
        voltage_kv=params.voltage_kv,
        astigmatism_nm=lens["astigmatism_nm"],
        astigmatism_angle_rad=lens["astigmatism_angle_rad"],
    )
    spectrum = sfft.fft2(wave, overwrite_x=True)
    spectrum *= h
    image_wave = sfft.ifft2(spectrum, overwrite_x=True)
    cropped = image_wave[pad : pad + s, pad : pad + s]
    return cropped.real**2 + cropped.imag**2


def _detect(
    params: GeneratorParams, intensity: np.ndarray, draws: _Draws
) -> tuple[np.ndarray, np.ndarray]:
    """Blur, uneven illumination, Poisson counts at the dose and x-ray spikes: (counts,
    expected counts)."""
    s, px = params.image_size, params.pixel_size_nm
    if params.blur_px > 0:
        intensity = ndimage.gaussian_filter(intensity, params.blur_px, mode="reflect")
    yy = (np.arange(s, dtype=np.float32) / s - 0.5)[:, None]
    xx = (np.arange(s, dtype=np.float32) / s - 0.5)[None, :]
    bump_c, bump_w, illum = draws.bump_c, draws.bump_w, draws.illum
    bump = np.exp(
        -(((yy + 0.5) * s - bump_c[0]) ** 2 + ((xx + 0.5) * s - bump_c[1]) ** 2) / (2 * bump_w**2)
    )
    light = 1.0 + illum[0] * yy * 2 + illum[1] * xx * 2 + illum[2] * bump
    electrons = intensity * light * (params.dose * (10.0 * px) ** 2)
    expected = (params.gain * electrons).astype(np.float32)
    noise_rng = np.random.default_rng(draws.noise_seed)
    if params.dqe == 1.0:
        counts = params.gain * noise_rng.poisson(electrons).astype(np.float32)
    else:  # fewer detected electrons, the same mean signal
        detected = noise_rng.poisson(params.dqe * electrons).astype(np.float32)
        counts = (params.gain / params.dqe) * detected
    _add_xray_spikes(counts, params, np.random.default_rng(draws.spike_seed))
    return counts, expected


def render_image(params: GeneratorParams, rng: np.random.Generator) -> Rendered:
    """Render one synthetic image (raw counts) and its label.

    Parameters
    ----------
    params
        The image model (see :class:`GeneratorParams` and the module docstring).
    rng
        Source of every random draw.

    Returns
    -------
    Rendered
        ``counts`` raw counts (gain * Poisson electrons, plus x-ray spikes), ``mask`` 0/1,
        ``expected`` the noise-free expected counts, the particles and the lens parameters.

    Notes
    -----
    Electrons per pixel = dose [e/A^2] * (10 * pixel_size_nm)^2 [A^2] * intensity; the
    counts are ``gain`` times a Poisson draw of that, so their variance is ``gain`` times
    their mean: the dose sets the Poisson variance.
    """
    s, pad = params.image_size, params.pad_px
    n = sfft.next_fast_len(s + 2 * pad)
    draws = _draw(params, rng, n)  # every random draw first, none depends on C
    wave, mask_pad, particles = _exit_wave(params, draws, n)
    intensity = _image_intensity(params, wave, draws.lens)
    mask = mask_pad[pad : pad + s, pad : pad + s].copy()
    counts, expected = _detect(params, intensity, draws)
    lens = {k: draws.lens[k] for k in ("defocus_nm", "cs_mm", "astigmatism_nm")}
    return Rendered(counts, mask, expected, particles, lens)


def _footprint_in_image(
    sl: tuple[slice, slice], footprint: np.ndarray, pad: int, size: int
) -> tuple[int, bool]:
    """Pixels of a footprint (on the padded grid at ``sl``) inside the ``size`` x ``size``
    image, and whether it lies on an edge row/column or beyond the image."""
    ys, xs = np.nonzero(footprint)
    ys = ys + sl[0].start - pad
    xs = xs + sl[1].start - pad
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    if not inside.all():
        return int(inside.sum()), True
    edge = (ys == 0) | (ys == size - 1) | (xs == 0) | (xs == size - 1)
    return int(inside.sum()), bool(edge.any())


def _add_xray_spikes(counts: np.ndarray, params: GeneratorParams, rng: np.random.Generator) -> None:
    """A few single-pixel or 2-pixel spikes 20-200x the median, in place."""
    s = counts.shape[0]
    n = rng.poisson(params.xray_spikes_per_mpx * s * s / 1e6)
    if n == 0:
        return
    median = float(np.median(counts[:: max(1, s // 128), :: max(1, s // 128)]))
    base = max(median, params.gain)
    ys = rng.integers(0, s, n)
    xs = rng.integers(0, s, n)
    amp = base * np.exp(rng.uniform(np.log(20), np.log(200), n))
    extra = rng.random(n) < 0.4
    for y, x, a, e in zip(ys, xs, amp, extra, strict=True):
        counts[y, x] = a
        if e:
            counts[y, min(x + 1, s - 1)] = 0.6 * a


# ----------------------------------------------------------------------------- micrographs

PARTICLE_LIST_COLUMNS = [
    "particle",
    "center_x_nm",
    "center_y_nm",
    "diameter_nm",
    "area_px",
    "area_nm2",
    "footprint_diameter_nm",
    "touches_border",
    "contrast",
    "zone",
    "faint",
    "partial",
    "twins",
]


def particle_list(particles: Sequence[Particle], pixel_size_nm: float) -> list[dict[str, Any]]:
    """The generator's particles as table rows (:data:`PARTICLE_LIST_COLUMNS`).

    ``diameter_nm`` is the particle's drawn sphere diameter (before its faceted outline and
    a 0.98-1.04 radius scale); ``area_px`` and ``footprint_diameter_nm`` (equivalent circle,
    ``2 sqrt(area_nm2 / pi)``) are those of its label inside the image.
    """
    rows = []
    for i, p in enumerate(particles):
        area_nm2 = p.area_px * pixel_size_nm**2
        rows.append(
            {
                "particle": i,
                "center_x_nm": p.center_yx[1] * pixel_size_nm,
                "center_y_nm": p.center_yx[0] * pixel_size_nm,
                "diameter_nm": p.diameter_nm,
                "area_px": p.area_px,
                "area_nm2": area_nm2,
                "footprint_diameter_nm": 2 * math.sqrt(area_nm2 / math.pi),
                "touches_border": p.touches_border,
                "contrast": p.contrast,
                "zone": p.zone,
                "faint": p.faint,
                "partial": p.partial,
                "twins": p.twins,
            }
        )
    return rows


def write_micrograph(
    out: str | os.PathLike,
    *,
    preset: str,
    contrast: float,
    seed: int,
    image_size: int | None = None,
    index: int = 0,
    overwrite: bool = False,
    **knobs: Any,
) -> dict[str, Path]:
    """Write one whole synthetic micrograph, its true mask and its particle list.

    Parameters
    ----------
    out
        ``OUT.tif``: raw counts (float32) with the pixel size as ImageJ calibration, which
        ``temseg segment`` and ``temseg ingest`` read. Beside it ``OUT_mask.tif`` (uint8 0/1,
        same calibration) and ``OUT_particles.csv`` (:func:`particle_list`).
    preset, contrast, image_size, knobs
        As for :func:`make_synthetic_store` (``image_size`` default: the paper's raw size).
    seed, index
        The image draws from ``default_rng([seed, index])``: image ``index`` of a store made
        with the same seed, preset, contrast, size and knobs.

    Returns
    -------
    dict
        Paths ``image``, ``mask``, ``particles``.
    """
    import csv

    from temseg.data.readers import write_calibrated_tiff

    out = Path(out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"{out}: the micrograph is written as TIFF; name it OUT.tif")
    paths = {
        "image": out,
        "mask": out.with_name(out.stem + "_mask" + out.suffix),
        "particles": out.with_name(out.stem + "_particles.csv"),
    }
    for path in paths.values():
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    params = generator_params(preset, contrast=contrast, image_size=image_size, **knobs)
    rendered = render_image(params, np.random.default_rng([int(seed), int(index)]))
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = particle_list(rendered.particles, params.pixel_size_nm)
    tmp = paths["particles"].with_name(f".{paths['particles'].name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, PARTICLE_LIST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    write_calibrated_tiff(paths["image"], rendered.counts, params.pixel_size_nm)
    write_calibrated_tiff(paths["mask"], rendered.mask, params.pixel_size_nm)
    os.replace(tmp, paths["particles"])
    return paths


# ----------------------------------------------------------------------------- stores


def store_name(preset: str, contrast: float, seed: int) -> str:
    """Readable store name of a contrast-series member, e.g. ``hr-2.2nm-c0.060-s0.zarr``."""
    return f"{preset}-c{contrast:.3f}-s{seed}.zarr"


def make_synthetic_store(
    out: str | os.PathLike,
    *,
    preset: str,
    contrast: float,
    images: int,
    seed: int,
    image_size: int | None = None,
    patch_size: int = 512,
    fringe_free_fraction: float | None = None,
    dose: float | None = None,
    min_particle_px: int = 400,
    split_fractions: Sequence[float] | None = None,
    flat_field: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    **generator_overrides: Any,
) -> Path:
    """Generate ``images`` synthetic images and write them as a patch store.

    Parameters
    ----------
    out
        Store directory; must not exist unless ``overwrite``.
    preset
        ``hr-2.2nm``, ``hr-5nm``, ``hr-10nm`` (HR, ~0.02 nm/px) or ``lr-20nm``
        (0.1243 nm/px, no resolvable fringes).
    contrast
        C: intensity at a particle centre is 1 - C (per-particle jitter 15 %).
    images, seed
        Number of images; image i draws from ``default_rng([seed, i])``.
    image_size
        Image side in px (default: the paper's raw size, 4096 HR / 2048 LR).
    patch_size, min_particle_px
        As for ingest (paper: 512, 400).
    split_fractions
        Shares of images in train / val / test (default the paper's 0.7 / 0.1 / 0.2). A
        small study needs large validation and test splits so that dice differences of a few
        hundredths are not noise; training data is cheap to generate.
    flat_field
        Divide out uneven illumination before standardization (off by default, as the
        paper); recorded in the store's ``preprocessing``.
    fringe_free_fraction, dose
        Override the preset (0.15 HR; dose 423 HR / 16 LR e/A^2).
    generator_overrides
        Any other :class:`GeneratorParams` field (e.g. ``fringe_phase_rad``).

    Returns
    -------
    Path
        The absolute store path. The root attribute ``generator`` holds every parameter.

    Examples
    --------
    >>> make_synthetic_store("/tmp/s.zarr", preset="hr-2.2nm", contrast=0.06, images=12,
    ...                      seed=0, image_size=512, patch_size=256)  # doctest: +SKIP
    """
    from temseg.data.pipeline import write_generated_store

    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite / --overwrite to replace it)")
    params = generator_params(
        preset,
        contrast=contrast,
        image_size=image_size,
        fringe_free_fraction=fringe_free_fraction,
        dose=dose,
        **generator_overrides,
    )
    _check_counts(images, seed, patch_size, min_particle_px, params.image_size)

    def raw():
        for i in range(images):
            rendered = render_image(params, np.random.default_rng([seed, i]))
            if progress:
                progress(f"{out.name}: image {i + 1}/{images}")
            yield rendered.counts, rendered.mask

    return write_generated_store(
        out,
        raw(),
        origin=f"synthetic:{preset}",
        images=images,
        seed=seed,
        regime=get_preset(preset).regime,
        flat_field=flat_field,
        pixel_size_nm=params.pixel_size_nm,
        patch_size=patch_size,
        min_particle_px=min_particle_px,
        extra_attrs={"generator": _generator_record(params, seed, images)},
        overwrite=overwrite,
        split_fractions=split_fractions,
    )


def _generator_record(params: GeneratorParams, seed: int, images: int) -> dict[str, Any]:
    """A store's ``generator`` attribute: every parameter, the seed and the image count (what
    decides whether a store can be reused)."""
    return {**params.to_dict(), "seed": int(seed), "images": int(images)}


def _check_counts(images: int, seed: int, patch_size: int, min_particle_px: int, size: int) -> None:
    if int(images) < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if patch_size < 8:
        raise ValueError(f"patch_size must be >= 8 px, got {patch_size}")
    if size < patch_size:
        raise ValueError(f"image_size {size} px is smaller than the {patch_size} px patch")
    if min_particle_px < 0:
        raise ValueError(f"min_particle_px must be >= 0, got {min_particle_px}")


def _matching_store(
    path: Path,
    generator: dict,
    patch_size: int,
    min_particle_px: int,
    split_fractions: Sequence[float] | None = None,
) -> bool:
    """True when ``path`` is a valid synthetic store made with exactly these parameters."""
    from temseg.data.patches import SPLIT_FRACTIONS
    from temseg.data.store import StoreError, read_attrs

    try:
        attrs = read_attrs(path)
    except StoreError:
        return False
    pre = attrs.get("preprocessing", {})
    return (
        attrs.get("kind") == "synthetic"
        and attrs.get("generator") == generator
        and attrs.get("patch_size") == patch_size
        and pre.get("min_particle_px") == min_particle_px
        and pre.get("split", {}).get("fractions")
        == [float(f) for f in (split_fractions or SPLIT_FRACTIONS)]
    )


def _reusable(
    path: Path,
    generator: dict,
    patch_size: int,
    min_particle_px: int,
    split_fractions: Sequence[float] | None,
    *,
    older: Sequence[dict] = (),
) -> int | None:
    """The generator version of the store at ``path`` if it was made with ``generator`` (or
    one of the ``older`` versions' equivalents), else None."""
    for candidate in (generator, *older):
        if _matching_store(path, candidate, patch_size, min_particle_px, split_fractions):
            return int(candidate["version"])
    return None


def make_contrast_series(
    out_dir: str | os.PathLike,
    *,
    contrasts: Sequence[float],
    preset: str,
    images: int,
    seed: int,
    image_size: int | None = None,
    patch_size: int = 512,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    **kw: Any,
) -> list[Path]:
    """One synthetic store per contrast level in ``out_dir``, reusing stores already made.

    Parameters
    ----------
    out_dir
        Folder for the stores (created if needed); each is named by :func:`store_name`.
    contrasts
        The C levels, e.g. ``[0.02, 0.06, 0.2]``.
    preset, images, seed, image_size, patch_size
        As for :func:`make_synthetic_store`; one seed for all levels, so every store holds
        the same particles, carbon and lens and differs only in contrast.
    overwrite
        Rebuild stores whose parameters differ; without it a store of the same name made
        with other parameters raises FileExistsError (nothing is silently replaced).
    kw
        Further :func:`make_synthetic_store` options (dose, fringe_free_fraction,
        min_particle_px, generator overrides).

    Returns
    -------
    list of Path
        The store paths, in the order of ``contrasts``.

    Notes
    -----
    A store is reused when it opens as a temseg store whose ``generator`` attribute (every
    generator parameter, the seed and image count) and patch settings equal the requested
    ones: sweeps can call this on every start at no cost.
    """
    contrasts = [float(c) for c in contrasts]
    names = _series_names(preset, contrasts, seed)
    out_dir = Path(out_dir).absolute()
    min_px = int(kw.pop("min_particle_px", 400))
    fractions = kw.pop("split_fractions", None)
    knobs = {**{k: kw.pop(k) for k in ("fringe_free_fraction", "dose") if k in kw}, **kw}
    # validate every level before creating anything
    all_params = [
        generator_params(preset, contrast=c, image_size=image_size, **knobs) for c in contrasts
    ]
    _check_counts(images, seed, patch_size, min_px, all_params[0].image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for c, name, params in zip(contrasts, names, all_params, strict=True):
        path = out_dir / name
        if path.exists():
            generator = _generator_record(params, seed, images)
            older = _older_generators(preset, c, image_size, seed, images, knobs)
            if _reuse_existing(path, generator, older, patch_size, min_px, fractions,
                               overwrite=overwrite, progress=progress):  # fmt: skip
                paths.append(path)
                continue
        paths.append(
            make_synthetic_store(
                path,
                preset=preset,
                contrast=c,
                images=images,
                seed=seed,
                image_size=image_size,
                patch_size=patch_size,
                min_particle_px=min_px,
                split_fractions=fractions,
                overwrite=overwrite,
                progress=progress,
                **knobs,
            )
        )
        if progress:
            progress(f"{name}: written")
    return paths


def _series_names(preset: str, contrasts: list[float], seed: int) -> list[str]:
    """The store names of a contrast series; refuses an empty or repeating list of levels."""
    if not contrasts:
        raise ValueError("contrasts must not be empty")
    names = [store_name(preset, c, seed) for c in contrasts]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast levels repeat at 3 decimals: {contrasts}")
    return names


def _reuse_existing(
    path: Path,
    generator: dict,
    older: Sequence[dict],
    patch_size: int,
    min_particle_px: int,
    split_fractions: Sequence[float] | None,
    *,
    overwrite: bool,
    progress: Callable[[str], None] | None,
) -> bool:
    """True when the store at ``path`` was made with this request (or an older version's
    equivalent); False when it is to be rebuilt (``overwrite``); else FileExistsError."""
    made = _reusable(path, generator, patch_size, min_particle_px, split_fractions, older=older)
    if made is not None:
        if progress:
            progress(f"{path.name}: reused (same generator parameters, version {made})")
        return True
    if not overwrite:
        raise FileExistsError(
            f"{path} exists but was made with other parameters (or is not a valid "
            "store); pass overwrite=True (--overwrite) to rebuild it, or use another "
            "folder"
        )
    return False


def _older_generators(
    preset: str,
    contrast: float,
    image_size: int | None,
    seed: int,
    images: int,
    knobs: dict[str, Any],
) -> list[dict]:
    """Unless a version is asked for, the same request to each older generator version that
    accepts it (as store ``generator`` records): stores made before a new version stay in use."""
    if "version" in knobs:
        return []
    out = []
    for v in sorted(VERSION_DEFAULTS, reverse=True)[1:]:
        try:
            p = generator_params(preset, contrast=contrast, image_size=image_size, version=v,
                                 **knobs)  # fmt: skip
        except ValueError:  # a knob that version lacks
            continue
        out.append(_generator_record(p, seed, images))
    return out
