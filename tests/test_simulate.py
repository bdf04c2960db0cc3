"""Multislice-simulated stores (temseg.data.simulate).

The tests that run abTEM are skipped when the ``sim`` extra (abtem, ase) is absent; the
parameter checks need neither and always run. Fields are small (192-256 px, no or 1 nm
carbon, few slices) so each test takes a few seconds.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from temseg.data.simulate import D111_NM, max_pixel_size_nm, sim_params

D200_NM = 0.2039  # Au, a = 0.4078 nm


@pytest.fixture(scope="module")
def sim():
    pytest.importorskip("abtem")
    pytest.importorskip("ase")
    from temseg.data import simulate

    simulate.require_sim(threads=1)
    return simulate


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "override, match",
    [
        ({"carbon_thickness_nm": -1.0}, "carbon_thickness_nm must be >= 0"),
        ({"pixel_size_nm": 0.12}, "too coarse for Au \\{111\\}"),
        ({"pixel_size_nm": 0.08}, "too coarse for Au \\{111\\}"),
        ({"aperture_mrad": (5.0, 20.0)}, "cuts the Au \\{111\\} reflection"),
        ({"defocus_nm": (5.0, -5.0)}, "min <= max"),
        ({"dose": 0.0}, "dose must be > 0"),
        ({"no_such_knob": 1}, "unknown simulation parameter"),
    ],
)
def test_bad_parameters_refused(override, match):
    with pytest.raises(ValueError, match=match):
        sim_params("hr-2.2nm", **override)


def test_pixel_limit_is_two_thirds_of_nyquist_for_111():
    # Nyquist d/2 = 0.1177 nm; abTEM keeps 2/3 of Nyquist, so d/3 = 0.0785 nm
    assert max_pixel_size_nm() == pytest.approx(D111_NM / 3)
    # just inside, with an aperture between {111} (8.36 mrad) and the band limit (8.41)
    sim_params("hr-2.2nm", pixel_size_nm=0.078, aperture_mrad=8.4)


def test_cli_refuses_bad_parameters_with_exit_2(tmp_path, capsys):
    from temseg.cli import main

    out = tmp_path / "s.zarr"
    rc = main(["simulate", str(out), "--preset", "hr-2.2nm", "--images", "2", "--seed", "0",
               "--carbon-thickness-nm=-2"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "--carbon-thickness-nm" in err and "must be >= 0" in err
    rc = main(["simulate", str(out), "--preset", "hr-5nm", "--images", "2", "--seed", "0",
               "--pixel-size-nm", "0.15"])  # fmt: skip
    assert rc == 2
    assert "too coarse" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--field-std-ratio", "0"], "--field-std-ratio: field_std_ratio must lie in (0, 100]"),
        (["--field-carbon-level", "nan"], "--field-carbon-level: field_carbon_level must be"),
        (["--field-carbon-level", "abc"], "--field-carbon-level: expected a number or 'off'"),
    ],
)
def test_cli_refuses_bad_field_context_with_exit_2(tmp_path, capsys, flags, message):
    from temseg.cli import main

    out = tmp_path / "s.zarr"
    argv = ["simulate", str(out), "--preset", "hr-5nm", "--images", "2", "--seed", "0", *flags]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusal of a value its type cannot parse
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_field_statistics_of_a_hand_made_cell():
    """Carbon (label 0) 2, 4, 2, 4, 2, 4: mean 3, sd 1; particles 0: the field of carbon
    level 0.5 and sd ratio 2 has sd 2 and mean 3 - 0.5 * 2 = 2, and the cell standardized in
    it puts its carbon at mean 0.5, sd 0.5 and its particles at (0 - 2) / 2 = -1."""
    from temseg.data.sim_background import field_statistics, standardize_in_field

    image = np.array([[2.0, 4.0, 2.0, 4.0], [2.0, 4.0, 0.0, 0.0]])
    mask = np.array([[0, 0, 0, 0], [0, 0, 1, 1]])
    assert field_statistics(image, mask, carbon_level=0.5, std_ratio=2.0) == (2.0, 2.0)
    assert field_statistics(image, mask, carbon_level=-1.0, std_ratio=1.0) == (4.0, 1.0)
    z = standardize_in_field(image, mask, carbon_level=0.5, std_ratio=2.0)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, [[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, -1.0, -1.0]])
    assert z[mask == 0].mean() == 0.5 and z[mask == 0].std() == 0.5
    # no carbon: the whole cell stands in (mean 3, sd 1); a flat carbon counts as sd 1
    assert field_statistics(image[:, :2], np.ones((2, 2)), carbon_level=1.0,
                            std_ratio=1.0) == (2.0, 1.0)  # fmt: skip
    assert field_statistics(np.full((3, 3), 7.0), np.zeros((3, 3)), carbon_level=0.5,
                            std_ratio=3.0) == (5.5, 3.0)  # fmt: skip


def test_field_context_defaults_and_v1():
    """Version 2 standardizes in the calibrated field (docs/physics.md, "Field context");
    --v1 and 'off' over the cell itself, recorded as before the knob existed."""
    p = sim_params("hr-5nm")
    assert (p.field_carbon_level, p.field_std_ratio, p.detector) == (0.7, 2.0, "ceta")
    assert p.to_dict()["field_carbon_level"] == 0.7 and p.to_dict()["field_std_ratio"] == 2.0
    for off in (sim_params("hr-5nm", v1=True), sim_params("hr-5nm", field_carbon_level="off")):
        assert off.field_carbon_level is None
        assert "field_carbon_level" not in off.to_dict()
        assert "field_std_ratio" not in off.to_dict()
    assert sim_params("hr-5nm", v1=True, field_carbon_level=0.2).field_carbon_level == 0.2


def test_importing_the_module_does_not_import_abtem():
    code = "import sys, temseg.data.simulate, temseg.cli; print('abtem' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


# ----------------------------------------------------------------------------- physics


def _disk_union_hull(xy_nm: np.ndarray, size: int, px: float, radius_nm: float) -> np.ndarray:
    """Independent footprint: the convex hull (skimage) of disks of the atomic radius drawn
    around every projected atom."""
    from skimage.morphology import convex_hull_image

    yy, xx = np.mgrid[:size, :size]
    disks = np.zeros((size, size), dtype=bool)
    r = radius_nm / px
    for x, y in xy_nm / px - 0.5:  # pixel centres at (i + 0.5) * px
        y0, y1 = int(max(0, y - r - 1)), int(min(size, y + r + 2))
        x0, x1 = int(max(0, x - r - 1)), int(min(size, x + r + 2))
        sub = (yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2 <= r * r
        disks[y0:y1, x0:x1] |= sub
    return convex_hull_image(disks)


@pytest.mark.parametrize("shape, args", [("truncated-octahedron", (8, 2)), ("icosahedron", (5,))])
def test_label_is_the_atoms_projected_footprint(sim, shape, args):
    from scipy.spatial.transform import Rotation

    size, px = 192, 0.02
    pos = sim.build_cluster(shape, args).positions / 10.0
    pos = Rotation.from_euler("xyz", [0.3, 1.1, 0.4]).apply(pos) + [1.9, 1.95, 1.0]
    mask = sim.footprint_mask(pos, image_size=size, pixel_size_nm=px)
    ref = _disk_union_hull(pos[:, :2], size, px, sim.AU_ATOM_RADIUS_NM)
    iou = (mask.astype(bool) & ref).sum() / (mask.astype(bool) | ref).sum()
    assert iou > 0.97
    cols = np.floor(pos[:, :2] / px).astype(int)
    assert mask[cols[:, 1], cols[:, 0]].all()  # every atom column lies inside


def test_store_labels_follow_the_projected_potential(sim):
    """In a simulated sample, the label covers where abTEM puts the Au potential."""
    import abtem
    from ase import Atoms
    from scipy import ndimage

    params = sim.sim_params(
        "hr-2.2nm", v1=True, image_size=192, carbon_thickness_nm=0.0, coverage=0.3
    )
    _, gold, particles = sim.build_sample(params, np.random.default_rng(4))
    assert particles
    mask = np.zeros((192, 192), dtype=np.uint8)
    for p in particles:
        mask |= sim.footprint_mask(p.positions_nm, image_size=192, pixel_size_nm=0.02)
    L = 192 * 0.02 * 10
    atoms = Atoms(["Au"] * len(gold), positions=gold * 10, cell=[L, L, 60], pbc=True)
    atoms.wrap()
    pot = abtem.Potential(atoms, gpts=192, slice_thickness=5, projection="infinite")
    proj = np.asarray(pot.build().project().compute().array).T
    blurred = ndimage.gaussian_filter(proj, 3, mode="wrap")
    where = blurred > 0.25 * np.percentile(blurred[mask > 0], 50)
    assert (where & (mask == 0)).sum() < 0.02 * where.sum()  # potential outside the label
    # the label reaches an atomic radius past the outermost atoms, where a tilted particle's
    # rim is one or two atoms thin: inside a rim of 0.16 nm all of it carries potential
    core = ndimage.binary_erosion(mask > 0, iterations=8)
    assert core.sum() > 0.5 * mask.sum()
    assert (core & ~where).sum() < 0.01 * core.sum()


def _spot_frequencies(image: np.ndarray, px: float, band: tuple[float, float]) -> float:
    """|k| (nm^-1) of the brightest spot of each Friedel pair in an annulus, refined by a
    3 x 3 power-weighted centroid."""
    n = image.shape[0]
    win = np.hanning(n)[:, None] * np.hanning(n)[None, :]
    power = np.abs(np.fft.fftshift(np.fft.fft2((image - image.mean()) * win))) ** 2
    f = (np.arange(n) - n // 2) / (n * px)
    ky, kx = np.meshgrid(f, f, indexing="ij")
    k = np.hypot(ky, kx)
    ring = (k >= band[0]) & (k <= band[1])
    p = np.where(ring, power, 0)
    i, j = np.unravel_index(np.argmax(p), p.shape)
    w = power[i - 1 : i + 2, j - 1 : j + 2]
    cy = (w * ky[i - 1 : i + 2, j - 1 : j + 2]).sum() / w.sum()
    cx = (w * kx[i - 1 : i + 2, j - 1 : j + 2]).sum() / w.sum()
    return float(np.hypot(cy, cx))


def test_110_zone_axis_shows_111_and_200_within_3_percent(sim):
    params = sim.sim_params(
        "hr-5nm",
        v1=True,
        image_size=256,
        pixel_size_nm=0.02,
        carbon_thickness_nm=0.0,
        coverage=0.05,
        diameter_nm=3.5,
        diameter_sd=0.0,
        shapes=("truncated-octahedron",),
        shape_weights=(1.0,),
        zone_axis_fraction=1.0,
        fcc_zone_weights=(1.0, 0.0, 0.0),
        slice_thickness_nm=0.25,
    )
    carbon, gold, particles = sim.build_sample(params, np.random.default_rng(1))
    assert len(particles) == 1 and particles[0].orientation == "[110]"
    lens = {
        "defocus_nm": -8.0,
        "astigmatism_nm": 0.0,
        "astigmatism_angle_rad": 0.0,
        "cs_mm": 0.0,
        "aperture_mrad": 25.0,
        "focal_spread_nm": 0.0,
        "convergence_mrad": 0.0,
    }
    image, _ = sim.exit_wave_intensity(carbon, gold, params, lens)
    k111 = _spot_frequencies(image, 0.02, (3.9, 4.55))
    k200 = _spot_frequencies(image, 0.02, (4.65, 5.2))
    assert k111 == pytest.approx(1 / D111_NM, rel=0.03)
    assert k200 == pytest.approx(1 / D200_NM, rel=0.03)


def test_same_seed_same_image_and_store(sim, tmp_path, capsys):
    params = sim.sim_params("hr-2.2nm", v1=True, image_size=192, carbon_thickness_nm=1.0)
    a = sim.simulate_image(params, np.random.default_rng([3, 0]))
    b = sim.simulate_image(params, np.random.default_rng([3, 0]))
    c = sim.simulate_image(params, np.random.default_rng([4, 0]))
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.record() == b.record()
    assert not np.array_equal(a.counts, c.counts)

    from temseg.data.store import read_attrs

    kw = dict(preset="hr-2.2nm", images=3, seed=2, image_size=192, patch_size=192,
              min_particle_px=50, carbon_thickness_nm=1.0, progress=False)  # fmt: skip
    s1 = sim.make_simulated_store(tmp_path / "a.zarr", **kw)
    s2 = sim.make_simulated_store(tmp_path / "b.zarr", **kw)
    a1, a2 = read_attrs(s1), read_attrs(s2)
    assert a1["content_hash"] == a2["content_hash"]
    assert a1["kind"] == "synthetic"
    simulation = a1["simulation"]
    assert simulation["carbon_thickness_nm"] == [1.0, 1.0] and simulation["seed"] == 2
    # the calibrated defaults (docs/physics.md, the ablation), recorded
    assert simulation["version"] == 2 and simulation["camera"]["name"] == "ceta"
    assert simulation["zone_axis_fraction"] == 0.0 and simulation["field_margin"] == 0.4
    assert simulation["coverage"] == 0.022 and simulation["illumination_variation"] == 0.1
    assert simulation["field_carbon_level"] == 0.7 and simulation["field_std_ratio"] == 2.0
    assert {"zone_axis_fraction", "motion_frames", "detector", "label_style", "field_margin",
            "illumination_variation", "contamination_per_100nm2"} <= set(simulation)  # fmt: skip
    assert len(simulation["per_image"]) == 3
    assert set(simulation["per_image"][0]["lens"]) >= {"defocus_nm", "aperture_mrad"}
    assert sum(a1["n_patches"].values()) >= 1

    from temseg.cli import main

    assert main(["info", str(s1)]) == 0
    assert "simulation:     abTEM plane-wave multislice" in capsys.readouterr().out


# ----------------------------------------------------------------------------- realism knobs


def test_camera_noise_and_mtf_are_the_models():
    """On a flat field every camera keeps the mean; ideal counting leaves Poisson noise
    (variance N), the Ceta model's variance is N mean(|H|^2) and its noise is blurred."""
    from temseg.data.detector import CAMERAS, detect, mtf, noise_transfer

    n, electrons = 256, 20.0
    flat = np.ones((n, n), dtype=np.float32)
    for name in ("poisson", "ideal", "ceta"):
        cam = CAMERAS[name]
        counts = detect(flat, electrons, cam, np.random.default_rng(0), gain=1.0)
        assert counts.mean() == pytest.approx(electrons, rel=0.01)
        h = noise_transfer(cam, (n, n))
        full = np.concatenate([h, h[:, 1:-1][:, ::-1]], axis=1)  # rfft grid -> full grid
        expected = electrons * float((full**2).mean()) if name != "poisson" else electrons
        assert counts.var() == pytest.approx(expected, rel=0.05)
    assert mtf(CAMERAS["ceta"], (64, 64))[0, 32] == pytest.approx(0.103, abs=0.001)
    assert mtf(CAMERAS["ideal"], (64, 64))[0, 32] == pytest.approx(2 / np.pi)
    assert (mtf(CAMERAS["poisson"], (64, 64)) == 1).all()
    # DQE(0) = 0.5: the Ceta's noise at zero frequency is twice Poisson
    assert noise_transfer(CAMERAS["ceta"], (64, 64))[0, 0] ** 2 == pytest.approx(2.0)


