"""`temseg ingest` and the other data commands: happy paths, split grouping, every bad input."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import skimage.io

from temseg.cli import main
from temseg.data.store import load_sources, read_attrs
from temseg.data.synth import PRESETS, GeneratorParams

S = 128  # image side of the small test images
NONSQUARE_DM4 = "dmTest_float32_nonSquare_diffPixelSize.dm4"


def disk_mask(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def write_pair(folder, name, *, seed=0, shape=(S, S), mask=None, frames=None):
    """A raw-count image with dark disks and its 0/255 PNG (or .npy) mask."""
    rng = np.random.default_rng(seed)
    if mask is None:
        mask = np.zeros(shape, np.uint8)
        for cy in range(16, shape[0], 64):
            for cx in range(16, shape[1], 64):
                mask |= disk_mask(shape, cy + rng.integers(8, 32), cx + rng.integers(8, 32), 20)
    full = (frames,) + mask.shape if frames else mask.shape
    image = rng.poisson(200 * (1 - 0.2 * mask), size=full).astype(np.float32)
    img_path = folder / f"{name}.npy"
    np.save(img_path, image)
    if frames:
        mask_path = folder / f"{name}_mask.npy"
        np.save(mask_path, np.broadcast_to(mask, full))
    else:
        mask_path = folder / f"{name}_mask.png"
        skimage.io.imsave(mask_path, (mask * 255).astype(np.uint8), check_contrast=False)
    return img_path, mask_path


def run(args, capsys):
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def ingest_args(out, pairs, *extra):
    args = ["ingest", str(out)]
    for img, msk in pairs:
        args += ["--image", str(img), "--mask", str(msk)]
    return args + list(extra)


def test_ingest_groups_images_into_splits(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    pairs = [write_pair(src, f"img{i}", seed=i) for i in range(6)]
    pairs.append(write_pair(src, "stack", seed=9, frames=3))  # a 3-frame in-situ series
    out = tmp_path / "s.zarr"
    rc, stdout, err = run(
        ingest_args(out, pairs, "--pixel-size-nm", "0.02", "--patch-size", "64", "--seed", "3"),
        capsys,
    )
    assert rc == 0, err
    assert "train/val/test patches" in stdout
    attrs = read_attrs(out)
    assert attrs["kind"] == "ingested" and attrs["pixel_size_nm"] == 0.02
    assert attrs["pixel_size_source"] == "flag"
    assert attrs["sources"][:2] == ["img0.npy", "img1.npy"]
    assert attrs["sources"][-3:] == ["stack.npy#frame0", "stack.npy#frame1", "stack.npy#frame2"]
    assert attrs["preprocessing"]["split"]["mode"] == "by_image"
    assert attrs["preprocessing"]["xray_threshold"] == 1500.0  # HR by pixel size
    assert attrs["contrast"] > 0
    seen = [set(load_sources(out, s).tolist()) for s in ("train", "val", "test")]
    assert all(seen), "every split non-empty"
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    # the frames of the stack (sources 6, 7, 8) stay together on one side
    stack_sides = [i for i, s in enumerate(seen) if s & {6, 7, 8}]
    assert len(stack_sides) == 1 and {6, 7, 8} <= seen[stack_sides[0]]


def test_ingest_folder_pairs_by_stem_with_real_label_outlines(tmp_path, capsys, test_files):
    # The authors' hand-drawn label of a 5 nm Au HRTEM image (0/255 PNG, 4096 px): crop a
    # 1024 px corner holding particles and pair it with a raw-count image by file stem.
    label = skimage.io.imread(test_files / "20221109_Au_UTC_330kx_2640e_0p1596s_03_label.png")
    tiles = [(y, x) for y in range(0, 4096, 1024) for x in range(0, 4096, 1024)]
    y, x = max(tiles, key=lambda t: (label[t[0] : t[0] + 1024, t[1] : t[1] + 1024] > 0).sum())
    mask = (label[y : y + 1024, x : x + 1024] > 0).astype(np.uint8)
    src = tmp_path / "folder"
    src.mkdir()
    write_pair(src, "au5nm", mask=mask)
    (src / "au5nm_mask.png").rename(src / "au5nm_label.png")
    out = tmp_path / "real.zarr"
    rc, _, err = run(["ingest", str(out), "--folder", str(src), "--pixel-size-nm", "0.02"], capsys)
    assert rc == 0, err
    attrs = read_attrs(out)
    kept = sum(attrs["n_patches"].values())
    expected = sum(
        int(mask[i : i + 512, j : j + 512].sum() >= 400) for i in (0, 512) for j in (0, 512)
    )
    assert kept == expected >= 1
    assert attrs["mask_files"] == ["au5nm_label.png"]
    assert attrs["preprocessing"]["split"]["mode"] == "by_patch"  # one image: cannot group


def test_ingest_anisotropic_file_with_resample(tmp_path, capsys, test_files):
    mask = np.zeros((64, 128), np.uint8)
    mask[8:56, 10:70] = 1
    np.save(tmp_path / "m.npy", mask)
    out = tmp_path / "s.zarr"
    args = [
        "ingest",
        str(out),
        "--image",
        str(test_files / NONSQUARE_DM4),
        "--mask",
        str(tmp_path / "m.npy"),
        "--patch-size",
        "32",
        "--min-particle-px",
        "50",
    ]
    rc, _, err = run(args + ["--resample"], capsys)
    assert rc == 0, err
    attrs = read_attrs(out)
    assert attrs["pixel_size_nm"] == pytest.approx(0.2)  # 2 A, from the file's metadata
    assert attrs["pixel_size_source"] == "file metadata"
    assert attrs["preprocessing"]["xray_regime"] == "lr"


# ------------------------------------------------------------------ every bad input


def no_output_left(tmp_path, out):
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]
    assert leftovers == []


def check_refused(tmp_path, capsys, args, out, *needles):
    rc, _, err = run(args, capsys)
    assert rc == 2, err
    message = err.strip().splitlines()[-1]  # after any progress lines
    assert message.startswith("temseg ingest: error: "), err
    for needle in needles:
        assert needle in message, (needle, err)
    no_output_left(tmp_path, out)


def test_refuses_image_and_mask_of_different_shapes(tmp_path, capsys):
    img, _ = write_pair(tmp_path, "a")
    np.save(tmp_path / "small_mask.npy", np.zeros((S, S - 8), np.uint8))
    out = tmp_path / "s.zarr"
    args = ingest_args(
        out, [(img, tmp_path / "small_mask.npy")], "--pixel-size-nm", "0.02", "--patch-size", "64"
    )
    check_refused(
        tmp_path, capsys, args, out, "small_mask.npy", "mask shape (128, 120)", "(128, 128)"
    )


def test_refuses_non_binary_mask(tmp_path, capsys):
    img, _ = write_pair(tmp_path, "a")
    np.save(tmp_path / "grey.npy", np.arange(S * S).reshape(S, S) % 3)
    out = tmp_path / "s.zarr"
    args = ingest_args(out, [(img, tmp_path / "grey.npy")], "--pixel-size-nm", "0.02")
    check_refused(tmp_path, capsys, args, out, "grey.npy", "not binary")


def test_refuses_nan_or_infinite_pixels(tmp_path, capsys):
    _, msk = write_pair(tmp_path, "a")
    image = np.full((S, S), 100.0, np.float32)
    image[5, 7] = np.inf
    np.save(tmp_path / "bad.npy", image)
    out = tmp_path / "s.zarr"
    args = ingest_args(
        out, [(tmp_path / "bad.npy", msk)], "--pixel-size-nm", "0.02", "--patch-size", "64"
    )
    check_refused(tmp_path, capsys, args, out, "bad.npy", "NaN or infinite", "(5, 7)")


def test_refuses_image_smaller_than_patch(tmp_path, capsys):
    img, msk = write_pair(tmp_path, "a")
    out = tmp_path / "s.zarr"
    args = ingest_args(out, [(img, msk)], "--pixel-size-nm", "0.02", "--patch-size", "256")
    check_refused(tmp_path, capsys, args, out, "a.npy", "smaller than the 256 px patch")


def test_refuses_anisotropic_pixels_without_resample(tmp_path, capsys, test_files):
    np.save(tmp_path / "m.npy", np.ones((64, 128), np.uint8))
    out = tmp_path / "s.zarr"
    args = [
        "ingest",
        str(out),
        "--image",
        str(test_files / NONSQUARE_DM4),
        "--mask",
        str(tmp_path / "m.npy"),
        "--patch-size",
        "32",
    ]
    check_refused(tmp_path, capsys, args, out, NONSQUARE_DM4, "anisotropic", "--resample")
    # a pixel size given on the command line does not make the pixels square
    check_refused(tmp_path, capsys, args + ["--pixel-size-nm", "0.2"], out, "anisotropic")


def test_refuses_missing_pixel_size(tmp_path, capsys):
    img, msk = write_pair(tmp_path, "a")
    out = tmp_path / "s.zarr"
    check_refused(
        tmp_path,
        capsys,
        ingest_args(out, [(img, msk)], "--patch-size", "64"),
        out,
        "a.npy",
        "no pixel size",
        "--pixel-size-nm",
    )


def test_refuses_truncated_and_unreadable_files(tmp_path, capsys, test_files):
    (tmp_path / "cut.dm4").write_bytes((test_files / NONSQUARE_DM4).read_bytes()[:3000])
    np.save(tmp_path / "m.npy", np.ones((64, 128), np.uint8))
    out = tmp_path / "s.zarr"
    args = [
        "ingest",
        str(out),
        "--image",
        str(tmp_path / "cut.dm4"),
        "--mask",
        str(tmp_path / "m.npy"),
    ]
    check_refused(tmp_path, capsys, args, out, "cut.dm4", "unreadable or truncated")
    img, _ = write_pair(tmp_path, "a")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    args = ingest_args(out, [(img, tmp_path / "broken.png")], "--pixel-size-nm", "0.02")
    check_refused(tmp_path, capsys, args, out, "broken.png", "unreadable or truncated")


def test_refuses_existing_output_unless_overwrite(tmp_path, capsys):
    img, msk = write_pair(tmp_path, "a")
    out = tmp_path / "s.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    args = ingest_args(out, [(img, msk)], "--pixel-size-nm", "0.02", "--patch-size", "64")
    rc, _, err = run(args, capsys)
    assert rc == 2 and "s.zarr already exists" in err and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "precious"
    rc, _, err = run(args + ["--overwrite"], capsys)
    assert rc == 0, err
    assert not (out / "keep.txt").exists() and read_attrs(out)["kind"] == "ingested"


def test_refuses_when_no_patch_is_left(tmp_path, capsys):
    img, msk = write_pair(tmp_path, "a", mask=np.zeros((S, S), np.uint8))
    out = tmp_path / "s.zarr"
    args = ingest_args(out, [(img, msk)], "--pixel-size-nm", "0.02", "--patch-size", "64")
    check_refused(tmp_path, capsys, args, out, "no patch left", "a.npy", "--min-particle-px")


@pytest.mark.parametrize("case", ["missing", "count", "frames", "suffix"])
def test_refuses_other_bad_inputs(tmp_path, capsys, case):
    img, msk = write_pair(tmp_path, "a")
    out = tmp_path / "s.zarr"
    px = ["--pixel-size-nm", "0.02", "--patch-size", "64"]
    if case == "missing":
        args, needle = ingest_args(out, [(tmp_path / "gone.dm4", msk)], *px), "gone.dm4"
    elif case == "count":
        args, needle = ["ingest", str(out), "--image", str(img)] + px, "one --mask per --image"
    elif case == "frames":
        stack, _ = write_pair(tmp_path, "st", frames=3)
        args, needle = ingest_args(out, [(stack, msk)], *px), "st.npy has 3"
    else:
        (tmp_path / "a.jpg").write_bytes(b"")
        args, needle = ingest_args(out, [(tmp_path / "a.jpg", msk)], *px), "unsupported file type"
    check_refused(tmp_path, capsys, args, out, needle)


def test_refuses_mixed_pixel_sizes(tmp_path, test_files):
    # two files whose own calibrations differ (0.01 nm .ser, 3.14 nm .emd) cannot share a store
    from temseg.data.ingest import ingest

    m1 = tmp_path / "m1.npy"
    np.save(m1, np.ones((1024, 1024), np.uint8))
    m2 = tmp_path / "m2.npy"
    np.save(m2, np.ones((512, 512), np.uint8))
    with pytest.raises(ValueError, match="Camera Ceta Imaging Micro.emd: pixel size 3.13884 nm"):
        ingest(
            tmp_path / "s.zarr",
            [
                (test_files / "16_STOimage_1.ser", m1),
                (test_files / "Camera Ceta Imaging Micro.emd", m2),
            ],
            patch_size=256,
        )
    assert not (tmp_path / "s.zarr").exists()


# ------------------------------------------------------------------ other commands


def test_synth_info_and_preview_commands(tmp_path, capsys):
    out = tmp_path / "syn.zarr"
    rc, stdout, err = run(
        [
            "synth",
            str(out),
            "--preset",
            "hr-2.2nm",
            "--contrast",
            "0.06",
            "--images",
            "3",
            "--image-size",
            "256",
            "--patch-size",
            "128",
            "--seed",
            "1",
        ],
        capsys,
    )
    assert rc == 0, err
    assert "image 3/3" in err  # progress on stderr
    rc, stdout, _ = run(["info", str(out)], capsys)
    assert rc == 0 and "kind:           synthetic" in stdout and "hr-2.2nm C=0.06" in stdout
    rc, stdout, _ = run(["info", str(out), "--json"], capsys)
    assert rc == 0 and '"temseg_format": 1' in stdout
    rc, _, err = run(
        [
            "synth",
            str(out),
            "--preset",
            "hr-2.2nm",
            "--contrast",
            "0.06",
            "--images",
            "3",
            "--seed",
            "1",
        ],
        capsys,
    )
    assert rc == 2 and "syn.zarr already exists" in err
    rc, _, err = run(["info", str(tmp_path / "nothing.zarr")], capsys)
    assert rc == 2 and "nothing.zarr: no such patch store" in err

    png = tmp_path / "preview.png"
    rc, stdout, err = run(["preview", str(png)], capsys)  # 512 x 512 HR image by default
    assert rc == 0, err
    panel = skimage.io.imread(png)
    assert panel.shape == (512, 3 * 512 + 16, 3) and panel.dtype == np.uint8
    mask_panel = panel[:, 520:1032, 0]
    assert set(np.unique(mask_panel).tolist()) == {0, 255}  # some particle, some background
    rc, _, _ = run(
        ["preview", str(tmp_path / "p2.png"), "--store", str(out), "--split", "val"], capsys
    )
    assert rc == 0 and skimage.io.imread(tmp_path / "p2.png").shape == (128, 3 * 128 + 16, 3)


def test_synth_series_command_prints_measured_contrast(tmp_path, capsys):
    args = [
        "synth-series",
        str(tmp_path),
        "--contrasts",
        "0.03,0.3",
        "--preset",
        "hr-2.2nm",
        "--images",
        "3",
        "--image-size",
        "256",
        "--patch-size",
        "128",
        "--seed",
        "0",
    ]
    rc, stdout, err = run(args, capsys)
    assert rc == 0, err
    rows = stdout.strip().splitlines()
    assert rows[0] == "store,generator_contrast,measured_contrast,train,val,test"
    measured = [float(r.split(",")[2]) for r in rows[1:]]
    assert measured[0] < measured[1]
    rc, _, err = run(args, capsys)
    assert rc == 0 and err.count("reused") == 2


def test_register_declares_arguments_only():
    code = (
        "import argparse, sys\n"
        "from temseg.data import cli\n"
        "p = argparse.ArgumentParser(); cli.register(p.add_subparsers())\n"
        "print(sorted(m for m in ('numpy', 'zarr', 'torch', 'scipy') if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
    from temseg.data import cli, cli_args

    sub = argparse.ArgumentParser().add_subparsers()
    cli.register(sub)
    assert {"ingest", "synth", "synth-series", "info", "preview"} <= set(sub.choices)
    assert set(cli_args.PRESET_NAMES) == set(PRESETS)


# ----------------------------------------------------- difficulty knobs (synth, series, preview)

SMALL_SYNTH = ["--preset", "hr-2.2nm", "--images", "2", "--image-size", "128"]
SMALL_SYNTH += ["--patch-size", "64", "--min-particle-px", "20", "--seed", "0"]
KNOB_ARGS = ["--defocus-nm=-3,3", "--astigmatism-nm", "0.5,1", "--coverage", "0.1"]
KNOB_ARGS += ["--pixel-size-nm", "0.04"]


def run_exit(args, capsys):
    """Like run, for errors argparse reports itself (SystemExit) as well as main's."""
    try:
        rc = main(args)
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_synth_knobs_are_recorded_and_shown_by_info(tmp_path, capsys):
    out = tmp_path / "k.zarr"
    rc, _, err = run(["synth", str(out), "--contrast", "0.06", *SMALL_SYNTH, *KNOB_ARGS], capsys)
    assert rc == 0, err
    attrs = read_attrs(out)
    gen = attrs["generator"]
    assert gen["defocus_nm"] == [-3.0, 3.0] and gen["astigmatism_nm"] == [0.5, 1.0]
    assert gen["coverage"] == 0.1 and gen["pixel_size_nm"] == 0.04
    assert attrs["pixel_size_nm"] == 0.04
    rc, stdout, _ = run(["info", str(out)], capsys)
    assert rc == 0
    assert (
        "knobs:          defocus -3..3 nm*, astigmatism 0.5..1 nm*, coverage 0.1*, "
        "pixel 0.04 nm/px*, fringe-free 0.15, dose 423 e/A^2 (* = set, not the preset's)"
    ) in stdout
    # a store at the preset's values marks nothing; one number fixes the defocus
    plain = tmp_path / "plain.zarr"
    rc, _, err = run(["synth", str(plain), "--contrast", "0.06", *SMALL_SYNTH], capsys)
    assert rc == 0, err
    rc, stdout, _ = run(["info", str(plain)], capsys)
    assert "knobs:          defocus -12..12 nm, astigmatism 0..2 nm, coverage 0.18," in stdout
    assert "fringe-free 0.15, dose 423 e/A^2 (all the preset's)" in stdout
    fixed = tmp_path / "fixed.zarr"
    rc, _, err = run(
        ["synth", str(fixed), "--contrast", "0.06", *SMALL_SYNTH, "--defocus-nm=-12"], capsys
    )
    assert rc == 0, err
    assert read_attrs(fixed)["generator"]["defocus_nm"] == [-12.0, -12.0]


