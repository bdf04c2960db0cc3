"""The per-image boundary error of a network's sizes, measured on labelled data it never
trained on, and the term it adds to the D50 / D90 intervals.

Why. Where a network puts a particle's boundary moves with the image (its defocus, its
noise): every particle of one image comes out a few per cent too small or too large, and
every seed of an ensemble errs alike. The bootstrap over particles and networks
(:mod:`temseg.segment.sizes`) cannot see such an error; on 20 synthetic micrographs it left
the true D50 outside the interval in 6.

Measure. The networks' training store (their checkpoint config's ``data``) keeps a ``test``
split of labelled patches cut from source images the training never saw (``source``). Each
patch is segmented as ``temseg segment`` does (the ensemble's mean probability, specks below
``min_diameter_nm`` removed); its particles not touching the patch border are matched to the
true ones (IoU > 0.5, :func:`temseg.particles.match_particles`). Per source image ``s`` with
at least :data:`MIN_PAIRS` matched particles, its boundary error is the mean log size error
``e_s = mean_i ln(d_pred_i / d_true_i)``, with the variance ``v_s = var_i / n_s`` that its
few particles leave. A boundary misplaced in an image scales all its particles alike, so it
moves D50 and D90 by ``e_s`` too; their own per-image quantile errors over the 3-9
particles a held-out image has are mostly which particle is the median (measured: D90
errors from -23 % to +24 %), so one term serves both. Over the ``m`` images (method of
moments, DerSimonian-Laird without weights):

* ``mu = mean(e_s)``, the mean bias (reported);
* ``tau**2 = max(0, var(e_s, ddof=1) - mean(v_s))``, the spread between images beyond what
  their few particles explain.

Combine. The bias is not subtracted: measured on a handful of images its standard error
``tau / sqrt(m)`` is as large as itself (numbers in docs/segment/validation.md), and a lab
reports the size it measured. Instead the interval is widened by the per-image root-mean-
square error ``rms = sqrt(mu**2 + tau**2)``: ``extra = 1.96 * rms`` in quadrature with each
side's log half-width (:func:`temseg.segment.sizes.widen`). The pooled row of several images
gets the same term (it does not assume their errors average out).

Cache. The measurement costs one tiled pass of every network over the split (measured on one
CPU core, 32 patches of 192 px: 7.7 s for 3 networks, 3.1 s for one; 0.01 s from the cache).
It is kept as JSON under
``$TEMSEG_CACHE_DIR`` (default ``~/.cache/temseg``) ``/calibration/<key>.json``, ``key`` a
hash of the networks' weights, the store's ``content_hash`` and the settings, and written
into each segment output as ``calibration.json``. Without the store: no term, and a note.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from temseg.segment.models import SegmentModel
from temseg.segment.predict import predict_ensemble

CALIBRATED = ("d50", "d90")
SPLIT = "test"
MIN_PAIRS = 3  # matched particles a source image needs to count
Z = 1.959963984540054  # the normal's 97.5 % point
VERSION = 1  # of the method; part of the cache key


@dataclass(frozen=True)
class Calibration:
    """The boundary-error term of a set of networks, per statistic of :data:`CALIBRATED`."""

    store: str
    split: str
    images: int  # source images with >= MIN_PAIRS matched particles
    pairs: int  # matched particles over them
    mu: float  # mean per-image log size error
    tau: float  # its spread between images beyond particle noise
    errors: list[float]  # e_s per image
    seconds: float  # what measuring took

    @property
    def rms(self) -> float:
        """The per-image root-mean-square log size error ``sqrt(mu**2 + tau**2)``."""
        return math.hypot(self.mu, self.tau)

    def extra(self) -> dict[str, float]:
        """The log half-width added to each calibrated statistic's interval."""
        return dict.fromkeys(CALIBRATED, Z * self.rms)


def between_images(errors: np.ndarray, variances: np.ndarray) -> tuple[float, float]:
    """``(mu, tau)`` from per-image log errors and their within-image variances.

    >>> between_images(np.array([-0.1, 0.0, 0.1]), np.array([0.001, 0.002, 0.003]))
    (0.0, 0.0894427190999916)
    """
    e, v = np.asarray(errors, float), np.asarray(variances, float)
    if e.size < 2:
        return math.nan, math.nan
    return float(e.mean()), float(math.sqrt(max(0.0, e.var(ddof=1) - v.mean())))