def test_camera_name_refused():
    with pytest.raises(ValueError, match="detector must be one of poisson, ideal, ceta"):
        sim_params("hr-2.2nm", detector="k3")


@pytest.mark.parametrize(
    "override, match",
    [
        ({"motion_frames": 0}, "motion_frames must be >= 1"),
        ({"illumination_variation": 1.5}, "illumination_variation must lie in"),
        ({"label_style": "freehand"}, "label_style must be one of"),
        ({"carbon_thickness_nm": (5.0, 2.0)}, "min <= max"),
        ({"motion_frames": 3, "frozen_phonons": 2}, "cannot be combined"),
        ({"field_carbon_level": float("nan")}, "field_carbon_level must be 'off' or a level"),
        ({"field_carbon_level": 7.0}, "field_carbon_level must be 'off' or a level"),
        ({"field_carbon_level": "on"}, "field_carbon_level must be 'off' or a level"),
        ({"field_std_ratio": 0.0}, "field_std_ratio must lie in \\(0, 100\\]"),
        ({"field_std_ratio": -1.5}, "field_std_ratio must lie in \\(0, 100\\]"),
    ],
)
def test_bad_knobs_refused(override, match):
    with pytest.raises(ValueError, match=match):
        sim_params("hr-2.2nm", **override)