def test_synth_series_and_preview_take_the_knobs(tmp_path, capsys):
    args = ["synth-series", str(tmp_path / "series"), "--contrasts", "0.05,0.2", *SMALL_SYNTH]
    rc, stdout, err = run([*args, *KNOB_ARGS], capsys)
    assert rc == 0, err
    stores = [line.split(",")[0] for line in stdout.strip().splitlines()[1:]]
    assert len(stores) == 2
    for store in stores:
        gen = read_attrs(store)["generator"]
        assert gen["coverage"] == 0.1 and gen["defocus_nm"] == [-3.0, 3.0]
        assert gen["pixel_size_nm"] == 0.04
    rc, _, err = run([*args, *KNOB_ARGS], capsys)
    assert rc == 0 and err.count("reused") == 2
    rc, _, err = run([*args, "--coverage", "0.2"], capsys)  # other knobs: never replaced silently
    assert rc == 2 and "other parameters" in err

    png = tmp_path / "knobs.png"
    rc, _, err = run(["preview", str(png), "--image-size", "128", *KNOB_ARGS], capsys)
    assert rc == 0, err
    assert skimage.io.imread(png).shape == (128, 3 * 128 + 16, 3)
    rc, _, err = run(
        ["preview", str(tmp_path / "p.png"), "--store", stores[0], "--coverage", "0.1"], capsys
    )
    assert rc == 2 and "--coverage" in err and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    "knob, message",
    [
        (["--coverage", "0.7"], "--coverage: coverage must lie in (0, 0.6), got 0.7"),
        (["--coverage", "0"], "--coverage: coverage must lie in (0, 0.6), got 0.0"),
        (["--pixel-size-nm", "0"], "--pixel-size-nm: pixel_size_nm must be > 0"),
        (["--fringe-free-fraction", "2"], "--fringe-free-fraction: fringe_free_fraction"),
        (["--dose", "-1"], "--dose: dose must be > 0"),
        (["--defocus-nm=3,-3"], "argument --defocus-nm: MIN must be <= MAX, got '3,-3'"),
        (["--defocus-nm", "far"], "argument --defocus-nm: expected MIN,MAX in nm"),
        (["--astigmatism-nm", "0,1,2"], "argument --astigmatism-nm: expected MIN,MAX (two"),
    ],
)
@pytest.mark.parametrize("command", ["synth", "synth-series", "preview"])
def test_bad_knob_values_name_the_flag(tmp_path, capsys, command, knob, message):
    out = tmp_path / ("x.png" if command == "preview" else "x.zarr")
    args = [command, str(out)]
    if command == "synth":
        args += ["--contrast", "0.06", *SMALL_SYNTH]
    elif command == "synth-series":
        args += ["--contrasts", "0.06", *SMALL_SYNTH]
    rc, _, err = run_exit([*args, *knob], capsys)
    assert rc == 2 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_help_texts_quote_the_presets_defaults():
    from temseg.data import cli_args

    assert cli_args.PRESET_KNOBS == {
        name: {"pixel_size_nm": p.pixel_size_nm, "coverage": p.coverage, "defocus_nm": p.defocus_nm}
        for name, p in PRESETS.items()
    }
    assert cli_args.DEFAULT_ASTIGMATISM_NM == GeneratorParams.astigmatism_nm
    assert set(cli_args.KNOB_FLAGS) <= {f.name for f in dataclasses.fields(GeneratorParams)}
