"""The arguments of the data commands (ingest, synth, simulate, synth-image, synth-series,
info, preview): one ``add_<command>(sub)`` per command, returning its subparser.

Declarations only: :func:`temseg.data.cli.register` attaches the handlers. Nothing heavy is
imported here (no numpy, zarr or torch), so ``temseg --help`` stays instant; the help texts
quote the presets' values from the tables below (the tests check them against
temseg.data.synth).
"""

from __future__ import annotations

import argparse
import dataclasses
import re

PRESET_NAMES = ("hr-2.2nm", "hr-5nm", "hr-10nm", "lr-20nm")  # = temseg.data.synth.PRESETS


# The presets' values of the difficulty knobs, for the help texts (numpy stays unimported
# here; the tests check this against temseg.data.synth.PRESETS and GeneratorParams).
PRESET_KNOBS = {
    "hr-2.2nm": {"pixel_size_nm": 0.02, "coverage": 0.18, "defocus_nm": (-12.0, 12.0)},
    "hr-5nm": {"pixel_size_nm": 0.02152, "coverage": 0.22, "defocus_nm": (-12.0, 12.0)},
    "hr-10nm": {"pixel_size_nm": 0.02, "coverage": 0.25, "defocus_nm": (-12.0, 12.0)},
    "lr-20nm": {"pixel_size_nm": 0.1243, "coverage": 0.22, "defocus_nm": (-150.0, -30.0)},
}


DEFAULT_ASTIGMATISM_NM = (0.0, 2.0)  # = GeneratorParams.astigmatism_nm, every preset


# generator field -> its flag (synth, synth-series, preview); None on the command line means
# "the preset's value", and a set one reaches GeneratorParams (and the store's provenance)
KNOB_FLAGS = {
    "defocus_nm": "--defocus-nm",
    "astigmatism_nm": "--astigmatism-nm",
    "coverage": "--coverage",
    "pixel_size_nm": "--pixel-size-nm",
    "fringe_free_fraction": "--fringe-free-fraction",
    "dose": "--dose",
    "illumination": "--illumination",
    "version": "--generator-version",
}


# the illumination 1 + a*(2y + 2x + bump), y and x in [-1/2, 1/2], stays > 0 for a < 1/3
MAX_ILLUMINATION = 1 / 3


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _range(text: str) -> tuple[float, float]:
    """``MIN,MAX`` (or one number N, meaning N,N) as a (min, max) pair of floats."""
    parts = [v.strip() for v in text.split(",")]
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in nm, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two numbers), got {text!r}")
    if not values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"MIN must be <= MAX, got {text!r}")
    return values[0], values[1]


def _float_or_off(text: str) -> float | str:
    """Parse a number, or the word 'off'."""
    if text.strip().lower() == "off":
        return "off"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def _illumination(text: str) -> float:
    """Parse --illumination: an amplitude in [0, 1/3)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < MAX_ILLUMINATION:
        raise argparse.ArgumentTypeError(f"must lie in [0, 0.333), got {text}")
    return value


def _sim_default(name: str) -> str:
    from temseg.data.simulate import SimParams

    value = {f.name: f.default for f in dataclasses.fields(SimParams)}[name]
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value}"


SIM_DEFAULT = re.compile(r"\{sim-default:(\w+)\}")


class _SimHelpFormatter(argparse.HelpFormatter):
    """Fills ``{sim-default:FIELD}`` in a help text with :class:`SimParams`' default when the
    help is shown: registering the command must not import the simulator (numpy, scipy)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return text and SIM_DEFAULT.sub(lambda m: _sim_default(m.group(1)), text)