SMALL = dict(image_size=192, carbon_thickness_nm=1.0)


def _pair(sim, seed=3, **knobs):
    params = sim.sim_params("hr-2.2nm", v1=True, **{**SMALL, **knobs})
    a = sim.simulate_image(params, np.random.default_rng([seed, 0]))
    b = sim.simulate_image(params, np.random.default_rng([seed, 0]))
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.record() == b.record()
    return a


def test_version_1_settings_give_the_version_1_image(sim):
    """The v1 model's bytes (checksums of the first simulator, commit 3ab3992)."""
    a = _pair(sim)
    assert float(a.counts.sum()) == 6135180.0 and int(a.mask.sum()) == 5087


def test_detector_blurs_and_keeps_the_rendering(sim):
    base, ceta = _pair(sim), _pair(sim, detector="ceta")
    np.testing.assert_array_equal(base.intensity, ceta.intensity)
    np.testing.assert_array_equal(base.mask, ceta.mask)

    def high_over_low(img):
        p = np.abs(np.fft.rfft2(img - img.mean())) ** 2
        f = np.hypot(np.fft.fftfreq(img.shape[0])[:, None], np.fft.rfftfreq(img.shape[1]))
        return p[f > 0.35].mean() / p[(f > 0.02) & (f < 0.1)].mean()

    assert high_over_low(ceta.counts) < 0.3 * high_over_low(base.counts)