def matched_sizes(
    models: Sequence[SegmentModel], images, masks, *, pixel_size_nm: float,
    min_diameter_nm: float, tile: int, batch_size: int,
) -> list[np.ndarray]:  # fmt: skip
    """Per patch, the (pred, true) equivalent diameters of its matched interior particles
    (an array of shape (pairs, 2))."""
    from temseg import particles as pt

    out = []
    for image, mask in zip(images, masks, strict=True):
        pred, _ = predict_ensemble(models, image, tile=tile, batch_size=batch_size)
        pred, _ = pt.remove_specks(pred, pixel_size_nm, min_diameter_nm)
        lp, lt = pt.label_particles(pred), pt.label_particles(mask)
        tp = pt.particle_table(pred, pixel_size_nm, labels=lp)
        tt = pt.particle_table(mask, pixel_size_nm, labels=lt)
        dp = dict(zip(tp["label"], tp["diameter_nm"], strict=True))
        inner = tt[~tt["touches_border"].astype(bool)]
        dt = dict(zip(inner["label"], inner["diameter_nm"], strict=True))
        pairs = [(dp[a], dt[b]) for a, b, _ in pt.match_particles(lp, lt) if b in dt]
        out.append(np.array(pairs, float).reshape(-1, 2))
    return out


def measure(models: Sequence[SegmentModel], store: str, *, min_diameter_nm: float, tile: int,
            batch_size: int) -> Calibration:  # fmt: skip
    """Segment the store's test split and estimate ``mu`` and ``tau`` (module docstring)."""
    from temseg.data.store import load_sources, load_split, read_attrs

    start = time.perf_counter()
    images, masks = load_split(store, SPLIT)
    sources = load_sources(store, SPLIT)
    per_patch = matched_sizes(
        models, images, masks, pixel_size_nm=float(read_attrs(store)["pixel_size_nm"]),
        min_diameter_nm=min_diameter_nm, tile=tile, batch_size=batch_size,
    )  # fmt: skip
    errors, variances, n_pairs = [], [], 0
    for s in np.unique(sources):
        pairs = np.concatenate([p for p, src in zip(per_patch, sources, strict=True) if src == s])
        if len(pairs) >= MIN_PAIRS:
            r = np.log(pairs[:, 0] / pairs[:, 1])
            errors.append(float(r.mean()))
            variances.append(float(r.var(ddof=1) / r.size))
            n_pairs += r.size
    mu, tau = between_images(np.array(errors), np.array(variances))
    seconds = round(time.perf_counter() - start, 2)
    errors = [round(e, 6) for e in errors]
    return Calibration(str(store), SPLIT, len(errors), n_pairs, mu, tau, errors, seconds)


def training_store(models: Sequence[SegmentModel]) -> tuple[str | None, str]:
    """The one store every network trained on, if it is here; else ``None`` and why."""
    stores = {m.store for m in models}
    if None in stores:
        return None, "a network carries no training store"
    if len(stores) > 1:
        return None, f"the networks trained on different stores ({len(stores)})"
    store = stores.pop()
    if not Path(store).is_dir():
        return None, f"their training store {store} is not here"
    return store, ""


def cache_key(models: Sequence[SegmentModel], content_hash: str, settings: dict) -> str:
    """A hash of the networks' weights, the store's content and the settings."""
    h = hashlib.sha256(json.dumps([VERSION, content_hash, settings], sort_keys=True).encode())
    for m in models:
        for name, tensor in sorted(m.net.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def cache_path(models: Sequence[SegmentModel], content_hash: str, *,
               min_diameter_nm: float) -> Path:  # fmt: skip
    """Where the calibration of these networks on that store is kept (module docstring)."""
    root = Path(os.environ.get("TEMSEG_CACHE_DIR") or Path.home() / ".cache" / "temseg")
    settings = {"min_diameter_nm": min_diameter_nm, "split": SPLIT}
    return root / "calibration" / f"{cache_key(models, content_hash, settings)}.json"


def for_models(models: Sequence[SegmentModel], *, min_diameter_nm: float, tile: int,
               batch_size: int) -> tuple[Calibration | None, str]:  # fmt: skip
    """The networks' calibration, from the cache or measured (and cached); or ``None`` and
    a note saying why the intervals stay over particles and networks only."""
    from temseg.data.store import StoreError, read_attrs

    store, why = training_store(models)
    if store is None:
        return None, f"no boundary-error term in the D50/D90 intervals: {why}"
    try:
        attrs = read_attrs(store)
    except (StoreError, OSError) as exc:
        return None, f"no boundary-error term in the D50/D90 intervals: {exc}"
    path = cache_path(models, attrs["content_hash"], min_diameter_nm=min_diameter_nm)
    if path.is_file():
        cal = Calibration(**json.loads(path.read_text()))
    else:
        cal = measure(models, store, min_diameter_nm=min_diameter_nm, tile=tile,
                      batch_size=batch_size)  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(cal), indent=1))
        os.replace(tmp, path)
    if cal.images < 2:
        return None, (f"no boundary-error term in the D50/D90 intervals: {cal.images} test "
                      f"image(s) of {store} with >= {MIN_PAIRS} matched particles")  # fmt: skip
    return cal, (
        f"D50/D90 intervals widened by the per-image boundary error measured on {cal.images} "
        f"held-out images of {Path(store).name} ({cal.pairs} particles): bias mu "
        f"{100 * cal.mu:+.1f} % (not corrected), spread tau {100 * cal.tau:.1f} %, rms "
        f"{100 * cal.rms:.1f} % (log scale)"
    )