def _add_sim_knobs(p: argparse.ArgumentParser) -> None:
    """The realism knobs of the multislice model (docs/physics.md, the ablation)."""
    helps = {
        "carbon_correlation_nm": (float, "lateral scale of the film's thickness variation"),
        "contamination_per_100nm2": (float, "contamination patches per 100 nm^2"),
        "illumination_variation": (float, "peak-to-peak relative illumination variation"),
        "zone_axis_fraction": (float, "share of particles on a low-index zone axis"),
        "field_margin": (float, "particles centred up to this many diameters outside, cut"),
        "motion_frames": (int, "sub-exposures averaged while particles move (1 = still)"),
        "motion_rotation_deg": (float, "sd of a particle's rotation per sub-exposure"),
        "motion_drift_nm": (float, "sd of a particle's in-plane shift per sub-exposure"),
        "detector": (str, "camera class: poisson (v1), ideal (counting), ceta (scintillator CMOS)"),
        "label_style": (str, "footprint (from the atoms) or polygon (hand-drawn-like)"),
        "label_jitter_nm": (float, "sd of a polygon click's position per axis"),
        "field_carbon_level": (
            _float_or_off,
            "standardize each cell in a modelled 88 nm field: its carbon this many field sd "
            "above the field's mean ('off': over the cell itself, as v1)",
        ),
        "field_std_ratio": (float, "the modelled field's sd over the cell's carbon sd"),
    }
    p.add_argument(
        "--v1",
        action="store_true",
        help="start from the version 1 model (zone-axis share 0.6, the preset's coverage, "
        "uncut particles, flat 3 nm film, still particles, poisson detector, footprint "
        "labels, each cell standardized over itself); the flags above still override it",
    )
    choices = {"detector": ("poisson", "ideal", "ceta"), "label_style": ("footprint", "polygon")}
    for name, (kind, text) in helps.items():
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            choices=choices.get(name),
            help=f"{text} (default {{sim-default:{name}}})",
        )


def _add_patch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patch-size", type=int, default=512, help="patch side in px (default 512)")
    p.add_argument(
        "--min-particle-px",
        type=int,
        default=400,
        help="drop patches with fewer particle pixels (default 400, as the authors)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")


def add_flat_field_arg(p: argparse.ArgumentParser) -> None:
    """``--flat-field``: the same flag on every command that preprocesses images."""
    p.add_argument(
        "--flat-field",
        action="store_true",
        help=(
            "divide out uneven illumination before standardization: a degree-2 polynomial "
            "fitted robustly to the image's background (blocks far from it, i.e. particles, "
            "left out). Off by default, as in the paper; recorded in the store, and a network "
            "trained on such a store segments with it"
        ),
    )


def _add_generator_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PRESET_NAMES, required=True, help="dataset of the paper")
    p.add_argument("--images", type=int, required=True, help="number of images to generate")
    p.add_argument("--seed", type=int, required=True, help="seed (same seed, same bytes)")
    p.add_argument(
        "--image-size",
        type=int,
        help="image side in px (default: the paper's, 4096 HR / 2048 LR; 512 is quick)",
    )
    _add_knob_args(p)
    _add_patch_args(p)


def _per_preset(field: str, fmt=lambda v: f"{v:g}") -> str:
    return ", ".join(f"{fmt(k[field])} {name}" for name, k in PRESET_KNOBS.items())


