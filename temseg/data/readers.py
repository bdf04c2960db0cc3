"""Read microscope images and masks, with their pixel size in nm.

Vendor formats go through ncempy (openNCEM), which reads the metadata the microscope
software wrote: Gatan Digital Micrograph ``.dm3``/``.dm4``, Thermo Fisher / FEI TIA ``.ser``
(with its ``.emi``) and Velox / Berkeley ``.emd``. TIFF goes through tifffile: its pixel size
is trusted only when written as ImageJ writes it (a length ``unit=`` in the ImageJ
description and X/YResolution in pixels per unit, as Fiji, GMS exports and
``temseg synth-image`` write); a bare resolution in dots per inch means nothing here. PNG
(scikit-image) carries no pixel size; give it on the command line. ``.npy`` is accepted for
images and masks made in Python.

A 3-D file is a stack (an in-situ series or a tilt/focal series): every frame becomes one
image with the stack's in-plane pixel size. Pixels must be square: an anisotropic calibration
(ncempy's ``dmTest_float32_nonSquare_diffPixelSize.dm4`` is 2 A x 1 nm) is refused unless
resampling is asked for, which interpolates the coarser axis onto the finer pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VENDOR_SUFFIXES = (".dm3", ".dm4", ".ser", ".emd")
PLAIN_SUFFIXES = (".tif", ".tiff", ".png")
SUFFIXES = VENDOR_SUFFIXES + PLAIN_SUFFIXES + (".npy",)

# Length units as microscope software writes them, in nm.
UNIT_NM = {
    "m": 1e9,
    "inch": 2.54e7,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "\u00b5m": 1e3,  # micro sign
    "\u03bcm": 1e3,  # Greek mu
    "micron": 1e3,
    "microns": 1e3,
    "nm": 1.0,
    "a": 0.1,
    "\u00e5": 0.1,  # lower-case of the Angstrom sign
    "angstrom": 0.1,
    "angstroms": 0.1,
    "pm": 1e-3,
}
# Calibrations that mean "no calibration".
UNCALIBRATED = {"", "pixel", "pixels", "px", "unknown", "none"}
# Aspect ratios of pixel sides within this relative tolerance count as square.
ISOTROPY_RTOL = 1e-3
# Resampling refuses to make an image side longer than this.
MAX_RESAMPLED_SIDE = 16384


class ReadError(ValueError):
    """A file cannot be read as a microscope image or mask (names the file and the reason)."""


@dataclass(frozen=True)
class RawImage:
    """An image file as stored: frames, and per-axis pixel size in nm when calibrated."""

    path: Path
    data: np.ndarray  # (frames, H, W) float32
    pixel_size_yx_nm: tuple[float, float] | None
    units: tuple[str, ...] = ()

    @property
    def isotropic(self) -> bool:
        if self.pixel_size_yx_nm is None:
            return True
        py, px = self.pixel_size_yx_nm
        return abs(py - px) <= ISOTROPY_RTOL * max(py, px)


def unit_to_nm(unit: str) -> float | None:
    """Length of one ``unit`` in nm; None when the unit means "uncalibrated".

    Raises ValueError for an unknown or reciprocal (diffraction) unit.

    >>> unit_to_nm("A"), unit_to_nm("um"), unit_to_nm("pm")
    (0.1, 1000.0, 0.001)
    """
    u = str(unit).strip()
    key = u.lower()
    if key in UNCALIBRATED:
        return None
    if key in UNIT_NM:
        return UNIT_NM[key]
    if key.startswith("1/") or key.endswith("^-1") or key.endswith("-1"):
        raise ValueError(f"pixel unit {u!r} is reciprocal: a diffraction pattern, not an image")
    raise ValueError(f"unknown pixel unit {u!r} (known: {', '.join(sorted(set(UNIT_NM)))})")


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ReadError(f"{path}: is a directory, expected an image file")


def _read_vendor(path: Path) -> tuple[np.ndarray, list, list]:
    import ncempy.io

    try:
        d = ncempy.io.read(str(path))
        data = np.asarray(d["data"])
    except Exception as exc:  # ncempy raises struct/OS/Key/Index errors on damaged files
        raise ReadError(
            f"{path}: unreadable or truncated {path.suffix} file ({type(exc).__name__}: {exc})"
        ) from None
    sizes = list(d.get("pixelSize") or [])
    units = [str(u) for u in (d.get("pixelUnit") or [])]
    return data, sizes, units


def _read_plain(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ReadError(f"{path}: unreadable .npy file ({exc})") from None
    import warnings

    import skimage.io

    try:
        with warnings.catch_warnings():  # imageio warns about plugins it tries on bad files
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(skimage.io.imread(path))
    except Exception as exc:
        raise ReadError(
            f"{path}: unreadable or truncated {path.suffix} file ({type(exc).__name__}: {exc})"
        ) from None


def _read_tiff(path: Path) -> tuple[np.ndarray, list, list]:
    """TIFF pixels (all pages) and, when ImageJ-calibrated, the (y, x) pixel size and unit."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            meta = tif.imagej_metadata or {}
            tags = tif.pages[0].tags
            xres, yres = tags.get("XResolution"), tags.get("YResolution")
            xres, yres = (xres.value if xres else None), (yres.value if yres else None)
    except Exception as exc:
        raise ReadError(
            f"{path}: unreadable or truncated {path.suffix} file ({type(exc).__name__}: {exc})"
        ) from None
    unit = meta.get("unit")
    if not unit or not xres or not yres:
        return data, [], []
    # ImageJ escapes non-ASCII units in its description ("\\u00B5m" for um)
    unit = str(unit).encode("ascii", "backslashreplace").decode("unicode_escape")
    sizes = [yres[1] / yres[0] if yres[0] else 0.0, xres[1] / xres[0] if xres[0] else 0.0]
    return data, sizes, [unit, unit]