def test_random_orientation_knob(sim):
    params = sim.sim_params("hr-2.2nm", v1=True, **SMALL, coverage=0.4, zone_axis_fraction=0.0)
    _, _, parts = sim.build_sample(params, np.random.default_rng(5))
    assert parts and all(p.orientation == "random" for p in parts)
    params = sim.sim_params("hr-2.2nm", v1=True, **SMALL, coverage=0.4, zone_axis_fraction=1.0)
    _, _, parts = sim.build_sample(params, np.random.default_rng(5))
    assert parts and not any(p.orientation == "random" for p in parts)


def test_motion_averages_away_fringes(sim):
    """Three sub-exposures with moving particles: less lattice-band power than a still
    particle, same label; the film-then-particles split itself changes little."""
    knobs = dict(carbon_thickness_nm=0.0, coverage=0.3, zone_axis_fraction=1.0)
    still = _pair(sim, seed=1, **knobs)
    one = _pair(sim, seed=1, motion_frames=2, motion_rotation_deg=0.0, motion_drift_nm=0.0,
                **knobs)  # fmt: skip
    moving = _pair(sim, seed=1, motion_frames=3, motion_rotation_deg=4.0, **knobs)
    np.testing.assert_array_equal(still.mask, moving.mask)

    def band(img):
        p = np.abs(np.fft.fft2(img - img.mean())) ** 2
        k = np.hypot(*np.meshgrid(*[np.fft.fftfreq(192, 0.02)] * 2, indexing="ij"))
        return p[(k > 3.9) & (k < 5.2)].sum()

    assert band(one.intensity) == pytest.approx(band(still.intensity), rel=0.05)
    assert band(moving.intensity) < 0.8 * band(still.intensity)


