"""Readers on the vendors' own files (../shared/test_files, from openNCEM), units, masks."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.io

from temseg.data.readers import (
    ReadError,
    read_image,
    read_mask,
    read_raw,
    resample_isotropic,
    unit_to_nm,
)

NONSQUARE = "dmTest_float32_nonSquare_diffPixelSize"
STACK = "dmTest_3D_int16_64,65,66.dm4"


@pytest.mark.parametrize(
    "unit, nm",
    [
        ("A", 0.1),
        ("\u00c5", 0.1),
        ("nm", 1.0),
        ("pm", 1e-3),
        ("um", 1e3),
        ("\u00b5m", 1e3),
        ("\u03bcm", 1e3),
        ("mm", 1e6),
        ("m", 1e9),
    ],
)
def test_units_to_nm(unit, nm):
    assert unit_to_nm(unit) == pytest.approx(nm)


def test_uncalibrated_and_bad_units():
    assert unit_to_nm("pixel") is None and unit_to_nm("") is None
    with pytest.raises(ValueError, match="reciprocal"):
        unit_to_nm("1/nm")
    with pytest.raises(ValueError, match="unknown pixel unit 'furlong'"):
        unit_to_nm("furlong")


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_dm_units_converted_to_nm(test_files, suffix):
    # ncempy reads pixel sizes (2.0, 1.0) in units ('A', 'nm'): 0.2 nm (y) x 1 nm (x)
    raw = read_raw(test_files / f"{NONSQUARE}{suffix}")
    assert raw.data.shape == (1, 64, 128) and raw.data.dtype == np.float32
    assert raw.pixel_size_yx_nm == pytest.approx((0.2, 1.0))
    assert not raw.isotropic


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_anisotropic_pixels_refused_with_clear_error(test_files, suffix):
    path = test_files / f"{NONSQUARE}{suffix}"
    with pytest.raises(ReadError, match=r"anisotropic pixels 0.2 nm \(y\) x 1 nm \(x\)") as err:
        read_image(path)
    assert path.name in str(err.value) and "--resample" in str(err.value)


def test_anisotropic_pixels_resampled_on_request(test_files):
    raw = read_raw(test_files / f"{NONSQUARE}.dm4")
    [(image, px)] = read_image(test_files / f"{NONSQUARE}.dm4", resample=True)
    assert px == pytest.approx(0.2)
    assert image.shape == (64, 640)  # x (1 nm) interpolated onto 0.2 nm pixels
    assert image.dtype == np.float32
    # bilinear resampling keeps the mean of a smooth image
    assert image.mean() == pytest.approx(raw.data.mean(), rel=0.05)


def test_3d_stack_split_into_frames(test_files):
    # int16 (66, 65, 64), pixel sizes (4 um, 3 nm, 2 pm): 66 frames of 65 x 64, y 3 nm, x 2 pm
    raw = read_raw(test_files / STACK)
    assert raw.data.shape == (66, 65, 64)
    assert raw.pixel_size_yx_nm == pytest.approx((3.0, 0.002))
    # the stack's in-plane pixels are anisotropic (3 nm x 2 pm) and resampling them by 1500x
    # is refused as implausible; with square pixels every frame is one image
    with pytest.raises(ReadError, match="anisotropic"):
        read_image(test_files / STACK)
    with pytest.raises(ReadError, match="calibration is probably wrong"):
        read_image(test_files / STACK, resample=True)


def test_3d_npy_stack_gives_one_image_per_frame(tmp_path):
    stack = np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8)
    np.save(tmp_path / "s.npy", stack)
    frames = read_image(tmp_path / "s.npy")
    assert len(frames) == 3
    for k, (image, px) in enumerate(frames):
        assert px is None
        np.testing.assert_array_equal(image, stack[k])


def test_ser_and_emd_read_with_calibration(test_files):
    [(ser, px)] = read_image(test_files / "16_STOimage_1.ser")
    assert ser.shape == (1024, 1024) and px == pytest.approx(0.0100127, rel=1e-4)  # metres
    [(emd, px)] = read_image(test_files / "Camera Ceta Imaging Micro.emd")
    assert emd.shape == (512, 512) and px == pytest.approx(3.1388, rel=1e-4)


def test_truncated_and_garbage_files(tmp_path, test_files):
    data = (test_files / f"{NONSQUARE}.dm4").read_bytes()
    (tmp_path / "cut.dm4").write_bytes(data[:2000])
    with pytest.raises(ReadError, match="cut.dm4: unreadable or truncated .dm4"):
        read_raw(tmp_path / "cut.dm4")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(ReadError, match="junk.png: unreadable or truncated .png"):
        read_raw(tmp_path / "junk.png")
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(ReadError, match="unsupported file type '.jpg'"):
        read_raw(tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match="nope.dm4"):
        read_raw(tmp_path / "nope.dm4")


def test_label_png_reads_as_binary_mask(test_files):
    # the authors' hand-drawn label: uint8 0/255, 4096 x 4096
    mask = read_mask(test_files / "20221109_Au_UTC_330kx_2640e_0p1596s_03_label.png")
    assert mask.shape == (1, 4096, 4096) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert 0.005 < mask.mean() < 0.2


def test_masks_binary_or_refused(tmp_path):
    skimage.io.imsave(tmp_path / "ok.png", (np.eye(8) * 255).astype(np.uint8), check_contrast=False)
    np.testing.assert_array_equal(read_mask(tmp_path / "ok.png")[0], np.eye(8))
    np.save(tmp_path / "three.npy", np.array([[0, 1], [2, 0]], np.uint8))
    with pytest.raises(ReadError, match="three.npy: mask is not binary: 3 distinct values"):
        read_mask(tmp_path / "three.npy")
    np.save(tmp_path / "noz.npy", np.array([[1, 2], [2, 1]], np.uint8))
    with pytest.raises(ReadError, match="not binary"):
        read_mask(tmp_path / "noz.npy")


def test_grey_rgb_png_accepted_colour_refused(tmp_path):
    grey = np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)
    skimage.io.imsave(tmp_path / "g.png", np.stack([grey] * 3, -1), check_contrast=False)
    np.testing.assert_array_equal(read_raw(tmp_path / "g.png").data[0], grey)
    colour = np.stack([grey, grey[::-1], grey], -1)
    skimage.io.imsave(tmp_path / "c.png", colour, check_contrast=False)
    with pytest.raises(ReadError, match="c.png: colour image"):
        read_raw(tmp_path / "c.png")


def test_resample_nearest_keeps_masks_binary():
    mask = (np.random.default_rng(0).random((10, 20)) < 0.5).astype(np.uint8)
    out, px = resample_isotropic(mask, (0.5, 1.0), order=0)
    assert out.shape == (10, 40) and px == 0.5
    assert set(np.unique(out).tolist()) <= {0, 1}