def _add_knob_args(p: argparse.ArgumentParser) -> None:
    """The generator's difficulty knobs; each left out keeps the preset's value, each given is
    recorded in the store's ``generator`` attribute (``temseg info`` shows them)."""
    g = p.add_argument_group(
        "difficulty knobs",
        "Override the preset's imaging and sample conditions (recorded in the store). Write a "
        "negative range with '=', e.g. --defocus-nm=-12,-6.",
    )
    g.add_argument(
        "--defocus-nm",
        type=_range,
        metavar="MIN,MAX",
        help=(
            "defocus range in nm, drawn uniformly per image (negative = underfocus; one number "
            "fixes it). Lattice fringes are a phase grating and transfer as sin chi: near 0 nm "
            "(Gaussian focus) they all but vanish and particles show by amplitude contrast "
            "alone; around -12 nm HR {111}/{200} fringes transfer fully. Default: "
            + _per_preset("defocus_nm", lambda v: f"{v[0]:g},{v[1]:g}")
        ),
    )
    g.add_argument(
        "--astigmatism-nm",
        type=_range,
        metavar="MIN,MAX",
        help=(
            "twofold astigmatism magnitude A range in nm, drawn per image with a random "
            "azimuth: the defocus is df + A along one direction and df - A across it, so "
            "fringes of some orientations transfer worse than others (elliptical Thon rings "
            "in the carbon). Default: {:g},{:g} for every preset".format(*DEFAULT_ASTIGMATISM_NM)
        ),
    )
    g.add_argument(
        "--coverage",
        type=float,
        metavar="F",
        help=(
            "particle area fraction, 0 < F < 0.6 (each image draws 0.7-1.3 x F): more and "
            "closer particles, fewer patches of bare carbon. Default: " + _per_preset("coverage")
        ),
    )
    g.add_argument(
        "--pixel-size-nm",
        type=float,
        metavar="F",
        help=(
            "sampling in nm/px instead of the preset's: the same particles in nm, lens and "
            "dose per area at another sampling, e.g. 0.04 for a coarser, cheaper study (each "
            "particle covers 4x fewer pixels, so lower --min-particle-px with it; fringes "
            "above 0.9 Nyquist are dropped). Default: " + _per_preset("pixel_size_nm")
        ),
    )
    g.add_argument(
        "--fringe-free-fraction",
        type=float,
        metavar="F",
        help="share of particles without lattice fringes, 0-1 (default 0.15 HR, 1.0 LR)",
    )
    g.add_argument(
        "--dose",
        type=float,
        metavar="E",
        help="electron dose in e/A^2, which sets the Poisson noise (default 423 HR, 16 LR)",
    )
    g.add_argument(
        "--illumination",
        type=_illumination,
        metavar="A",
        help=(
            "uneven illumination: the beam's intensity is 1 + a_y*2y + a_x*2x + a_b*bump "
            "(y, x from -1/2 to 1/2 across the image, a broad Gaussian bump), each a drawn "
            "uniformly in [-A, A] per image; 0 <= A < 1/3. Default 0.08 (every preset); 0.25 "
            "gives corners up to ~1.5x apart, as a badly centred beam"
        ),
    )
    g.add_argument(
        "--generator-version",
        dest="version",
        type=int,
        metavar="V",
        help=(
            "image model version (default 3, tuned against the authors' real-data networks, "
            "docs/physics.md); 2 reproduces stores made before it, byte for byte"
        ),
    )