def _to_gray(data: np.ndarray, path: Path) -> np.ndarray:
    """Drop a colour axis from a PNG/TIFF whose channels are equal (a saved grey image)."""
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        rgb = data[..., :3]
        if not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise ReadError(f"{path}: colour image {data.shape}; expected a grey-scale image")
        return rgb[..., 0]
    return data


def read_raw(path: str | os.PathLike) -> RawImage:
    """Read an image file as stored: all frames and the per-axis calibration in nm.

    Parameters
    ----------
    path
        ``.dm3``, ``.dm4``, ``.ser``, ``.emd`` (ncempy), ``.tif``/``.tiff``/``.png``
        (scikit-image) or ``.npy``.

    Returns
    -------
    RawImage
        ``data`` (frames, H, W) float32; ``pixel_size_yx_nm`` the in-plane pixel sides in nm
        (y, x), or None when the file holds no calibration.

    Examples
    --------
    ncempy's ``dmTest_3D_int16_64,65,66.dm4`` (int16 (66, 65, 64), pixel sizes 4 um,
    3 nm, 2 pm) reads as 66 frames of 65 x 64 with pixel_size_yx_nm == (3.0, 0.002).
    """
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix == ".emi":
        raise ReadError(f"{path}: give the .ser file (the .emi only holds its metadata)")
    if suffix not in SUFFIXES:
        raise ReadError(
            f"{path}: unsupported file type {suffix!r}; supported: {', '.join(SUFFIXES)}"
        )
    if suffix in VENDOR_SUFFIXES:
        data, sizes, units = _read_vendor(path)
    elif suffix in (".tif", ".tiff"):
        data, sizes, units = _read_tiff(path)
        data = _to_gray(data, path)
    else:
        data, sizes, units = _to_gray(_read_plain(path), path), [], []
    if data.ndim not in (2, 3) or min(data.shape) < 1:
        raise ReadError(f"{path}: expected a 2-D image or a 3-D stack, got shape {data.shape}")
    if data.dtype.kind not in "biuf":
        raise ReadError(f"{path}: pixel type {data.dtype} is not a real number type")
    pixel = None
    if len(sizes) >= 2 and len(units) >= 2:
        # ncempy orders calibrations like the data axes; the last two are (y, x).
        try:
            scale = [unit_to_nm(u) for u in units[-2:]]
        except ValueError as exc:
            raise ReadError(f"{path}: {exc}") from None
        if all(s is not None for s in scale):
            pixel = (float(sizes[-2]) * scale[0], float(sizes[-1]) * scale[1])
            if not all(np.isfinite(pixel)) or min(pixel) <= 0:
                raise ReadError(f"{path}: invalid pixel size {pixel} nm in the metadata")
    frames = data if data.ndim == 3 else data[None]
    return RawImage(path, frames.astype(np.float32, copy=False), pixel, tuple(units))


