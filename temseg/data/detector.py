"""Camera models for simulated images: MTF, DQE and noise of a named detector class.

An image intensity ``I`` (vacuum = 1) at a dose of ``N`` electrons per pixel becomes raw
counts by one of:

``poisson``
    The first simulator's model (version 1 stores): ``gain * Poisson(N I)``, no blur. A point
    detector with DQE = 1 at every frequency, which no camera is.
``ideal``
    An ideal counting pixel detector: each electron is counted once in the pixel it lands in.
    The signal is integrated over the square pixel, so MTF(f) = sinc(f_x) sinc(f_y) (f in
    cycles per pixel, sinc(x) = sin(pi x) / (pi x)); the noise is white Poisson, so
    DQE(f) = MTF(f)^2: the textbook ideal pixelated detector.
``ceta``
    A scintillator-coupled CMOS camera like the Thermo Fisher Ceta at 300 kV, binning 1.
    Each electron makes a light spot: MTF(f) = sinc(f_x) sinc(f_y) / (1 + (f / f_L)^2) with
    f_L = 0.22 cycles/px (MTF 0.40 at half Nyquist, 0.10 at Nyquist). The energy each
    electron deposits varies, so the shot noise is amplified: DQE(0) = 0.5. Part of the noise
    is aliased from above Nyquist and is not blurred: noise power spectrum
    NPS(f) = N [(1 - w) MTF(f)^2 + w] / DQE(0) with white share w = 0.1, so DQE at Nyquist
    is ~0.04. A read noise of 0.2 electron equivalents per pixel is added. Published Ceta /
    scintillator CMOS figures at 300 kV: DQE(0) 0.4-0.6, MTF(Nyquist) 0.05-0.2
    (McMullan et al., Ultramicroscopy 147, 156 (2014); Ruskin et al., Ultramicroscopy 134,
    46 (2013)).

The noise is the Poisson realisation of the electron counts, shaped in Fourier space by the
noise transfer sqrt(NPS(f) / N): its variance then equals the camera's at every frequency
while the counts stay those of the dose. Everything is drawn from the generator passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DETECTORS = ("poisson", "ideal", "ceta")


@dataclass(frozen=True)
class Camera:
    """One detector class's transfer and noise parameters (recorded in the store)."""

    name: str
    pixel_mtf: bool  # multiply by the square-pixel sinc
    lorentz_cutoff: float  # f_L in cycles/px; 0 = no scintillator blur
    dqe0: float  # DQE at zero frequency
    white_noise_share: float  # w: unblurred (aliased) share of the noise power
    read_noise_e: float  # electron equivalents per pixel, white Gaussian

    def to_dict(self) -> dict:
        return asdict(self)


CAMERAS = {
    "poisson": Camera("poisson", False, 0.0, 1.0, 1.0, 0.0),
    "ideal": Camera("ideal", True, 0.0, 1.0, 1.0, 0.0),
    "ceta": Camera("ceta", True, 0.22, 0.5, 0.1, 0.2),
}


def get_camera(name: str) -> Camera:
    """The camera of a detector class name; ValueError naming the valid ones."""
    if name not in CAMERAS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {name!r}")
    return CAMERAS[name]


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]


def mtf(camera: Camera, shape: tuple[int, int]) -> np.ndarray:
    """The camera's MTF on the ``rfft2`` grid of an image of ``shape`` (f in cycles/px).

    >>> m = mtf(CAMERAS["ceta"], (64, 64))
    >>> round(float(m[0, 0]), 3), round(float(m[0, 32]), 3)
    (1.0, 0.103)
    """
    fy, fx = _frequencies(shape)
    out = np.ones((shape[0], shape[1] // 2 + 1))
    if camera.pixel_mtf:
        out = out * np.sinc(fy) * np.sinc(fx)
    if camera.lorentz_cutoff > 0:
        out = out / (1.0 + (fy**2 + fx**2) / camera.lorentz_cutoff**2)
    return out


def noise_transfer(camera: Camera, shape: tuple[int, int]) -> np.ndarray:
    """sqrt(NPS(f) / N): the filter that turns white Poisson noise into the camera's."""
    m = mtf(camera, shape)
    w = camera.white_noise_share
    return np.sqrt(((1.0 - w) * m**2 + w) / camera.dqe0)


def detect(
    intensity: np.ndarray,
    electrons_per_px: float,
    camera: Camera,
    rng: np.random.Generator,
    *,
    gain: float = 10.0,
) -> np.ndarray:
    """Raw counts (float32) of an intensity (vacuum = 1) recorded by ``camera``.

    Notes
    -----
    ``poisson``: gain * Poisson(N I) exactly as the version 1 simulator (same draws, same
    bytes). Otherwise mean = MTF applied to N I, noise = the Poisson fluctuation
    Poisson(N I) - N I filtered by :func:`noise_transfer`, plus read noise; times ``gain``.
    """
    expected = np.clip(intensity, 0, None) * electrons_per_px
    if camera.name == "poisson":
        return (gain * rng.poisson(expected)).astype(np.float32)
    shape = expected.shape
    shot = rng.poisson(expected) - expected
    signal = np.fft.irfft2(np.fft.rfft2(expected) * mtf(camera, shape), s=shape)
    noise = np.fft.irfft2(np.fft.rfft2(shot) * noise_transfer(camera, shape), s=shape)
    read = camera.read_noise_e * rng.standard_normal(shape) if camera.read_noise_e else 0.0
    return (gain * (signal + noise + read)).astype(np.float32)
