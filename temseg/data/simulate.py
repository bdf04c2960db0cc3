"""Multislice-simulated HRTEM images of Au nanoparticles on amorphous carbon (abTEM + ASE).

The physics check of the fast generator (:mod:`temseg.data.synth`): instead of drawing
fringes as a phase grating and carbon as filtered noise, every image here is computed from
atoms. One image, on a periodic cell of ``image_size`` x ``image_size`` pixels at the
preset's pixel size:

1. sample: an amorphous carbon film of ``carbon_thickness_nm`` (random C atoms at
   ``carbon_density_g_cm3``, 2.0 g/cm^3, none closer than ``carbon_min_distance_nm``: random
   sequential addition with a periodic k-d tree) and, on top of it, Au nanoparticles built
   with :mod:`ase.cluster` (truncated octahedra, Ino decahedra, Mackay icosahedra; the
   cluster whose volume-equivalent diameter is nearest a diameter drawn normal around the
   preset's, sd 12 %), placed without overlap at the preset's coverage. Each particle is
   oriented along a low-index zone axis (fcc: [110], [100], [111]; decahedra and icosahedra:
   a five-fold axis) with probability ``zone_axis_fraction``, at a random in-plane angle,
   otherwise at a uniformly random 3-D orientation.
2. multislice: abTEM plane wave at 300 kV through the Lobato-parametrised independent-atom
   potential, sliced every ``slice_thickness_nm`` (infinite projection), optionally averaged
   over frozen-phonon configurations.
3. lens, drawn per image: defocus (temseg convention, negative = underfocus; abTEM's
   ``defocus`` is its negative, ``-C10``), twofold astigmatism, Cs, objective aperture
   semiangle and partial coherence (focal spread, beam convergence) as quasi-coherent
   envelopes of :class:`abtem.CTF`. The focal spread is recorded as the standard deviation
   Delta of the fast generator (``E_t = exp(-(pi lambda Delta)^2 k^4 / 2)``); abTEM takes the
   1/e width, ``sqrt(2) Delta``. abTEM's angular spread equals the fast generator's
   ``convergence_mrad`` (both give ``E_s = exp(-(alpha/2)^2 |grad chi|^2)``).
4. detector: the electrons per pixel (e/A^2 times the pixel area) recorded by a named
   camera class (``detector``, :mod:`temseg.data.detector`): ``poisson`` (version 1:
   Poisson counts times a gain of 10, no blur), ``ideal`` (a counting pixel detector) or
   ``ceta`` (a scintillator CMOS: MTF, DQE(0) = 0.5, correlated noise); no x-ray spikes.

Version 2 adds what real images have (each a field of :class:`SimParams`, recorded in the
store; the defaults of a version 1 store are written out in ``V1_SETTINGS``):

- orientation: ``zone_axis_fraction`` of the particles on a zone axis, the rest uniformly
  random on SO(3);
- area fraction: ``field_margin`` > 0 centres particles also up to that many diameters
  outside the cell and cuts them at its edges (no wrap), as a patch cut from a large
  micrograph cuts them; with ``coverage`` 0.022 and a margin of 0.4 (2 nm) a kept 512 px
  patch of 5 nm Au holds 9.4 % particle pixels (10/50/90 %: 1.6/7.3/20.7 %), as the lab's
  real 4096 px label does (8 particles on 2.2 % of the field; kept patches 9.4 %,
  2.0/6.8/17.3 %);
- background: a film whose thickness varies over ``carbon_thickness_nm`` = (min, max) on
  the scale ``carbon_correlation_nm``, contamination patches, non-flat illumination
  (:mod:`temseg.data.sim_background`);
- motion: the image is the mean of ``motion_frames`` sub-exposures, each particle turned and
  shifted a little in each (:func:`moving_waves`);
- labels: the footprint, or a hand-drawn-like polygon of 10-16 clicks around it;
- field context: a real patch is standardized with its whole 88 nm micrograph, a cell by
  default with a modelled field's statistics (its carbon ``field_carbon_level`` field sd
  above the field's mean, the field's sd ``field_std_ratio`` times the carbon's;
  :func:`temseg.data.sim_background.field_statistics`): two calibration constants, chosen
  against the authors' networks on seed 41 with the Ceta camera, the default because the
  lab's camera is one and in the field it lets every network find the particles
  (docs/physics.md, "Field context").

The label is the particles' projected footprint computed from the atoms, never from the
image: per particle, the convex hull of its atoms projected along the beam, dilated by the
Au atomic radius (0.144 nm). Every cluster built here is convex, so this is the projected
footprint of the particle's atoms. The cell is periodic in x and y (the multislice is), so
a particle crossing an edge reappears on the opposite edge, in the image and the label
alike.

Raw counts then go through :func:`temseg.data.pipeline.write_generated_store`, the fast
generator's store write: :func:`temseg.data.preprocess.preprocess` as every other store (then,
with field context, the standardization in the field). Image i draws everything
from ``np.random.default_rng([seed, i])``; FFTs run single-threaded in numpy, so the same
seed gives the same bytes.

References: abTEM, Madsen & Susi, Open Research Europe 1, 24 (2021); Lobato & Van Dyck,
Acta Cryst. A70, 636 (2014); Kirkland, Advanced Computing in Electron Microscopy (2010).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from temseg.data.synth import (
    AU_LATTICE_NM,
    D111_NM,
    PRESETS,
    get_preset,
    wavelength_nm,
)

SIM_VERSION = 2
SHAPES = ("truncated-octahedron", "decahedron", "icosahedron")
FCC_ZONES = {"[110]": (1.0, 1.0, 0.0), "[100]": (0.0, 0.0, 1.0), "[111]": (1.0, 1.0, 1.0)}
AU_ATOM_RADIUS_NM = 0.144  # metallic radius
AU_ATOM_VOLUME_NM3 = AU_LATTICE_NM**3 / 4
CARBON_MOLAR_MASS = 12.011
AVOGADRO = 6.02214076e23
# abTEM band-limits the wave to 2/3 of the Nyquist frequency (anti-aliasing aperture)
ANTIALIAS_FRACTION = 2.0 / 3.0
SIM_INSTALL_HINT = "pip install 'temseg[sim]' (or: pip install abtem ase)"
# field context, calibrated with the Ceta camera on seed 41 against the authors' networks
# (docs/physics.md, "Field context"): inferred constants, not measured on a real field
FIELD_CARBON_LEVEL = 0.7
FIELD_STD_RATIO = 2.0
LABEL_STYLES = ("footprint", "polygon")


@dataclass(frozen=True)
class SimParams:
    """Every parameter of the multislice image model; stored whole in the store's
    ``simulation`` attribute. Pairs (min, max) are drawn uniformly per image."""

    preset: str
    pixel_size_nm: float
    image_size: int
    diameter_nm: float
    coverage: float
    diameter_sd: float = 0.12  # relative
    shapes: tuple[str, ...] = SHAPES
    shape_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    zone_axis_fraction: float = 0.0  # particles on a low-index zone axis, the rest random
    fcc_zone_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)  # [110], [100], [111]
    particle_gap_nm: float = 0.4  # closest approach of two particles' footprints
    field_margin: float = 0.4  # > 0: particles also centred this many diameters outside, cut
    carbon_thickness_nm: tuple[float, float] = (3.0, 3.0)  # flat film when min == max
    carbon_correlation_nm: float = 5.0  # lateral scale of the thickness variation
    contamination_per_100nm2: float = 0.0  # contamination patches (mean count)
    contamination_height_nm: tuple[float, float] = (1.0, 4.0)
    contamination_radius_nm: tuple[float, float] = (1.0, 3.0)
    illumination_variation: float = 0.1  # peak-to-peak relative, ramp + smooth field
    carbon_density_g_cm3: float = 2.0
    carbon_min_distance_nm: float = 0.14
    voltage_kv: float = 300.0
    defocus_nm: tuple[float, float] = (-12.0, 12.0)  # negative = underfocus
    astigmatism_nm: tuple[float, float] = (0.0, 2.0)
    cs_mm: tuple[float, float] = (0.0, 0.02)  # aberration-corrected
    aperture_mrad: tuple[float, float] = (20.0, 30.0)  # objective aperture semiangle
    focal_spread_nm: tuple[float, float] = (2.0, 4.0)  # standard deviation Delta
    convergence_mrad: tuple[float, float] = (0.03, 0.1)
    dose: float = 423.0  # e/A^2
    gain: float = 10.0  # counts per electron
    slice_thickness_nm: float = 0.2
    frozen_phonons: int = 0  # configurations; 0 = static lattice
    phonon_sigma_nm: tuple[float, float] = (0.0087, 0.01)  # Au, C (per direction)
    parametrization: str = "lobato"
    projection: str = "infinite"
    label_atom_radius_nm: float = AU_ATOM_RADIUS_NM
    motion_frames: int = 1  # sub-exposures averaged; 1 = particles still
    motion_rotation_deg: float = 1.0  # sd per axis of each frame's rotation of a particle
    motion_drift_nm: float = 0.05  # sd per axis of each frame's in-plane shift of a particle
    detector: str = "ceta"  # camera class (temseg.data.detector): the lab's, in the field
    label_style: str = "footprint"  # or "polygon": hand-drawn-like
    label_vertices: tuple[int, int] = (10, 16)  # clicks per polygon, min and max
    label_jitter_nm: float = 0.1  # sd of each click's position per axis
    # field context: the cell standardized with a modelled field's statistics, its carbon at
    # field_carbon_level field sd above the field's mean (None: over itself, as version 1)
    field_carbon_level: float | None = FIELD_CARBON_LEVEL
    field_std_ratio: float = FIELD_STD_RATIO  # field sd over the cell's carbon sd
    version: int = SIM_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
        if self.field_carbon_level is None:  # recorded as before the knob existed
            del out["field_carbon_level"], out["field_std_ratio"]
        return out


# the lab's real 4096 px label: 8 particles on 2.2 % of the field
REAL_COVERAGE = 0.022
# the version 1 model, written out: every realism knob off (coverage: the preset's)
V1_SETTINGS = {
    "zone_axis_fraction": 0.6,
    "field_margin": 0.0,
    "carbon_thickness_nm": (3.0, 3.0),
    "contamination_per_100nm2": 0.0,
    "illumination_variation": 0.0,
    "motion_frames": 1,
    "detector": "poisson",
    "label_style": "footprint",
    "field_carbon_level": None,
}

RANGES = (
    "defocus_nm",
    "astigmatism_nm",
    "cs_mm",
    "aperture_mrad",
    "focal_spread_nm",
    "convergence_mrad",
)
# other (min, max) fields; a single number means (v, v)
PAIRS = (
    "phonon_sigma_nm",
    "carbon_thickness_nm",
    "contamination_height_nm",
    "contamination_radius_nm",
)


def max_pixel_size_nm(d_nm: float = D111_NM) -> float:
    """Largest pixel size at which fringes of spacing ``d_nm`` survive the simulation.

    Notes
    -----
    Nyquist alone allows ``d / 2`` (0.118 nm for Au {111}); abTEM's anti-aliasing aperture
    keeps only 2/3 of the Nyquist frequency, so the limit is ``d / 3``: 0.0785 nm for
    {111}.

    >>> round(max_pixel_size_nm(), 4)
    0.0785
    """
    return ANTIALIAS_FRACTION * d_nm / 2


def sim_params(
    preset: str,
    *,
    image_size: int = 512,
    v1: bool = False,
    **overrides: Any,
) -> SimParams:
    """The multislice parameters of a preset with overrides, validated before any work.

    The defaults are the calibrated model (version 2, docs/physics.md "Ablation"), with the
    real data's area fraction (``REAL_COVERAGE``) instead of the preset's coverage; ``v1``
    starts from the version 1 model instead (``V1_SETTINGS``, the preset's coverage).

    Raises
    ------
    ValueError
        Naming the field, what was expected and what arrived (negative thickness, a pixel
        size above the {111} limit, an aperture that cuts {111} or exceeds the band limit,
        ranges with min > max, ...).
    """
    p = get_preset(preset)
    known = {f.name for f in dataclasses.fields(SimParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown simulation parameter(s) {unknown}; valid: {sorted(known)}")
    fields: dict[str, Any] = {
        "preset": p.name,
        "pixel_size_nm": p.pixel_size_nm,
        "diameter_nm": p.diameter_nm,
        "coverage": p.coverage if v1 else REAL_COVERAGE,
        "dose": p.dose,
        **(V1_SETTINGS if v1 else {}),
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if fields.get("field_carbon_level") == "off":  # the flag's word for None
        fields["field_carbon_level"] = None
    fields["image_size"] = int(image_size)
    for name in RANGES + PAIRS:
        if name not in fields:
            continue
        value = fields[name]
        pair = [value, value] if isinstance(value, (int, float)) else list(value)
        if len(pair) != 2 or not float(pair[0]) <= float(pair[1]):
            raise ValueError(f"{name} must be a range (min, max) with min <= max, got {value}")
        fields[name] = (float(pair[0]), float(pair[1]))
    for name in ("shapes", "shape_weights", "fcc_zone_weights"):
        if name in fields:
            fields[name] = tuple(fields[name])
    if "label_vertices" in fields:
        fields["label_vertices"] = tuple(int(v) for v in fields["label_vertices"])
    params = SimParams(**fields)
    _validate(params)
    return params


def _validate(p: SimParams) -> None:
    if p.image_size < 16:
        raise ValueError(f"image_size must be >= 16 px, got {p.image_size}")
    if not p.pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {p.pixel_size_nm}")
    limit = max_pixel_size_nm()
    if p.pixel_size_nm > limit:
        raise ValueError(
            f"pixel_size_nm {p.pixel_size_nm:g} is too coarse for Au {{111}} fringes "
            f"(d = {D111_NM:.4f} nm): Nyquist needs <= {D111_NM / 2:.4f} nm and the "
            f"multislice band limit (2/3 Nyquist) <= {limit:.4f} nm; the simulation is for "
            "high-resolution presets (hr-2.2nm, hr-5nm, hr-10nm)"
        )
    if not p.carbon_thickness_nm[0] >= 0:
        raise ValueError(f"carbon_thickness_nm must be >= 0 nm, got {list(p.carbon_thickness_nm)}")
    _validate_knobs(p)
    if not p.carbon_density_g_cm3 > 0:
        raise ValueError(f"carbon_density_g_cm3 must be > 0, got {p.carbon_density_g_cm3}")
    if not 0 < p.carbon_min_distance_nm < 0.2:
        raise ValueError(
            f"carbon_min_distance_nm must lie in (0, 0.2) nm, got {p.carbon_min_distance_nm}"
        )
    if not p.diameter_nm > 0.5:
        raise ValueError(f"diameter_nm must be > 0.5 nm, got {p.diameter_nm}")
    if not 0.0 < p.coverage < 0.6:
        raise ValueError(f"coverage must lie in (0, 0.6), got {p.coverage}")
    if not 0.0 <= p.zone_axis_fraction <= 1.0:
        raise ValueError(f"zone_axis_fraction must lie in [0, 1], got {p.zone_axis_fraction}")
    bad = [s for s in p.shapes if s not in SHAPES]
    if bad or not p.shapes or len(p.shape_weights) != len(p.shapes):
        raise ValueError(
            f"shapes must be a non-empty subset of {SHAPES} with one weight each, got "
            f"{p.shapes} / {p.shape_weights}"
        )
    if not p.dose > 0:
        raise ValueError(f"dose must be > 0 e/A^2, got {p.dose}")
    if not 0.01 <= p.slice_thickness_nm <= 1.0:
        raise ValueError(f"slice_thickness_nm must lie in [0.01, 1] nm, got {p.slice_thickness_nm}")
    if p.frozen_phonons < 0:
        raise ValueError(f"frozen_phonons must be >= 0, got {p.frozen_phonons}")
    lam = wavelength_nm(p.voltage_kv)
    band = ANTIALIAS_FRACTION * lam / (2 * p.pixel_size_nm) * 1e3  # mrad
    g111 = lam / D111_NM * 1e3
    lo, hi = p.aperture_mrad
    if hi > band:
        raise ValueError(
            f"aperture_mrad up to {hi:g} exceeds the simulation's band limit of {band:.1f} "
            f"mrad at {p.pixel_size_nm:g} nm/px (2/3 Nyquist)"
        )
    if lo <= g111:
        raise ValueError(
            f"aperture_mrad from {lo:g} cuts the Au {{111}} reflection at {g111:.1f} mrad; "
            "use an objective aperture larger than that"
        )
    for name in ("astigmatism_nm", "cs_mm", "focal_spread_nm", "convergence_mrad"):
        if getattr(p, name)[0] < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(p, name)}")


def _validate_knobs(p: SimParams) -> None:
    """The realism knobs (version 2): background, motion, detector, labels."""
    from temseg.data.detector import get_camera

    get_camera(p.detector)
    checks = [
        (p.carbon_correlation_nm > 0, "carbon_correlation_nm must be > 0"),
        (p.field_margin >= 0, "field_margin must be >= 0"),
        (p.contamination_per_100nm2 >= 0, "contamination_per_100nm2 must be >= 0"),
        (p.contamination_height_nm[0] >= 0, "contamination_height_nm must be >= 0"),
        (p.contamination_radius_nm[0] > 0, "contamination_radius_nm must be > 0"),
        (0 <= p.illumination_variation < 1, "illumination_variation must lie in [0, 1)"),
        (p.motion_frames >= 1, "motion_frames must be >= 1"),
        (p.motion_rotation_deg >= 0, "motion_rotation_deg must be >= 0"),
        (p.motion_drift_nm >= 0, "motion_drift_nm must be >= 0"),
        (
            p.motion_frames == 1 or p.frozen_phonons == 0,
            "motion_frames > 1 cannot be combined with frozen_phonons",
        ),
        (p.label_style in LABEL_STYLES, f"label_style must be one of {LABEL_STYLES}"),
        (
            len(p.label_vertices) == 2 and 3 <= p.label_vertices[0] <= p.label_vertices[1],
            "label_vertices must be (min, max) with 3 <= min <= max",
        ),
        (p.label_jitter_nm >= 0, "label_jitter_nm must be >= 0"),
        (
            p.field_carbon_level is None
            or (isinstance(p.field_carbon_level, (int, float)) and abs(p.field_carbon_level) <= 5),
            f"field_carbon_level must be 'off' or a level in [-5, 5] field sd, got "
            f"{p.field_carbon_level!r}",
        ),
        (
            0 < p.field_std_ratio <= 100,
            f"field_std_ratio must lie in (0, 100], got {p.field_std_ratio!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


# ----------------------------------------------------------------------------- imports


def require_sim(threads: int = 1):
    """Import abTEM, ASE and dask for one-threaded, deterministic use; a clear error when the
    ``sim`` extra is missing. Returns the ``abtem`` module."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(int(threads)))
    try:
        import abtem
        import ase  # noqa: F401
        import dask
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"temseg simulate needs abTEM and ASE ({exc.name} is missing): {SIM_INSTALL_HINT}"
        ) from None
    dask.config.set(scheduler="synchronous")
    abtem.config.set(
        {
            "device": "cpu",
            "fft": "numpy",
            "precision": "float32",
            "diagnostics.progress_bar": False,
        }
    )
    return abtem