def resample_isotropic(
    image: np.ndarray, pixel_size_yx_nm: tuple[float, float], *, order: int = 1
) -> tuple[np.ndarray, float]:
    """Interpolate the coarser axis of ``image`` (last two axes) onto the finer pixel size.

    ``order`` 1 (bilinear) for images, 0 (nearest) for masks. Returns the resampled array
    and the new, square pixel size in nm.
    """
    from scipy import ndimage

    py, px = pixel_size_yx_nm
    target = min(py, px)
    zoom_y, zoom_x = py / target, px / target
    h, w = image.shape[-2:]
    new = (round(h * zoom_y), round(w * zoom_x))
    if max(new) > MAX_RESAMPLED_SIDE:
        raise ValueError(
            f"resampling {h}x{w} px of {py:g} x {px:g} nm to square {target:g} nm pixels "
            f"would give {new[0]}x{new[1]} px (limit {MAX_RESAMPLED_SIDE}); the calibration "
            "is probably wrong: give --pixel-size-nm instead"
        )
    zoom = (1.0,) * (image.ndim - 2) + (new[0] / h, new[1] / w)
    out = ndimage.zoom(image, zoom, order=order, mode="nearest", grid_mode=True)
    return out.astype(image.dtype, copy=False), target


def read_image(
    path: str | os.PathLike, *, resample: bool = False
) -> list[tuple[np.ndarray, float | None]]:
    """Read an image file as a list of (image float32 2-D, pixel_size_nm or None), one per frame.

    Parameters
    ----------
    path
        Any format :func:`read_raw` reads; a 3-D stack gives one entry per frame.
    resample
        Interpolate anisotropic pixels onto square ones (see :func:`resample_isotropic`);
        without it an anisotropic calibration raises :class:`ReadError`.

    Examples
    --------
    ``dmTest_float32_nonSquare_diffPixelSize.dm4`` (2 A x 1 nm) raises without resampling;
    with ``resample=True`` it becomes 64 x 640 px at 0.2 nm/px.
    """
    raw = read_raw(path)
    frames, pixel = raw.data, None
    if raw.pixel_size_yx_nm is not None:
        if raw.isotropic:
            pixel = float(np.mean(raw.pixel_size_yx_nm))
        elif resample:
            try:
                frames, pixel = resample_isotropic(frames, raw.pixel_size_yx_nm, order=1)
            except ValueError as exc:
                raise ReadError(f"{raw.path}: {exc}") from None
        else:
            raise ReadError(anisotropic_message(raw))
    return [(frame, pixel) for frame in frames]


def anisotropic_message(raw: RawImage) -> str:
    py, px = raw.pixel_size_yx_nm or (0.0, 0.0)
    units = f" (stored as {', '.join(raw.units)})" if raw.units else ""
    return (
        f"{raw.path}: anisotropic pixels {py:g} nm (y) x {px:g} nm (x){units}; the network "
        "needs square pixels: pass --resample (resample=True) to interpolate onto "
        f"{min(py, px):g} nm pixels"
    )


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a hand-drawn mask as uint8 0/1 frames (frames, H, W).

    Any two-valued mask whose low value is 0 is accepted (0/1, 0/255, boolean); the
    non-zero value becomes 1 (particle). Anything else raises :class:`ReadError`.
    """
    path = Path(path)
    _check_exists(path)
    raw = read_raw(path)
    return binarize_mask(raw.data, path)


def binarize_mask(data: np.ndarray, path: Path | str) -> np.ndarray:
    """0/1 uint8 from a two-valued mask whose low value is 0; ReadError otherwise."""
    if not np.isfinite(data).all():
        raise ReadError(f"{path}: mask contains NaN or infinite values")
    values = np.unique(data)
    if values.size > 2 or (values.size == 2 and values[0] != 0) or values.min() < 0:
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if values.size > 6 else "")
        raise ReadError(
            f"{path}: mask is not binary: {values.size} distinct values ({shown}); expected "
            "0 for background and one other value for particle (0/1 or 0/255)"
        )
    return (data > 0).astype(np.uint8)


def write_calibrated_tiff(path: str | os.PathLike, data: np.ndarray, pixel_size_nm: float) -> Path:
    """Write a 2-D image or a (frames, H, W) stack as TIFF with ImageJ calibration in nm.

    :func:`read_raw` reads the pixel size back (and so do Fiji and ImageJ). Atomic: written
    to a temporary file beside ``path``, then renamed.
    """
    import tifffile

    if not pixel_size_nm > 0:
        raise ValueError(f"pixel_size_nm must be > 0, got {pixel_size_nm}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
            metadata={"unit": "nm", "axes": "ZYX" if data.ndim == 3 else "YX"},
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