def add_ingest(sub) -> argparse.ArgumentParser:
    """The ``ingest`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "ingest",
        help="real microscope images + masks -> patch store",
        description=(
            "Read images (.dm3/.dm4/.ser/.emd via ncempy, .tif/.png/.npy) and hand-drawn "
            "binary masks, apply the paper's preprocessing (negatives to 0, x-ray removal, "
            "per-image standardization), cut P x P patches, drop patches with too few "
            "particle pixels, split 70/10/20 keeping each file on one side (>= 3 files) and "
            "write a Zarr patch store. 3-D stacks give one image per frame."
        ),
    )
    p.add_argument("out", help="store to create, e.g. data/au5nm.zarr")
    p.add_argument("--image", action="append", metavar="IMG", help="image file (repeat)")
    p.add_argument("--mask", action="append", metavar="MASK", help="its mask (repeat, same order)")
    p.add_argument(
        "--folder",
        help="pair every image in DIR with DIR/<stem>_mask.* (or _label.*) by file stem",
    )
    p.add_argument("--mask-folder", help="with --folder: masks named <stem>.* in this folder")
    p.add_argument(
        "--pixel-size-nm",
        type=float,
        help="pixel size in nm (overrides the file's calibration; required for TIFF/PNG)",
    )
    p.add_argument(
        "--xray-threshold",
        type=float,
        help="x-ray outliers: counts above median + T (default 1500 HR, 400 LR by pixel size)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument(
        "--resample",
        action="store_true",
        help="interpolate anisotropic pixels onto square ones instead of refusing the file",
    )
    add_flat_field_arg(p)
    _add_patch_args(p)
    return p


def add_synth(sub) -> argparse.ArgumentParser:
    """The ``synth`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "synth",
        help="synthetic TEM images of Au particles -> patch store",
        description=(
            "Generate raw-count images with the physically-motivated model (faceted Au "
            "particles with thickness-scaled amplitude contrast C and fcc lattice fringes, "
            "amorphous carbon, lens phase plate, illumination, Poisson noise at the dose, "
            "x-ray spikes), preprocess them like real files and write a patch store."
        ),
    )
    p.add_argument("out", help="store to create, e.g. data/hr-2.2nm-c0.060-s0.zarr")
    p.add_argument(
        "--contrast", type=float, required=True, help="C: particle centre intensity 1 - C"
    )
    _add_generator_args(p)
    add_flat_field_arg(p)
    return p


def add_simulate(sub) -> argparse.ArgumentParser:
    """The ``simulate`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "simulate",
        formatter_class=_SimHelpFormatter,
        help="multislice-simulated HRTEM images (abTEM) -> patch store (pip install temseg[sim])",
        description=(
            "Build Au nanoparticles from atoms (ase.cluster: truncated octahedra, decahedra, "
            "icosahedra; the preset's diameter with 12 %% spread; low-index zone axes or "
            "random orientations) on an amorphous carbon film, run an abTEM plane-wave "
            "multislice at 300 kV, apply a lens drawn per image (defocus, astigmatism, Cs, "
            "objective aperture, focal spread, convergence), record it with a named camera "
            "(ideal counting, Ceta-like scintillator CMOS, or v1's bare Poisson), "
            "label the particles' projected footprint from their atoms, preprocess like "
            "real files and write a patch store (attribute 'simulation': every parameter "
            "and, per image, everything drawn). Needs the optional extra: "
            "pip install 'temseg[sim]'."
        ),
    )
    p.add_argument("out", help="store to create, e.g. data/ms-hr-2.2nm-s0.zarr")
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES[:3],
        required=True,
        help="particle diameter, pixel size, coverage and dose of a paper dataset (HR only)",
    )
    p.add_argument("--images", type=int, required=True, help="number of images to simulate")
    p.add_argument("--seed", type=int, required=True, help="seed (same seed, same bytes)")
    p.add_argument("--image-size", type=int, default=512, help="image side in px (default 512)")
    p.add_argument(
        "--carbon-thickness-nm",
        type=_range,
        metavar="MIN,MAX",
        help="amorphous carbon film thickness in nm; a range makes a film whose thickness "
        "varies over it on the scale of --carbon-correlation-nm (default "
        "{sim-default:carbon_thickness_nm})",
    )
    p.add_argument(
        "--defocus-nm",
        type=_range,
        metavar="MIN,MAX",
        help="defocus range, negative = underfocus (default -12,12, as the fast generator)",
    )
    p.add_argument(
        "--aperture-mrad",
        type=_range,
        metavar="MIN,MAX",
        help="objective aperture semiangle range in mrad (default 20,30)",
    )
    p.add_argument(
        "--coverage",
        type=float,
        metavar="F",
        help="particle area fraction (default 0.022, the lab's real 4096 px label; --v1: "
        "the preset's)",
    )
    p.add_argument(
        "--pixel-size-nm",
        type=float,
        metavar="F",
        help="sampling (must resolve Au {111} within the multislice band limit: <= 0.0785)",
    )
    p.add_argument("--dose", type=float, metavar="E", help="dose in e/A^2 (default 423)")
    p.add_argument(
        "--frozen-phonons",
        type=int,
        metavar="N",
        help="frozen-phonon configurations averaged per image (default 0: static lattice)",
    )
    p.add_argument(
        "--slice-thickness-nm", type=float, metavar="DZ", help="multislice slice (default 0.2)"
    )
    _add_sim_knobs(p)
    p.add_argument("--threads", type=int, default=1, help="numba/FFT threads for abTEM (default 1)")
    add_flat_field_arg(p)
    _add_patch_args(p)
    return p