# ----------------------------------------------------------------------------- sample


def carbon_film(
    rng: np.random.Generator,
    extent_nm: float,
    thickness_nm: float,
    *,
    density_g_cm3: float = 2.0,
    min_distance_nm: float = 0.14,
) -> np.ndarray:
    """Positions (n, 3) in nm of an amorphous carbon film, periodic in x and y.

    Notes
    -----
    n = density / M_C * N_A * volume. Random sequential addition in rounds: candidates are
    drawn uniformly, and of every pair closer than ``min_distance_nm`` (periodic in x and y,
    via a k-d tree) the later one is dropped; rounds repeat until n atoms stand. At 2.0
    g/cm^3 (100 atoms/nm^3) and 0.14 nm the hard-sphere packing fraction is 0.14, so two
    or three rounds suffice.
    """
    from scipy.spatial import cKDTree

    n = int(
        round(density_g_cm3 / CARBON_MOLAR_MASS * AVOGADRO * 1e-21 * extent_nm**2 * thickness_nm)
    )
    if n == 0:
        return np.zeros((0, 3))
    # the k-d tree is periodic in all three axes; a z period of thickness + min distance
    # keeps the film's two faces from interacting
    box = np.array([extent_nm, extent_nm, thickness_nm + min_distance_nm])
    pts = np.zeros((0, 3))
    for _ in range(50):
        need = n - len(pts)
        if need <= 0:
            break
        new = rng.random((int(need * 1.3) + 16, 3)) * [extent_nm, extent_nm, thickness_nm]
        cand = np.concatenate([pts, new])
        pairs = cKDTree(cand, boxsize=box).query_pairs(min_distance_nm, output_type="ndarray")
        keep = np.ones(len(cand), dtype=bool)
        keep[pairs.max(axis=1)] = False  # accepted atoms come first and are never dropped
        pts = cand[keep][:n]
    if len(pts) < n:
        raise ValueError(f"could not place {n} carbon atoms with min distance {min_distance_nm} nm")
    return pts