def test_background_knobs(sim):
    from temseg.data.sim_background import illumination

    flat = sim.sim_params("hr-2.2nm", v1=True, **{**SMALL, "carbon_thickness_nm": 2.0})
    rough = sim.sim_params("hr-2.2nm", v1=True, **{**SMALL, "carbon_thickness_nm": (1.0, 3.0)})
    dirty = sim.sim_params("hr-2.2nm", v1=True, **SMALL, contamination_per_100nm2=20.0)
    n = {k: len(sim.build_sample(p, np.random.default_rng(2))[0])
         for k, p in [("flat", flat), ("rough", rough), ("dirty", dirty)]}  # fmt: skip
    # the 1-3 nm film holds 2 nm on average; contamination adds carbon to a 1 nm film
    assert n["rough"] == pytest.approx(n["flat"], rel=0.1)
    thin = sim.sim_params("hr-2.2nm", v1=True, **SMALL)
    assert n["dirty"] > 1.2 * len(sim.build_sample(thin, np.random.default_rng(2))[0])
    light = illumination(np.random.default_rng(0), 128, 0.1)
    np.testing.assert_array_equal(light, illumination(np.random.default_rng(0), 128, 0.1))
    assert light.mean() == pytest.approx(1.0, abs=1e-6)
    assert float(light.max() - light.min()) == pytest.approx(0.1, rel=1e-5)
    lit = _pair(sim, illumination_variation=0.2)
    base = _pair(sim)
    assert not np.array_equal(lit.counts, base.counts)


