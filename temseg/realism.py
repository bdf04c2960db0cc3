"""A real-data yardstick for synthetic stores: the authors' networks as a probe of realism.

The paper's authors published five 2-block residual UNets (``../shared/reference_models``)
trained on real HRTEM images of 5 nm Au at 0.02152 nm/px; on real test data they score
0.72-0.78 dice, the smallest receptive field (m22, 44 px) the worst (SPEC.md 4b). On
synthetic images that look like real ones they should score like that; on unrealistic ones
they fail in telling ways (reading the carbon as particle, or missing the particles).

:func:`probe` runs every network on every patch of a store (all splits by default: the
networks never saw these images) and reports, per network, pooled over all patches:

- ``dice``: hard dice 2 TP / (2 TP + FP + FN) of the argmax mask (temseg's pooled form);
- ``precision`` TP / (TP + FP) and ``recall`` TP / (TP + FN);
- ``pred_fraction`` and ``true_fraction``: the share of pixels marked particle by the
  network and by the label;
- ``band_dice``: the same dice over the pixels farther than ``BAND_PX`` = 2 px (Chebyshev)
  from every pixel of the other class in the label, i.e. with a +-2 px band around the true
  boundaries left out. A network that finds the particles but draws their outline where the
  real hand-drawn labels put it gains much here (label convention); one that confuses carbon
  and particle does not (domain gap). A patch's own edge is not a boundary.

and beside it the authors' real-data dice of the same architecture (:data:`REAL_REFERENCE`).

Pixel size. The networks saw 0.02152 nm/px only; a store at another pixel size is resampled
onto it, patch by patch, with :func:`skimage.transform.rescale`: images bilinearly (order 1,
anti-aliased when shrinking), labels bilinearly as 0/1 floats and then thresholded at 0.5.
The stored images are already standardized per source image (the paper's preprocessing);
resampling does not re-standardize them.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from temseg.segment import AUTHORS_PIXEL_SIZE_NM

BAND_PX = 2
PIXEL_SIZE_RTOL = 1e-3  # resample when the store's pixel size differs by more than this
SPLIT_CHOICES = ("all", "train", "val", "test")
DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "shared" / "reference_models"

# The real-data yardstick, in one place. Test dice of the authors' own run on the real 5 nm
# Au data at 0.02152 nm/px, by receptive field (Eq. 1, px): test_results.csv of
# github.com/ScottLabUCB/HRTEM-Receptive-Field, quoted in SPEC.md 4b (the paper's Fig. 2d:
# 0.727 at RF 0.95 nm rising to 0.783). The published checkpoints are runs 1 and 5 of those
# architectures, not necessarily the run of this table; the authors' dice is their smoothed
# per-image form, ours pooled hard dice.
REAL_REFERENCE = {44: 0.721, 64: 0.749, 80: 0.758, 104: 0.769, 120: 0.766, 152: 0.749,
                  200: 0.778, 232: 0.770, 392: 0.759}  # fmt: skip
REAL_REFERENCE_SOURCE = (
    "authors' test_results.csv (github.com/ScottLabUCB/HRTEM-Receptive-Field), real 5 nm Au "
    "HRTEM at 0.02152 nm/px, per-image smoothed dice; SPEC.md 4b"
)
REAL_CONTRAST_BAND = (0.24, 0.58)  # the lab's real 5 nm Au, 80-884 e/A^2 (data/README.md)

COLUMNS = (
    "store",
    "network",
    "pools",
    "rf_px",
    "dice",
    "band_dice",
    "precision",
    "recall",
    "pred_fraction",
    "true_fraction",
    "real_dice",
)


@dataclass(frozen=True)
class StoreInput:
    """A store as the probe sees it: patches at the networks' pixel size."""

    path: Path
    pixel_size_nm: float
    contrast: float | None
    n_patches: int
    resample_factor: float  # store pixel size / 0.02152; 1.0 when not resampled


@dataclass(frozen=True)
class NetworkScore:
    """One network on one store (one row of the table)."""

    store: str
    network: str
    pools: str
    rf_px: int
    dice: float
    band_dice: float
    precision: float
    recall: float
    pred_fraction: float
    true_fraction: float
    real_dice: float | None


@dataclass
class RealismResult:
    """Every network on every store, with each store's mean row."""

    stores: list[StoreInput]
    scores: list[NetworkScore]

    def rows(self) -> list[dict]:
        """One dict per store and network (:data:`COLUMNS`), each store's mean row after its
        networks (``network == "mean"``)."""
        rows = []
        for s in self.stores:
            mine = [asdict(r) for r in self.scores if r.store == str(s.path)]
            rows.extend(mine)
            if mine:
                rows.append(self.mean(s.path))
        return rows

    def frame(self):
        """:meth:`rows` as a pandas DataFrame (``rf_px`` an integer column, empty for means)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows(), columns=list(COLUMNS))
        frame["rf_px"] = frame["rf_px"].astype("Int64")
        return frame

    def mean(self, store: str | os.PathLike) -> dict:
        """The store's mean over networks of every figure (and of the real references)."""
        mine = [r for r in self.scores if r.store == str(store)]
        row: dict = {"store": str(store), "network": "mean", "pools": "", "rf_px": None}
        for col in COLUMNS[4:]:
            values = [getattr(r, col) for r in mine]
            values = [v for v in values if v is not None and np.isfinite(v)]
            row[col] = float(np.mean(values)) if values else None
        return row