def _size_series(shape: str):
    """ase.cluster arguments of one shape, in increasing size."""
    if shape == "truncated-octahedron":
        for length in range(4, 80):
            for cutoff in sorted({max(1, (length - 1) // 3), max(1, (length - 1) // 3 + 1)}):
                if 2 * cutoff + 1 < length:
                    yield (length, cutoff)
    elif shape == "decahedron":
        for p in range(2, 60):
            yield (p, p, 0)
            yield (p, p + 1, 0)
    elif shape == "icosahedron":
        for shells in range(3, 60):
            yield (shells,)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")


def equivalent_diameter_nm(n_atoms: int) -> float:
    """Diameter of the sphere with the volume of ``n_atoms`` fcc Au atoms (a^3 / 4 each)."""
    return float((6 * n_atoms * AU_ATOM_VOLUME_NM3 / math.pi) ** (1 / 3))


@cache
def cluster_catalogue(
    shape: str, max_diameter_nm: float
) -> tuple[tuple[tuple[int, ...], int, float], ...]:
    """(ase.cluster arguments, atoms, volume-equivalent diameter nm) of one shape, from the
    smallest up to the first one larger than ``max_diameter_nm``."""
    out = []
    for args in _size_series(shape):
        n = _count(shape, args)
        d = equivalent_diameter_nm(n)
        out.append((args, n, d))
        if d > max_diameter_nm:
            break
    return tuple(out)


@cache
def _count(shape: str, args: tuple[int, ...]) -> int:
    """Atoms of a cluster: closed forms where they exist, else by building it."""
    if shape == "truncated-octahedron":
        # octahedron with L atoms per edge, minus 6 square pyramids of c layers
        length, c = args
        return (2 * length**3 + length) // 3 - c * (c + 1) * (2 * c + 1)
    if shape == "icosahedron":
        k = args[0]
        return (10 * k**3 - 15 * k**2 + 11 * k - 3) // 3
    return len(build_cluster(shape, args))


def build_cluster(shape: str, args: Sequence[int]):
    """An ``ase.Atoms`` Au cluster centred on the origin (positions in Angstrom)."""
    from ase.cluster import Decahedron, Icosahedron, Octahedron

    if shape == "truncated-octahedron":
        atoms = Octahedron("Au", int(args[0]), int(args[1]), latticeconstant=AU_LATTICE_NM * 10)
    elif shape == "decahedron":
        atoms = Decahedron(
            "Au", int(args[0]), int(args[1]), int(args[2]), latticeconstant=AU_LATTICE_NM * 10
        )
    elif shape == "icosahedron":
        atoms = Icosahedron("Au", int(args[0]), latticeconstant=AU_LATTICE_NM * 10)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms


def _five_fold_axis(shape: str, positions: np.ndarray) -> np.ndarray:
    if shape == "decahedron":
        return np.array([0.0, 0.0, 1.0])  # ase builds the decahedron's five-fold axis on z
    r = np.linalg.norm(positions, axis=1)
    v = positions[int(np.argmax(r))]  # an icosahedron's vertex lies on a five-fold axis
    return v / np.linalg.norm(v)


@dataclass
class SimParticle:
    """One simulated particle (image coordinates in px, positions in nm)."""

    shape: str
    cluster_args: tuple[int, ...]
    n_atoms: int
    diameter_nm: float  # volume-equivalent
    target_diameter_nm: float
    orientation: str  # "[110]", "[100]", "[111]", "five-fold" or "random"
    rotation_quat: tuple[float, float, float, float]
    center_yx: tuple[float, float]
    positions_nm: np.ndarray = field(repr=False)  # (n, 3) x, y, z after rotation+placement
    area_px: int = 0


def _orient(
    shape: str, positions: np.ndarray, params: SimParams, rng: np.random.Generator
) -> tuple[np.ndarray, str, np.ndarray]:
    from scipy.spatial.transform import Rotation

    on_zone = rng.random() < params.zone_axis_fraction
    fcc_zone = list(FCC_ZONES)[
        int(rng.choice(3, p=np.asarray(params.fcc_zone_weights) / sum(params.fcc_zone_weights)))
    ]
    in_plane = float(rng.uniform(0, 2 * np.pi))
    random_rot = Rotation.random(rng=rng) if _rotation_takes_rng() else None
    if random_rot is None:
        random_rot = Rotation.from_quat(_random_quat(rng))
    if not on_zone:
        rot, label = random_rot, "random"
    else:
        if shape == "truncated-octahedron":
            axis, label = np.asarray(FCC_ZONES[fcc_zone]), fcc_zone
        else:
            axis, label = _five_fold_axis(shape, positions), "five-fold"
        align, _ = Rotation.align_vectors([[0.0, 0.0, 1.0]], [axis / np.linalg.norm(axis)])
        rot = Rotation.from_rotvec([0.0, 0.0, in_plane]) * align
    return rot.apply(positions), label, rot.as_quat()


@lru_cache(maxsize=1)
def _rotation_takes_rng() -> bool:
    import inspect

    from scipy.spatial.transform import Rotation

    return "rng" in inspect.signature(Rotation.random).parameters


def _random_quat(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    return q / np.linalg.norm(q)


def _film(
    params: SimParams, rng: np.random.Generator, extent_nm: float
) -> tuple[np.ndarray, Callable[[np.ndarray], float]]:
    """The carbon film's atoms and its top surface: the highest film point (nm) under
    given (x, y) points. Flat: one thickness; else a thickness field with contamination
    (:mod:`temseg.data.sim_background`), atoms carved from a film of its maximum."""
    from temseg.data.sim_background import carve_film, thickness_at, thickness_field

    lo, hi = params.carbon_thickness_nm
    kw = dict(
        density_g_cm3=params.carbon_density_g_cm3, min_distance_nm=params.carbon_min_distance_nm
    )
    if lo == hi and params.contamination_per_100nm2 == 0:
        return carbon_film(rng, extent_nm, lo, **kw), lambda xy: lo
    field = thickness_field(
        rng,
        extent_nm,
        params.carbon_thickness_nm,
        correlation_nm=params.carbon_correlation_nm,
        patches_per_100nm2=params.contamination_per_100nm2,
        patch_height_nm=params.contamination_height_nm,
        patch_radius_nm=params.contamination_radius_nm,
    )
    box = carbon_film(rng, extent_nm, float(field.max()), **kw)
    carbon = carve_film(box, field, extent_nm)
    return carbon, lambda xy: float(thickness_at(field, extent_nm, xy).max())


def build_sample(
    params: SimParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[SimParticle]]:
    """Carbon positions (n, 3) nm, Au positions (m, 3) nm and the particles of one image.

    Every random draw of the sample comes from ``rng`` in a fixed order (two seeds from it
    start the carbon's and the particles' own streams). Positions are
    in the periodic cell [0, L) x [0, L) (L = image_size * pixel_size_nm); the carbon film
    occupies z in [0, t], the particles rest on it (their lowest atom 0.25 nm above).
    """
    L = params.image_size * params.pixel_size_nm
    # carbon and particles draw from their own streams, so a carbon-thickness series with
    # one seed holds the same particles (and, drawn after this, the same lens)
    rng_carbon, rng = (np.random.default_rng(int(s)) for s in rng.integers(2**63, size=2))
    carbon, surface = _film(params, rng_carbon, L)
    r_mean = params.diameter_nm / 2
    m = params.field_margin * params.diameter_nm
    W = L + 2 * m  # particles are placed over [-m, L + m) and cut at the cell's edges
    coverage = params.coverage * rng.uniform(0.7, 1.3)
    n_target = max(1, int(round(coverage * W * W / (math.pi * r_mean**2))))
    weights = np.asarray(params.shape_weights, dtype=float)
    particles: list[SimParticle] = []
    placed: list[tuple[float, float, float]] = []  # (y, x, outline radius) nm
    for _ in range(40 * n_target):
        if len(particles) >= n_target:
            break
        target = params.diameter_nm * float(
            np.clip(1 + params.diameter_sd * rng.standard_normal(), 0.5, 1.6)
        )
        shape = params.shapes[int(rng.choice(len(params.shapes), p=weights / weights.sum()))]
        cy, cx = rng.random(2) * W - m
        catalogue = cluster_catalogue(shape, round(1.7 * params.diameter_nm, 2))
        args, n_atoms, d_eq = min(catalogue, key=lambda c: abs(c[2] - target))
        atoms = build_cluster(shape, args)
        pos, label, quat = _orient(shape, atoms.positions / 10.0, params, rng)
        radius = float(np.linalg.norm(pos[:, :2], axis=1).max()) + params.label_atom_radius_nm
        ok = True
        for py, px_, pr in placed:
            dy = (cy - py + L / 2) % L - L / 2 if m == 0 else cy - py
            dx = (cx - px_ + L / 2) % L - L / 2 if m == 0 else cx - px_
            if math.hypot(dy, dx) < radius + pr + params.particle_gap_nm:
                ok = False
                break
        if not ok or 2 * radius + params.particle_gap_nm > L:
            continue
        pos = pos + [cx, cy, 0.0]
        pos[:, 2] += surface(pos[:, :2]) + 0.25 - pos[:, 2].min()
        if m > 0:  # the part of the particle inside the cell
            pos = pos[((pos[:, :2] >= 0) & (pos[:, :2] < L)).all(axis=1)]
            if len(pos) < 4:
                continue
            n_atoms = len(pos)
        placed.append((cy, cx, radius))
        particles.append(
            SimParticle(
                shape=shape,
                cluster_args=tuple(int(a) for a in args),
                n_atoms=int(n_atoms),
                diameter_nm=d_eq,
                target_diameter_nm=target,
                orientation=label,
                rotation_quat=tuple(float(q) for q in quat),
                center_yx=(cy / params.pixel_size_nm - 0.5, cx / params.pixel_size_nm - 0.5),
                positions_nm=pos,
            )
        )
    gold = np.concatenate([p.positions_nm for p in particles]) if particles else np.zeros((0, 3))
    return carbon, gold, particles


def footprint_mask(
    positions_nm: np.ndarray,
    *,
    image_size: int,
    pixel_size_nm: float,
    atom_radius_nm: float = AU_ATOM_RADIUS_NM,
    periodic: bool = True,
) -> np.ndarray:
    """The projected footprint (uint8 0/1, periodic) of one convex cluster's atoms.

    Notes
    -----
    A pixel (centre at ``(i + 0.5) * pixel_size_nm``) belongs to the footprint when it lies
    inside the 2-D convex hull of the atoms' (x, y) or within ``atom_radius_nm`` of one of
    its edges: the hull dilated by a disk of the atomic radius. Coordinates wrap with the
    period ``image_size * pixel_size_nm``; with ``periodic=False`` pixels outside the cell
    are dropped instead (a particle cut at the cell's edge).
    """
    from scipy.spatial import ConvexHull

    px = pixel_size_nm
    xy = np.asarray(positions_nm)[:, :2]
    hull = ConvexHull(xy)
    verts = xy[hull.vertices]  # counter-clockwise
    lo = np.floor((verts.min(axis=0) - atom_radius_nm) / px).astype(int) - 1
    hi = np.ceil((verts.max(axis=0) + atom_radius_nm) / px).astype(int) + 1
    xs = (np.arange(lo[0], hi[0]) + 0.5) * px
    ys = (np.arange(lo[1], hi[1]) + 0.5) * px
    X, Y = np.meshgrid(xs, ys)  # (ny, nx)
    inside = np.ones(X.shape, dtype=bool)
    near = np.zeros(X.shape, dtype=bool)
    r2 = atom_radius_nm**2
    for a, b in zip(verts, np.roll(verts, -1, axis=0), strict=True):
        e = b - a
        # left of every counter-clockwise edge = inside
        inside &= e[0] * (Y - a[1]) - e[1] * (X - a[0]) >= 0
        t = np.clip(((X - a[0]) * e[0] + (Y - a[1]) * e[1]) / float(e @ e), 0.0, 1.0)
        near |= (X - a[0] - t * e[0]) ** 2 + (Y - a[1] - t * e[1]) ** 2 <= r2
    local = inside | near
    mask = np.zeros((image_size, image_size), dtype=np.uint8)
    rows = np.arange(lo[1], hi[1])
    cols = np.arange(lo[0], hi[0])
    ly, lx = np.nonzero(local)
    r, c = rows[ly], cols[lx]
    if not periodic:
        keep = (r >= 0) & (r < image_size) & (c >= 0) & (c < image_size)
        r, c = r[keep], c[keep]
    mask[r % image_size, c % image_size] = 1
    return mask


# ----------------------------------------------------------------------------- imaging


@dataclass
class Simulated:
    """One simulated image: raw counts, label, noise-free intensity and its makings."""

    counts: np.ndarray  # (S, S) float32: gain * Poisson electrons
    mask: np.ndarray  # (S, S) uint8
    intensity: np.ndarray  # (S, S) float32, noise-free, vacuum = 1
    particles: list[SimParticle]
    lens: dict[str, float]
    n_carbon: int
    n_gold: int
    n_slices: int
    seconds: float

    def record(self) -> dict[str, Any]:
        """Everything drawn for this image, JSON-ready (for the store's provenance)."""
        return {
            "lens": self.lens,
            "n_carbon_atoms": self.n_carbon,
            "n_gold_atoms": self.n_gold,
            "n_slices": self.n_slices,
            "particles": [
                {
                    "shape": p.shape,
                    "cluster_args": list(p.cluster_args),
                    "n_atoms": p.n_atoms,
                    "diameter_nm": round(p.diameter_nm, 4),
                    "target_diameter_nm": round(p.target_diameter_nm, 4),
                    "orientation": p.orientation,
                    "rotation_quat": [round(q, 6) for q in p.rotation_quat],
                    "center_yx_px": [round(c, 2) for c in p.center_yx],
                    "area_px": p.area_px,
                }
                for p in self.particles
            ],
        }


def draw_lens_unit(rng: np.random.Generator) -> dict[str, float]:
    """One image's lens as uniform variates in [0, 1), one per range and the astigmatism
    angle; :func:`lens_of` maps them onto a model's ranges (the same numbers as drawing
    ``rng.uniform(min, max)``, so a lens setting can change without changing the rest)."""
    return {name: float(rng.random()) for name in (*RANGES, "astigmatism_angle_rad")}


def lens_of(params: SimParams, unit: dict[str, float]) -> dict[str, float]:
    """The lens of uniform variates ``unit`` under ``params``' ranges."""
    out = {}
    for name in RANGES:
        lo, hi = getattr(params, name)
        out[name] = float(lo + (hi - lo) * unit[name])
    out["astigmatism_angle_rad"] = float(np.pi * unit["astigmatism_angle_rad"])
    return out


def draw_lens(params: SimParams, rng: np.random.Generator) -> dict[str, float]:
    """One image's lens and coherence, drawn uniformly from the ranges."""
    return lens_of(params, draw_lens_unit(rng))


def abtem_ctf(lens: dict[str, float], voltage_kv: float):
    """The :class:`abtem.CTF` of a lens dict in temseg's conventions (see module notes)."""
    import abtem

    return abtem.CTF(
        energy=voltage_kv * 1e3,
        semiangle_cutoff=lens["aperture_mrad"],
        defocus=-10.0 * lens["defocus_nm"],  # abTEM: defocus = -C10, Angstrom
        Cs=lens["cs_mm"] * 1e7,
        astigmatism=10.0 * lens["astigmatism_nm"],
        astigmatism_angle=lens["astigmatism_angle_rad"],
        focal_spread=math.sqrt(2.0) * 10.0 * lens["focal_spread_nm"],  # 1/e width
        angular_spread=lens["convergence_mrad"],
    )


def _potential(atoms, params: SimParams, abtem):
    return abtem.Potential(
        atoms,
        gpts=(params.image_size, params.image_size),
        slice_thickness=10 * params.slice_thickness_nm,
        parametrization=params.parametrization,
        projection=params.projection,
    )


def _cell(positions_nm: np.ndarray, symbols: list[str], extent_nm: float, height_nm: float):
    from ase import Atoms

    atoms = Atoms(
        symbols,
        positions=positions_nm * 10.0,  # Angstrom
        cell=[10 * extent_nm, 10 * extent_nm, 10 * height_nm],
        pbc=True,
    )
    atoms.wrap()
    return atoms


def exit_wave(
    carbon: np.ndarray,
    gold: np.ndarray,
    params: SimParams,
    *,
    phonon_seed: int = 0,
):
    """Multislice through the atoms: the computed exit wave (``abtem.Waves``, one per
    frozen-phonon configuration) and the number of slices."""
    abtem = require_sim()
    L = params.image_size * params.pixel_size_nm
    top = float(gold[:, 2].max()) if len(gold) else 0.0
    film = max(params.carbon_thickness_nm[1], float(carbon[:, 2].max()) if len(carbon) else 0.0)
    atoms = _cell(
        np.concatenate([carbon, gold]),
        ["C"] * len(carbon) + ["Au"] * len(gold),
        L,
        max(top, film) + 0.5,
    )
    if params.frozen_phonons > 0:
        sample = abtem.FrozenPhonons(
            atoms,
            num_configs=params.frozen_phonons,
            sigmas={"Au": 10 * params.phonon_sigma_nm[0], "C": 10 * params.phonon_sigma_nm[1]},
            seed=int(phonon_seed),
            ensemble_mean=False,
        )
    else:
        sample = atoms
    potential = _potential(sample, params, abtem)
    waves = abtem.PlaneWave(energy=params.voltage_kv * 1e3).multislice(potential)
    return waves.compute(), int(potential.num_slices)


def image_intensity(waves, lens: dict[str, float] | None, voltage_kv: float) -> np.ndarray:
    """(y, x) image intensity (vacuum = 1) of an exit wave after the lens ``lens`` (None:
    the exit wave's own intensity), averaged over frozen-phonon configurations."""
    if lens is not None:
        waves = waves.apply_ctf(abtem_ctf(lens, voltage_kv))
    image = waves.intensity().compute()
    array = np.asarray(image.array, dtype=np.float32)
    if array.ndim == 3:  # frozen-phonon configurations: incoherent average
        array = array.mean(axis=0)
    # abTEM's first array axis is x; temseg images are (y, x)
    return np.ascontiguousarray(array.T)


def exit_wave_intensity(
    carbon: np.ndarray,
    gold: np.ndarray,
    params: SimParams,
    lens: dict[str, float] | None,
    *,
    phonon_seed: int = 0,
) -> tuple[np.ndarray, int]:
    """Multislice through the atoms; the image intensity (vacuum = 1) after the lens
    ``lens`` (None: the exit wave's intensity), and the number of slices."""
    waves, n_slices = exit_wave(carbon, gold, params, phonon_seed=phonon_seed)
    return image_intensity(waves, lens, params.voltage_kv), n_slices


def motion_frames(
    particles: list[SimParticle], params: SimParams, rng: np.random.Generator
) -> list[np.ndarray]:
    """Au positions (m, 3) nm of each sub-exposure: every particle turned about its centroid
    by a rotation vector of normal components (sd ``motion_rotation_deg``) and shifted in
    x and y (sd ``motion_drift_nm``), independently per frame; the label keeps the mean
    pose."""
    from scipy.spatial.transform import Rotation

    sd_rad = math.radians(params.motion_rotation_deg)
    frames = []
    for _ in range(params.motion_frames):
        moved = []
        for p in particles:
            centre = p.positions_nm.mean(axis=0)
            rot = Rotation.from_rotvec(sd_rad * rng.standard_normal(3))
            shift = np.array([*(params.motion_drift_nm * rng.standard_normal(2)), 0.0])
            moved.append(rot.apply(p.positions_nm - centre) + centre + shift)
        frames.append(np.concatenate(moved) if moved else np.zeros((0, 3)))
    return frames


def moving_waves(
    carbon: np.ndarray, frames: list[np.ndarray], params: SimParams
) -> tuple[list, int]:
    """Exit waves of sub-exposures in which the particles move, and the slices computed.

    Notes
    -----
    The film is still, so its exit wave is computed once; each frame's particles (which
    rest on the film) then propagate that wave on through their own slices, starting
    0.25 nm above their lowest atom. Putting every particle right after the film's top
    (instead of at its local surface) changes the free-space gap by at most the film's
    thickness variation, a defocus of a few nm per particle.
    """
    abtem = require_sim()
    L = params.image_size * params.pixel_size_nm
    film = max(params.carbon_thickness_nm[1], float(carbon[:, 2].max()) if len(carbon) else 0.0)
    wave = abtem.PlaneWave(energy=params.voltage_kv * 1e3, gpts=params.image_size, extent=10 * L)
    n_slices = 0
    if len(carbon):
        below = _potential(_cell(carbon, ["C"] * len(carbon), L, film), params, abtem)
        wave, n_slices = wave.multislice(below).compute(), int(below.num_slices)
    out = []
    for gold in frames:
        if not len(gold):
            out.append(wave.copy())
            continue
        z = gold - [0.0, 0.0, float(gold[:, 2].min()) - 0.25]
        pot = _potential(_cell(z, ["Au"] * len(z), L, float(z[:, 2].max()) + 0.5), params, abtem)
        out.append(wave.multislice(pot).compute())
        n_slices += int(pot.num_slices)
    return out, n_slices


@dataclass
class Draws:
    """Everything drawn for one image before any multislice (see :func:`draw_image`)."""

    carbon: np.ndarray
    gold: np.ndarray
    particles: list[SimParticle]
    lens_unit: dict[str, float]  # the lens as uniform variates (lens_of)
    seeds: dict[str, int]  # phonon, noise, motion, illumination, label


def draw_image(params: SimParams, rng: np.random.Generator) -> Draws:
    """The sample, the lens and the seeds of every later draw, in this order: sample, lens,
    phonons, noise (version 1 drew exactly these), then motion, illumination, label."""
    carbon, gold, particles = build_sample(params, rng)
    lens_unit = draw_lens_unit(rng)
    names = ("phonon", "noise", "motion", "illumination", "label")
    return Draws(carbon, gold, particles, lens_unit, {n: int(rng.integers(2**31)) for n in names})


def exit_waves(params: SimParams, d: Draws) -> tuple[list, int]:
    """The exit waves of the drawn sample (one, or one per moving sub-exposure; each
    ``abtem.Waves`` holds the frozen-phonon configurations) and the number of slices."""
    if params.motion_frames == 1:
        waves, n_slices = exit_wave(d.carbon, d.gold, params, phonon_seed=d.seeds["phonon"])
        return [waves], n_slices
    frames = motion_frames(d.particles, params, np.random.default_rng(d.seeds["motion"]))
    return moving_waves(d.carbon, frames, params)


def waves_intensity(waves: list, lens: dict[str, float], voltage_kv: float) -> np.ndarray:
    """Mean image intensity (vacuum = 1) of exit waves through the lens."""
    total = image_intensity(waves[0], lens, voltage_kv)
    for w in waves[1:]:
        total = total + image_intensity(w, lens, voltage_kv)
    return total if len(waves) == 1 else (total / len(waves)).astype(np.float32)


def render_intensity(params: SimParams, d: Draws) -> tuple[np.ndarray, int]:
    """The noise-free image intensity (vacuum = 1) of the drawn sample and lens: one
    multislice, or the mean over moving sub-exposures; and the number of slices."""
    waves, n_slices = exit_waves(params, d)
    return waves_intensity(waves, lens_of(params, d.lens_unit), params.voltage_kv), n_slices


def label_mask(params: SimParams, d: Draws) -> np.ndarray:
    """The label: union of the particles' projected footprints, or of hand-drawn-like
    polygons around them (``label_style``); sets each particle's ``area_px``."""
    from temseg.data.sim_background import polygon_label

    rng = np.random.default_rng(d.seeds["label"])
    mask = np.zeros((params.image_size, params.image_size), dtype=np.uint8)
    for p in d.particles:
        m = footprint_mask(
            p.positions_nm,
            image_size=params.image_size,
            pixel_size_nm=params.pixel_size_nm,
            atom_radius_nm=params.label_atom_radius_nm,
            periodic=params.field_margin == 0,
        )
        if params.label_style == "polygon":
            m = polygon_label(
                m,
                p.center_yx,
                rng,
                vertices=params.label_vertices,
                jitter_px=params.label_jitter_nm / params.pixel_size_nm,
            )
        p.area_px = int(m.sum())
        mask |= m
    return mask


def finish_image(
    params: SimParams, d: Draws, intensity: np.ndarray, n_slices: int, seconds: float = 0.0
) -> Simulated:
    """Label, illumination and detector applied to a rendered intensity. Only these read
    ``label_*``, ``illumination_variation``, ``detector``, ``dose`` and ``gain``, so one
    rendering serves every setting of them (same draws, same bytes as simulating anew)."""
    from temseg.data.detector import detect, get_camera
    from temseg.data.sim_background import illumination

    t0 = time.perf_counter()
    mask = label_mask(params, d)
    lit = intensity
    if params.illumination_variation > 0:
        rng = np.random.default_rng(d.seeds["illumination"])
        lit = intensity * illumination(rng, params.image_size, params.illumination_variation)
    counts = detect(
        lit,
        params.dose * (10.0 * params.pixel_size_nm) ** 2,
        get_camera(params.detector),
        np.random.default_rng(d.seeds["noise"]),
        gain=params.gain,
    )
    return Simulated(
        counts=counts,
        mask=mask,
        intensity=intensity,
        particles=d.particles,
        lens=lens_of(params, d.lens_unit),
        n_carbon=len(d.carbon),
        n_gold=len(d.gold),
        n_slices=n_slices,
        seconds=seconds + time.perf_counter() - t0,
    )


def simulate_image(params: SimParams, rng: np.random.Generator) -> Simulated:
    """Simulate one image (raw counts) and its label.

    Parameters
    ----------
    params
        The image model (:class:`SimParams`, module docstring).
    rng
        Source of every random draw (:func:`draw_image`).

    Returns
    -------
    Simulated
        ``counts`` the detector's raw counts at ``dose * (10 * pixel_size_nm)^2`` electrons
        per pixel (:mod:`temseg.data.detector`); ``mask`` the label; ``intensity`` the
        noise-free image before illumination and detector.
    """
    t0 = time.perf_counter()
    d = draw_image(params, rng)
    intensity, n_slices = render_intensity(params, d)
    return finish_image(params, d, intensity, n_slices, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- stores


class _Bar:
    """A tqdm bar on stderr when tqdm is installed, else one line per image."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        self.enabled = enabled
        self.total = total
        self.desc = desc
        self.done = 0
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="image", desc=desc, file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self, seconds: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{seconds:.1f} s/image")
        elif self.enabled:
            print(f"{self.desc}: image {self.done}/{self.total} ({seconds:.1f} s)", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_simulated_store(
    out: str | os.PathLike,
    *,
    preset: str,
    images: int,
    seed: int,
    image_size: int = 512,
    patch_size: int = 512,
    min_particle_px: int = 400,
    split_fractions: Sequence[float] | None = None,
    flat_field: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    image_source: Callable[[SimParams, int], Simulated] | None = None,
    **overrides: Any,
) -> Path:
    """Simulate ``images`` multislice images and write them as a patch store.

    Parameters
    ----------
    out
        Store directory; must not exist unless ``overwrite``.
    preset
        ``hr-2.2nm``, ``hr-5nm`` or ``hr-10nm``: particle diameter, pixel size, coverage and
        dose (``lr-20nm`` is refused: Au fringes are not resolvable at 0.1243 nm/px).
    images, seed
        Number of images; image i draws from ``default_rng([seed, i])``.
    image_size, patch_size, min_particle_px, split_fractions, flat_field
        As for :func:`temseg.data.synth.make_synthetic_store` (default one 512 px patch per
        512 px image; no flat field).
    image_source
        ``(params, i) -> Simulated``, by default :func:`simulate_image` of image i; a script
        that finishes cached renderings under other settings passes its own.
    overrides
        Any :class:`SimParams` field (``defocus_nm``, ``dose``, ``field_carbon_level``, ...).

    Returns
    -------
    Path
        The store. Its ``simulation`` attribute holds every parameter, the seed, the abTEM
        and ASE versions, and per image everything drawn (lens, particles, atom counts).

    Examples
    --------
    >>> make_simulated_store("/tmp/ms.zarr", preset="hr-2.2nm", images=10, seed=0,
    ...                      image_size=256, patch_size=256)  # doctest: +SKIP
    """
    from temseg.data.pipeline import write_generated_store
    from temseg.data.synth import _check_counts

    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite / --overwrite to replace it)")
    params = sim_params(preset, image_size=image_size, **overrides)
    _check_counts(images, seed, patch_size, min_particle_px, params.image_size)
    if split_fractions is not None and len(split_fractions) != 3:
        raise ValueError(f"split_fractions must be 3 numbers, got {split_fractions}")
    require_sim()
    records: list[dict[str, Any]] = []  # per image, filled while the images are made
    source = image_source or partial(_seeded_image, seed)
    bar = _Bar(images, out.name, progress)
    t0 = time.perf_counter()
    path = write_generated_store(
        out,
        _raw_images(params, source, images, records, bar),
        origin=f"multislice:{preset}",
        images=images,
        seed=seed,
        regime="hr",
        flat_field=flat_field,
        pixel_size_nm=params.pixel_size_nm,
        patch_size=patch_size,
        min_particle_px=min_particle_px,
        extra_attrs={"simulation": _simulation_record(params, seed, images, records)},
        overwrite=overwrite,
        split_fractions=split_fractions,
        **_field_context(params),
    )
    if log:
        wall = time.perf_counter() - t0
        log(f"{images} images in {wall:.1f} s ({wall / images:.2f} s per image)")
    return path


def _seeded_image(seed: int, params: SimParams, i: int) -> Simulated:
    """Image i of a store of seed ``seed``."""
    return simulate_image(params, np.random.default_rng([seed, i]))


def _raw_images(
    params: SimParams,
    source: Callable[[SimParams, int], Simulated],
    images: int,
    records: list[dict[str, Any]],
    bar: _Bar,
):
    """Each image's raw counts and label, as the store's writer takes them; appends each
    image's record to ``records``."""
    try:
        for i in range(images):
            sim = source(params, i)
            records.append(sim.record())
            bar.update(sim.seconds)
            yield sim.counts, sim.mask
    finally:
        bar.close()


def _field_context(params: SimParams) -> dict[str, Any]:
    """The store writer's options for field context (none when it is off, so the store is
    byte for byte what it was before the knob): each preprocessed image standardized in its
    modelled field (affine: the same as from the counts), and the record saying so."""
    from temseg.data.sim_background import standardize_in_field

    if params.field_carbon_level is None:
        return {}
    return {
        "restandardize": partial(
            standardize_in_field,
            carbon_level=params.field_carbon_level,
            std_ratio=params.field_std_ratio,
        ),
        "standardization": (
            f"per image in a modelled field: the carbon (label 0) at "
            f"{params.field_carbon_level:+g} field sd, field sd {params.field_std_ratio:g} x "
            "the carbon's sd (simulation.field_carbon_level, field_std_ratio)"
        ),
    }


def _simulation_record(
    params: SimParams, seed: int, images: int, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """The store's ``simulation`` attribute: every parameter, the versions, the camera and
    ``records`` (filled per image while the images are made, before the write)."""
    import abtem
    import ase

    from temseg.data.detector import get_camera

    return {
        **params.to_dict(),
        "seed": int(seed),
        "images": int(images),
        "method": "abTEM plane-wave multislice",
        "abtem_version": abtem.__version__,
        "ase_version": ase.__version__,
        "camera": get_camera(params.detector).to_dict(),
        "per_image": records,
    }


SIM_PRESETS = tuple(name for name, p in PRESETS.items() if p.pixel_size_nm <= max_pixel_size_nm())