def add_synth_image(sub) -> argparse.ArgumentParser:
    """The ``synth-image`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "synth-image",
        help="one whole synthetic micrograph (TIFF with pixel size), its mask and particle list",
        description=(
            "Write OUT.tif (raw counts, float32, pixel size as ImageJ calibration, which "
            "temseg segment and ingest read), OUT_mask.tif (uint8 0/1) and OUT_particles.csv "
            "(the generator's own particle list: centre, drawn diameter, label area and "
            "equivalent-circle diameter, touches_border, contrast, zone axis). Same image "
            "model as synth; the image draws from seed and --index, so it equals image INDEX "
            "of a synth store with the same seed, preset, contrast, size and knobs."
        ),
    )
    p.add_argument("out", help="micrograph to write, e.g. test.tif")
    p.add_argument("--preset", choices=PRESET_NAMES, required=True, help="dataset of the paper")
    p.add_argument("--seed", type=int, required=True, help="seed (same seed, same bytes)")
    p.add_argument(
        "--size",
        type=int,
        help="image side in px (default: the paper's, 4096 HR / 2048 LR)",
    )
    p.add_argument(
        "--contrast",
        type=float,
        default=0.09,
        help="C: particle centre intensity 1 - C (default 0.09, the demo's low level)",
    )
    p.add_argument("--index", type=int, default=0, help="image index within the seed (default 0)")
    _add_knob_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    return p


def add_synth_series(sub) -> argparse.ArgumentParser:
    """The ``synth-series`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "synth-series",
        help="one synthetic store per contrast level (reuses matching stores)",
        description=(
            "Write OUT_DIR/<preset>-c<C>-s<seed>.zarr for every contrast level, all from one "
            "seed (same particles, carbon and lens; only C differs). A store that already "
            "exists with identical parameters is reused; prints a CSV of measured contrast."
        ),
    )
    p.add_argument("out_dir", help="folder for the stores")
    p.add_argument(
        "--contrasts",
        type=_float_list,
        required=True,
        help="comma-separated C levels, e.g. 0.02,0.06,0.2",
    )
    _add_generator_args(p)
    return p


def add_info(sub) -> argparse.ArgumentParser:
    """The ``info`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "info",
        help="summary of a patch store",
        description="Print a patch store's patches per split, pixel size, contrast and origin.",
    )
    p.add_argument("store", help="patch store (.zarr directory)")
    p.add_argument("--json", action="store_true", help="print every attribute as JSON")
    return p


def add_preview(sub) -> argparse.ArgumentParser:
    """The ``preview`` subparser, with its arguments (no handler)."""
    p = sub.add_parser(
        "preview",
        help="PNG of a synthetic image (or a stored patch) beside its mask",
        description=(
            "Write OUT.png: the image, its mask, and the image with the mask outline in red. "
            "By default renders a 512 x 512 synthetic HR image (hr-2.2nm, C = 0.06) through "
            "the store preprocessing, with the same difficulty knobs as synth; with --store "
            "shows a stored patch."
        ),
    )
    p.add_argument("out", help="PNG to write")
    p.add_argument("--preset", choices=PRESET_NAMES, default="hr-2.2nm", help="default hr-2.2nm")
    p.add_argument("--contrast", type=float, default=0.06, help="C (default 0.06)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--image-size", type=int, default=512, help="image side in px (default 512)")
    _add_knob_args(p)
    p.add_argument("--store", help="show a patch of this store instead")
    p.add_argument("--split", default="train", help="with --store: split (default train)")
    p.add_argument("--index", type=int, default=0, help="with --store: patch index (default 0)")
    return p