def test_polygon_labels_follow_the_footprint(sim):
    base = _pair(sim)
    drawn = _pair(sim, label_style="polygon")
    a, b = base.mask.astype(bool), drawn.mask.astype(bool)
    assert not np.array_equal(a, b)
    assert (a & b).sum() / (a | b).sum() > 0.8


def test_finishing_a_rendering_equals_simulating_anew(sim):
    """What scripts/ablate_simulate.py relies on: detector, illumination and labels act
    after the multislice, so a cached rendering finished under them is the simulation."""
    p1 = sim.sim_params("hr-2.2nm", v1=True, **SMALL)
    p2 = sim.sim_params("hr-2.2nm", v1=True, **SMALL, detector="ceta", label_style="polygon",
                        illumination_variation=0.1)  # fmt: skip
    d = sim.draw_image(p1, np.random.default_rng([3, 0]))
    intensity, n_slices = sim.render_intensity(p1, d)
    finished = sim.finish_image(p2, d, intensity, n_slices)
    direct = sim.simulate_image(p2, np.random.default_rng([3, 0]))
    np.testing.assert_array_equal(finished.counts, direct.counts)
    np.testing.assert_array_equal(finished.mask, direct.mask)


def test_field_context_is_deterministic_and_recorded(sim, tmp_path):
    """Same seed, same field-context store; the store records the knob, and its patches
    are the cells standardized over themselves mapped into the field: carbon mean at the
    level, carbon sd 1 / ratio."""
    from temseg.data.sim_background import standardize_in_field
    from temseg.data.store import load_split, read_attrs

    kw = dict(preset="hr-2.2nm", images=2, seed=2, image_size=192, patch_size=192,
              min_particle_px=50, carbon_thickness_nm=1.0, progress=False)  # fmt: skip
    field = dict(field_carbon_level=0.3, field_std_ratio=2.0)
    s1 = sim.make_simulated_store(tmp_path / "a.zarr", **kw, **field)
    s2 = sim.make_simulated_store(tmp_path / "b.zarr", **kw, **field)
    off = sim.make_simulated_store(tmp_path / "off.zarr", **kw, field_carbon_level="off")
    a1, a2, a0 = read_attrs(s1), read_attrs(s2), read_attrs(off)
    assert a1["content_hash"] == a2["content_hash"] != a0["content_hash"]
    assert a1["simulation"]["field_carbon_level"] == 0.3
    assert a1["simulation"]["field_std_ratio"] == 2.0
    assert "+0.3 field sd" in a1["preprocessing"]["standardization"]
    assert "field_carbon_level" not in a0["simulation"]
    assert a0["preprocessing"]["standardization"] == "per image: mean 0, std 1"
    for split in ("train", "val", "test"):
        images, masks = load_split(s1, split)
        plain, plain_masks = load_split(off, split)
        np.testing.assert_array_equal(masks, plain_masks)
        for image, mask, own in zip(images, masks, plain, strict=True):
            assert own.mean() == pytest.approx(0.0, abs=1e-5)
            assert image[mask == 0].mean() == pytest.approx(0.3, abs=1e-5)
            assert image[mask == 0].std() == pytest.approx(0.5, abs=1e-5)
            np.testing.assert_array_equal(
                image, standardize_in_field(own, mask, carbon_level=0.3, std_ratio=2.0)
            )