# ----------------------------------------------------------------------------- inputs


def find_models(models_dir: str | os.PathLike) -> list[Path]:
    """The ``.h5`` checkpoints of a folder, sorted by name; errors name the folder."""
    folder = Path(models_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"--models {folder}: no such folder")
    found = sorted(folder.glob("*.h5"))
    if not found:
        raise ValueError(f"--models {folder}: no .h5 checkpoints in this folder")
    return found


def network_name(path: Path) -> str:
    """``m22`` for ``20210922_UNet_b2_m22_run5_model.h5``; else the file's stem."""
    m = re.search(r"_(m\d+)_", path.name)
    return m.group(1) if m else path.stem


def check_stores(stores: Sequence[str | os.PathLike]) -> list[dict]:
    """Every store's attributes; StoreError (a ValueError) names the first bad one."""
    from temseg.data.store import read_attrs

    if not stores:
        raise ValueError("no store given")
    return [read_attrs(s) for s in stores]


def resample_patches(
    images: np.ndarray, masks: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Patches (n, P, P) scaled by ``factor``: images bilinear, masks bilinear then >= 0.5.

    >>> im, m = resample_patches(np.zeros((1, 4, 4), np.float32), np.ones((1, 4, 4), np.uint8), 2)
    >>> im.shape, int(m.sum())
    ((1, 8, 8), 64)
    """
    from temseg.segment import _resample

    imgs = np.stack([_resample(im, factor, order=1) for im in images])
    mks = np.stack([_resample(m.astype(np.float32), factor, order=1) >= 0.5 for m in masks])
    return imgs.astype(np.float32), mks.astype(np.uint8)


def load_store(
    path: str | os.PathLike, *, split: str = "all"
) -> tuple[StoreInput, np.ndarray, np.ndarray]:
    """A store's patches (the chosen split, or all three) at 0.02152 nm/px."""
    from temseg.data.store import SPLITS, load_split, read_attrs

    if split not in SPLIT_CHOICES:
        raise ValueError(f"--split {split!r}: choose one of {', '.join(SPLIT_CHOICES)}")
    attrs = read_attrs(path)
    parts = [load_split(path, s) for s in (SPLITS if split == "all" else (split,))]
    images = np.concatenate([p[0] for p in parts])
    masks = np.concatenate([p[1] for p in parts])
    if not len(images):
        raise ValueError(f"{path}: no patches in split {split!r}")
    px = float(attrs["pixel_size_nm"])
    factor = px / AUTHORS_PIXEL_SIZE_NM
    if abs(factor - 1) > PIXEL_SIZE_RTOL:
        images, masks = resample_patches(images, masks, factor)
    else:
        factor = 1.0
    info = StoreInput(Path(path).absolute(), px, attrs.get("contrast"), len(images), factor)
    return info, images, masks


# ----------------------------------------------------------------------------- scores


def boundary_band(masks: np.ndarray, width: int = BAND_PX) -> np.ndarray:
    """Pixels within ``width`` px (Chebyshev) of a pixel of the other class, per patch.

    The patch's own edge is not a boundary (the outside counts as neither class).

    >>> m = np.zeros((1, 9, 9), np.uint8); m[0, :, 5:] = 1
    >>> boundary_band(m, 1)[0, 0].astype(int).tolist()
    [0, 0, 0, 0, 1, 1, 0, 0, 0]
    """
    from scipy import ndimage

    box = np.zeros((1, 2 * width + 1, 2 * width + 1), bool)
    box[0] = True  # per patch: no reach across the stack axis
    m = np.asarray(masks).astype(bool)
    near_particle = ndimage.binary_dilation(m, box, border_value=0)
    near_background = ~ndimage.binary_erosion(m, box, border_value=1)
    return near_particle & near_background


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def mask_scores(pred: np.ndarray, truth: np.ndarray, band: np.ndarray) -> dict[str, float]:
    """Pooled figures of a predicted mask against the label (any shape, 0/1).

    >>> t = np.array([1, 1, 0, 0]); p = np.array([1, 1, 1, 1]); b = np.zeros(4, bool)
    >>> s = mask_scores(p, t, b); round(s["dice"], 4), s["precision"], s["recall"]
    (0.6667, 0.5, 1.0)
    """
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    keep = ~np.asarray(band, bool)
    tp, n_pred, n_true = int((p & t).sum()), int(p.sum()), int(t.sum())
    tp_k, pred_k, true_k = int((p & t & keep).sum()), int((p & keep).sum()), int((t & keep).sum())
    return {
        "dice": _ratio(2 * tp, n_pred + n_true) if n_pred + n_true else 1.0,
        "band_dice": _ratio(2 * tp_k, pred_k + true_k) if pred_k + true_k else 1.0,
        "precision": _ratio(tp, n_pred),
        "recall": _ratio(tp, n_true),
        "pred_fraction": n_pred / p.size,
        "true_fraction": n_true / t.size,
    }


def predict_patches(net, images: np.ndarray) -> np.ndarray:
    """Argmax masks (n, H, W) of standardized patches, one whole-patch pass each."""
    from temseg.segment import predict_whole

    return np.stack([predict_whole(net, im) for im in images])


def probe(
    stores: Sequence[str | os.PathLike],
    *,
    models: str | os.PathLike = DEFAULT_MODELS,
    split: str = "all",
) -> RealismResult:
    """The authors' networks on every patch of each store (see the module docstring).

    Parameters
    ----------
    stores
        temseg patch stores; one at another pixel size than 0.02152 nm/px is resampled.
    models
        Folder of the authors' ``.h5`` checkpoints (read without executing code).
    split
        ``all`` (default), ``train``, ``val`` or ``test``.

    Raises
    ------
    ValueError, FileNotFoundError
        A store is missing or not a temseg store, or the folder holds no ``.h5``: raised
        before any network is loaded.
    """
    from temseg.legacy import load_legacy_checkpoint
    from temseg.receptive_field import format_seq

    if split not in SPLIT_CHOICES:
        raise ValueError(f"--split {split!r}: choose one of {', '.join(SPLIT_CHOICES)}")
    check_stores(stores)
    files = find_models(models)
    nets = [(network_name(f), load_legacy_checkpoint(f)) for f in files]
    inputs, scores = [], []
    for path in stores:
        info, images, masks = load_store(path, split=split)
        inputs.append(info)
        band = boundary_band(masks)
        for name, net in nets:
            pred = predict_patches(net, images)
            cfg = net.config
            scores.append(
                NetworkScore(
                    store=str(info.path),
                    network=name,
                    pools=format_seq(cfg.pools),
                    rf_px=cfg.rf_px,
                    real_dice=REAL_REFERENCE.get(cfg.rf_px),
                    **mask_scores(pred, masks, band),
                )
            )
    return RealismResult(inputs, scores)


# ----------------------------------------------------------------------------- output


def format_table(result: RealismResult) -> str:
    """The terminal table: one block per store, its networks and their mean."""
    lo, hi = REAL_CONTRAST_BAND
    head = ("network", "RF px", "dice", "band", "prec", "recall", "pred fr", "true fr", "real")
    lines = []
    for s in result.stores:
        c = "n/a" if s.contrast is None else f"{s.contrast:.3f}"
        inside = "" if s.contrast is None else (" (inside" if lo <= s.contrast <= hi else " (outside")
        band = "" if not inside else f"{inside} the real band {lo}-{hi})"
        resampled = "" if s.resample_factor == 1 else f", resampled x{s.resample_factor:.4f}"
        lines.append(
            f"{s.path}: {s.n_patches} patches at {s.pixel_size_nm:g} nm/px{resampled}, "
            f"contrast score {c}{band}"
        )
        lines.append("  ".join(f"{h:>8}" for h in head))
        for r in result.rows():
            if r["store"] != str(s.path):
                continue
            cells = [r["network"], "" if r["rf_px"] is None else str(r["rf_px"])]
            cells += [_cell(r[c]) for c in COLUMNS[4:]]
            lines.append("  ".join(f"{v:>8}" for v in cells))
        lines.append("")
    lines.append(f"real: {REAL_REFERENCE_SOURCE}")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def check_out(out: str | os.PathLike) -> Path:
    """``--out`` must end in .csv or .json and its folder exist (checked before any work)."""
    path = Path(out)
    if path.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--out {path}: name it .csv or .json (the format follows the suffix)")
    if not path.parent.absolute().is_dir():
        raise FileNotFoundError(f"--out {path}: folder {path.parent} does not exist")
    return path


def write_result(result: RealismResult, out: str | os.PathLike) -> Path:
    """Write the table as CSV (one row per store and network, plus mean rows) or as JSON
    (stores, rows and the reference with its source); written whole, then renamed."""
    from temseg.data.store import plain

    path = check_out(out)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if path.suffix.lower() == ".csv":
            result.frame().to_csv(tmp, index=False, float_format="%.6g")
        else:
            doc = {
                "reference": {
                    "pixel_size_nm": AUTHORS_PIXEL_SIZE_NM,
                    "dice_by_rf_px": REAL_REFERENCE,
                    "source": REAL_REFERENCE_SOURCE,
                    "contrast_band": list(REAL_CONTRAST_BAND),
                },
                "band_px": BAND_PX,
                "stores": [asdict(s) for s in result.stores],
                "rows": result.rows(),
            }
            tmp.write_text(json.dumps(plain(doc), indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