def test_field_margin_cuts_particles_at_the_edge(sim):
    """Real-data area fraction: a particle centred outside the cell is cut there, not
    wrapped, and its label stops at the edge."""
    params = sim.sim_params("hr-5nm", v1=True, image_size=256, carbon_thickness_nm=0.0,
                            coverage=0.022, field_margin=0.4)  # fmt: skip
    L = 256 * params.pixel_size_nm
    cut = 0
    for i in range(12):
        d = sim.draw_image(params, np.random.default_rng([0, i]))
        mask = sim.label_mask(params, d)
        for p in d.particles:
            xy = p.positions_nm[:, :2]
            assert ((xy >= 0) & (xy < L)).all()
            cy, cx = np.array(p.center_yx) * params.pixel_size_nm
            cut += not (0 <= cy < L and 0 <= cx < L)
        assert mask.sum() == sum(p.area_px for p in d.particles)
    assert cut > 0
    wrapped = sim.footprint_mask(np.array([[0.05, 1.0, 0], [0.3, 1.2, 0], [0.2, 0.8, 0]]),
                                 image_size=128, pixel_size_nm=0.02)  # fmt: skip
    clipped = sim.footprint_mask(np.array([[0.05, 1.0, 0], [0.3, 1.2, 0], [0.2, 0.8, 0]]),
                                 image_size=128, pixel_size_nm=0.02, periodic=False)  # fmt: skip
    assert wrapped[:, -3:].any() and not clipped[:, -3:].any()
    assert (clipped <= wrapped).all()


def test_version_1_store_still_loads(sim, tmp_path, capsys):
    """A store written by the first simulator (carbon as one number, no knobs) still loads
    and `temseg info` describes it."""
    import zarr

    from temseg.cli import main
    from temseg.data.store import load_split

    path = sim.make_simulated_store(tmp_path / "old.zarr", preset="hr-2.2nm", images=1,
                                    seed=2, image_size=192, patch_size=192,
                                    min_particle_px=50, carbon_thickness_nm=1.0,
                                    progress=False)  # fmt: skip
    root = zarr.open_group(path, mode="r+", zarr_format=3)
    simulation = dict(root.attrs["simulation"])
    v2_only = set(sim.V1_SETTINGS) | {"carbon_correlation_nm", "contamination_height_nm",
              "contamination_radius_nm", "motion_rotation_deg", "motion_drift_nm",
              "label_vertices", "label_jitter_nm", "camera", "field_std_ratio"}  # fmt: skip
    old = {k: v for k, v in simulation.items() if k not in v2_only}
    old.update(carbon_thickness_nm=1.0, version=1)
    root.attrs["simulation"] = old
    images, masks = load_split(path, "train")
    assert len(images) == len(masks) >= 1
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "carbon 1 nm" in out and "(v1)" in out and "detector" not in out
