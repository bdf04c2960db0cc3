"""Segment whole micrographs with a trained network: masks, particle tables, a small report.

The study ends at a recommended network (a sweep registers it as ``temseg-<dataset>`` with
alias ``recommended``); this module applies such a network, or one of the paper authors'
published ones, to whole images of any size and turns the masks into particle sizes
(:mod:`temseg.particles`).

Images go through the readers and the preprocessing of ``temseg ingest`` (negatives to 0,
x-ray removal, per-image standardization over the whole micrograph), one frame of a stack at
a time. The network then runs on tiles whose results are stitched with no seam:

Tiling. The residual UNet pads every convolution with zeros, so near a tile's edge its output
differs from whole-image inference. An output pixel is unaffected by a tile edge when its
exact reach (:func:`temseg.receptive_field.reach_interval`, interval propagation through the
network) lies inside the tile, or when that edge is the image's own border (where whole-image
inference pads the same zeros). So each tile keeps only its core, a margin of the largest
reach on each side (rounded up to the product P of the pools) away from every inner tile
edge; tiles start at multiples of P so every pooling level sees the same cells as the whole
image; BatchNorm in eval mode is a per-channel affine map and sees no tile at all. The image
is padded with zeros (the standardized mean) to a multiple of P on the bottom and right, as
the network needs, and cropped back. All tiles have one shape, so they go in batches.
``tests/test_segment.py`` checks that no pixel of a 1024 x 1024 mask differs from whole-image
inference, and that a margin one pool cell short does differ.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from temseg.receptive_field import format_seq, pool_product, reach_interval

if TYPE_CHECKING:  # torch is imported where it runs, so `temseg --help` stays instant
    import torch

    from temseg.model import ResidualUNet

PIXEL_SIZE_RTOL = 0.10  # refuse images whose pixel size differs more from the model's
MODEL_CARD = "temseg_model.json"  # written beside a registered checkpoint (temseg.tracking)
CHECKPOINT_NAMES = ("best.pt", "model.pt")
DEFAULT_TILE = 1024
DEFAULT_BATCH = 4
DEFAULT_MIN_DIAMETER_NM = 1.0  # specks below this are not particles (Au NPs of 2-20 nm)
OVERLAY_MAX_SIDE = 1024
AUTHORS_PIXEL_SIZE_NM = 0.02152  # the paper's 5 nm Au data (Table 1)


# ----------------------------------------------------------------------------- the model


@dataclass
class SegmentModel:
    """A network ready to segment, with the pixel size of the data it was trained on."""

    net: ResidualUNet
    pixel_size_nm: float
    source: str
    kind: str  # "temseg", "mlflow" or "legacy"
    card: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        c = self.net.config
        return (
            f"{self.source} ({self.kind}): N={c.num_blocks} pools {format_seq(c.pools)} "
            f"dilations {format_seq(c.dilations)}, RF {c.rf_px} px, trained at "
            f"{self.pixel_size_nm:g} nm/px"
        )


def _is_mlflow_uri(spec: str) -> bool:
    return spec.startswith(("runs:/", "models:/"))


def _download_mlflow(spec: str, tracking_uri: str | None, dst: Path) -> tuple[Path, dict]:
    """Download a ``runs:/`` or ``models:/name@alias`` (``models:/name/version``) artifact.

    Returns the local path and the model version's tags (empty for ``runs:/``).
    """
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from temseg.analysis import collect

    uri = collect._check_uri(
        tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or collect.default_tracking_uri()
    )
    tags: dict = {}
    try:
        source = spec
        if spec.startswith("models:/"):
            client = MlflowClient(uri, registry_uri=uri)
            rest = spec[len("models:/") :].strip("/")
            if "@" in rest:
                name, alias = rest.split("@", 1)
                try:
                    mv = client.get_model_version_by_alias(name, alias)
                except MlflowException as exc:
                    names = sorted(m.name for m in client.search_registered_models())
                    raise ValueError(
                        f"--model {spec}: no registered model {name!r} with alias {alias!r} at "
                        f"{uri} ({exc.message.splitlines()[0]}); registered models there: "
                        f"{names or 'none'}"
                    ) from None
            elif "/" in rest:
                name, version = rest.rsplit("/", 1)
                mv = client.get_model_version(name, version)
            else:
                raise ValueError(
                    f"--model {spec}: give models:/<name>@<alias> or models:/<name>/<version>"
                )
            source, tags = mv.source, dict(mv.tags)
        with collect._quiet_downloads():
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(dst), tracking_uri=uri
            )
    except MlflowException as exc:
        raise ValueError(f"--model {spec}: {exc.message.splitlines()[0]} (at {uri})") from None
    return Path(path), tags


def _checkpoint_in(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.rglob("*.pt"))
    if len(found) == 1:
        return found[0]
    raise ValueError(
        f"{folder}: expected one temseg checkpoint ({' or '.join(CHECKPOINT_NAMES)}), found "
        f"{[str(p.relative_to(folder)) for p in found] or 'none'}"
    )


def _carried_pixel_size(config: dict, card: dict) -> float | None:
    """Pixel size a temseg checkpoint carries: its config, its model card, or its store."""
    for source in (config, card):
        if source.get("pixel_size_nm") is not None:
            return float(source["pixel_size_nm"])
    data = config.get("data")
    if data and Path(data).exists():
        from temseg.data.store import StoreError, read_attrs

        try:
            return float(read_attrs(data)["pixel_size_nm"])
        except (StoreError, KeyError, OSError):
            return None
    return None


def load_model(
    spec: str,
    *,
    model_pixel_size_nm: float | None = None,
    tracking_uri: str | None = None,
    device: str | torch.device = "cpu",
) -> SegmentModel:
    """Load a network to segment with, and the pixel size it was trained at.

    Parameters
    ----------
    spec
        A temseg checkpoint (file, or a folder holding ``best.pt``), an MLflow URI
        (``runs:/<run_id>/<path>``, ``models:/<name>@<alias>``, ``models:/<name>/<version>``)
        or one of the paper authors' published ``.h5`` checkpoints.
    model_pixel_size_nm
        The training pixel size, required for the authors' checkpoints (they carry none; the
        paper's networks were trained at 0.02152 nm/px) and for temseg checkpoints whose
        pixel size cannot be found. Given for a checkpoint that carries one, it must agree.
    tracking_uri
        MLflow store for the URIs (default ``$MLFLOW_TRACKING_URI``, else the project's
        ``mlruns.db``).

    Notes
    -----
    Nothing here unpickles code: temseg checkpoints load with ``torch.load(weights_only=
    True)`` (:func:`temseg.model.load_checkpoint`), the authors' files through the
    allow-listed importer of :mod:`temseg.legacy`. A temseg checkpoint's pixel size comes
    from its config, else the ``temseg_model.json`` card beside it (registered models), else
    the patch store it was trained on, if that is still there.
    """
    import torch

    from temseg.model import load_checkpoint

    if model_pixel_size_nm is not None and not model_pixel_size_nm > 0:
        raise ValueError(f"--model-pixel-size-nm must be > 0, got {model_pixel_size_nm}")
    card: dict = {}
    with tempfile.TemporaryDirectory(prefix="temseg-model-") as tmp:
        if _is_mlflow_uri(spec):
            path, tags = _download_mlflow(spec, tracking_uri, Path(tmp))
            kind = "mlflow"
        else:
            path, tags, kind = Path(spec), {}, "temseg"
            if not path.exists():
                raise FileNotFoundError(f"--model {spec}: no such file")
        if path.is_dir():
            if (path / MODEL_CARD).is_file():
                card = json.loads((path / MODEL_CARD).read_text())
            path = _checkpoint_in(path)
        elif (path.parent / MODEL_CARD).is_file():
            card = json.loads((path.parent / MODEL_CARD).read_text())
        if tags.get("temseg.pixel_size_nm") and "pixel_size_nm" not in card:
            card["pixel_size_nm"] = float(tags["temseg.pixel_size_nm"])
        try:
            net, config = load_checkpoint(path)
        except ValueError as exc:
            if kind == "mlflow":
                raise ValueError(f"--model {spec}: {exc}") from None
            from temseg.legacy import LegacyCheckpointError, load_legacy_checkpoint

            try:
                net, config, kind = load_legacy_checkpoint(path), {}, "legacy"
            except LegacyCheckpointError as legacy_exc:
                raise ValueError(
                    f"--model {spec}: neither a temseg checkpoint ({exc}) nor one of the "
                    f"authors' ({legacy_exc})"
                ) from None
    if kind == "legacy":
        if model_pixel_size_nm is None:
            raise ValueError(
                f"--model {spec}: the authors' checkpoints carry no pixel size; give the one "
                f"their training data had with --model-pixel-size-nm (the paper's networks "
                f"were trained at {AUTHORS_PIXEL_SIZE_NM} nm/px)"
            )
        pixel = float(model_pixel_size_nm)
    else:
        carried = _carried_pixel_size(config, card)
        if carried is None and model_pixel_size_nm is None:
            raise ValueError(
                f"--model {spec}: the checkpoint carries no pixel size (no pixel_size_nm in "
                f"its config or a {MODEL_CARD} beside it, and its store "
                f"{config.get('data')!r} is not here); give --model-pixel-size-nm"
            )
        if (
            carried is not None
            and model_pixel_size_nm is not None
            and abs(carried - model_pixel_size_nm) > 0.01 * carried
        ):
            raise ValueError(
                f"--model-pixel-size-nm {model_pixel_size_nm:g} contradicts the "
                f"{carried:g} nm/px that {spec} was trained at; leave the option out"
            )
        pixel = carried if carried is not None else float(model_pixel_size_nm)
    # channels-last is what makes these 4-to-64-channel convolutions fast on CPUs (SPEC.md 5)
    net = net.to(device).to(memory_format=torch.channels_last).eval()
    return SegmentModel(net, pixel, str(spec), kind, card)


# ----------------------------------------------------------------------------- tiling


def tile_margins(pools: Sequence[int], dilations: Sequence[int] | None = None) -> tuple[int, int]:
    """Context (before, after) a tile must hold beyond the pixels it keeps, per axis.

    The largest extent of the exact reach (:func:`temseg.receptive_field.reach_interval`)
    before and after an output pixel, over every position, rounded up to a multiple of the
    pool product P so that tiles stay aligned with every pooling level.

    Examples
    --------
    >>> tile_margins([2, 2]), tile_margins([4, 4]), tile_margins([8, 8])
    ((24, 24), (80, 80), (256, 256))
    """
    p = pool_product(pools)
    before = after = 0
    for x in range(p):
        lo, hi = reach_interval(pools, x, dilations)
        before, after = max(before, x - lo), max(after, hi - x)
    return p * math.ceil(before / p), p * math.ceil(after / p)


def tile_spans(
    size: int, *, tile: int, margins: tuple[int, int], multiple: int
) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis of a padded image: ``(start, stop, keep_start, keep_stop)``.

    Every tile is ``min(tile, size)`` long and starts at a multiple of ``multiple``; the
    kept parts tile ``[0, size)`` exactly, and each kept pixel has at least ``margins``
    context inside its tile on each side, or that side of the tile is the image border
    (where whole-image inference pads the same zeros), so the first and last tiles keep more.

    Examples
    --------
    >>> tile_spans(1024, tile=512, margins=(64, 64), multiple=16)
    [(0, 512, 0, 448), (384, 896, 448, 832), (512, 1024, 832, 1024)]
    """
    if size % multiple or tile % multiple:
        raise ValueError(f"size {size} and tile {tile} must be multiples of {multiple}")
    if size <= tile:
        return [(0, size, 0, size)]
    before, after = margins
    if tile - before - after < multiple:
        raise ValueError(
            f"--tile {tile} px leaves no room: the network's reach needs {before} + {after} px "
            f"of context around each tile's kept part; use --tile >= {before + after + multiple}"
        )
    spans, k0 = [], 0
    while k0 < size:
        start = min(max(k0 - before, 0), size - tile)
        stop = start + tile
        k1 = size if stop == size else stop - after
        spans.append((start, stop, k0, k1))
        k0 = k1
    return spans


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:  # zeros are the standardized image's mean
        image = np.pad(image, ((0, ph), (0, pw)))
    return image


def _score(logits: torch.Tensor, as_logits: bool) -> torch.Tensor:
    """Particle minus background logit, or the mask: argmax over the two classes (a tie goes
    to background, as torch.argmax does)."""
    diff = logits[:, 1] - logits[:, 0]
    return diff if as_logits else (diff > 0).byte()


def predict_whole(net: ResidualUNet, image: np.ndarray, *, logits: bool = False) -> np.ndarray:
    """Mask (or, with ``logits``, the particle-minus-background logit) of a standardized
    image by one pass over the whole image, zero-padded to a multiple of the pool product."""
    import torch

    p = pool_product(net.config.pools)
    h, w = image.shape
    device = next(net.parameters()).device
    x = torch.from_numpy(_pad_to(np.asarray(image, np.float32), p))[None, None].to(device)
    with torch.inference_mode():
        x = x.contiguous(memory_format=torch.channels_last)
        return _score(net(x), logits)[0, :h, :w].cpu().numpy()


def predict_tiled(
    net: ResidualUNet,
    image: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    batch_size: int = DEFAULT_BATCH,
    margins: tuple[int, int] | None = None,
    logits: bool = False,
) -> np.ndarray:
    """Mask of a standardized 2-D image, by tiles stitched to equal :func:`predict_whole`.

    Parameters
    ----------
    net
        The network (eval mode, on its device).
    image
        2-D standardized image, any size.
    tile
        Tile side in px (rounded down to a multiple of the pool product P); each tile keeps
        its central ``tile - margins`` px. Larger tiles waste less context, use more memory.
    batch_size
        Tiles per forward pass.
    margins
        Context before/after kept pixels; default :func:`tile_margins` (the exact reach).
        Only tests pass less.
    logits
        Return the particle-minus-background logit (float32) instead of the uint8 mask.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    cfg = net.config
    p = pool_product(cfg.pools)
    margins = margins if margins is not None else tile_margins(cfg.pools, cfg.dilations)
    tile = max(p, tile - tile % p)
    h, w = image.shape
    padded = _pad_to(np.asarray(image, np.float32), p)
    ys = tile_spans(padded.shape[0], tile=tile, margins=margins, multiple=p)
    xs = tile_spans(padded.shape[1], tile=tile, margins=margins, multiple=p)
    jobs = [(y, x) for y in ys for x in xs]
    device = next(net.parameters()).device
    src = torch.from_numpy(padded)
    out = np.zeros(padded.shape, np.float32 if logits else np.uint8)
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i : i + batch_size]
        batch = torch.stack([src[y0:y1, x0:x1] for (y0, y1, _, _), (x0, x1, _, _) in chunk])
        batch = batch[:, None].to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            masks = _score(net(batch), logits).cpu().numpy()  # (B, tile, tile)
        for m, ((y0, _, ky0, ky1), (x0, _, kx0, kx1)) in zip(masks, chunk, strict=True):
            out[ky0:ky1, kx0:kx1] = m[ky0 - y0 : ky1 - y0, kx0 - x0 : kx1 - x0]
    return out[:h, :w]


# ----------------------------------------------------------------------------- images


@dataclass
class ImageJob:
    """One input file, validated: frames are read again when it is segmented."""

    path: Path
    name: str
    frames: int
    shape: tuple[int, int]
    pixel_size_nm: float
    truth: Path | None = None


def _check_images(
    images: Sequence[str | os.PathLike],
    truth: Sequence[str | os.PathLike] | None,
    *,
    pixel_size_nm: float | None,
    model_pixel_size_nm: float,
    resample: bool,
) -> list[ImageJob]:
    """Read every image (and truth) once and refuse any problem before inference starts."""
    from temseg.data.readers import ReadError, anisotropic_message, read_mask, read_raw

    if not images:
        raise ValueError("no image given")
    if truth and len(truth) != len(images):
        raise ValueError(
            f"give one --truth mask per image ({len(images)} images, {len(truth)} masks)"
        )
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise ValueError(f"--pixel-size-nm must be > 0, got {pixel_size_nm}")
    jobs, names = [], {}
    for i, image in enumerate(images):
        path = Path(image)
        raw = read_raw(path)
        if raw.pixel_size_yx_nm is not None and not raw.isotropic and pixel_size_nm is None:
            raise ReadError(anisotropic_message(raw).replace("--resample", "--pixel-size-nm"))
        px = pixel_size_nm
        if px is None and raw.pixel_size_yx_nm is not None:
            px = float(np.mean(raw.pixel_size_yx_nm))
        if px is None:
            raise ReadError(
                f"{path}: the file carries no pixel size; give --pixel-size-nm (the model was "
                f"trained at {model_pixel_size_nm:g} nm/px)"
            )
        off = abs(px - model_pixel_size_nm) / model_pixel_size_nm
        if off > PIXEL_SIZE_RTOL and not resample:
            raise ValueError(
                f"{path}: pixel size {px:g} nm differs from the model's {model_pixel_size_nm:g} "
                f"nm by {100 * off:.0f}% (more than {100 * PIXEL_SIZE_RTOL:.0f}%): the network "
                "would see particles and lattice fringes at the wrong scale; pass --resample to "
                "resample the image onto the model's pixel size (scikit-image), or correct "
                "--pixel-size-nm"
            )
        name = path.stem
        if name in names:
            raise ValueError(f"{path}: same name {name!r} as {names[name]}; outputs would collide")
        names[name] = path
        job = ImageJob(path, name, raw.data.shape[0], raw.data.shape[1:], px)
        if truth:
            t = Path(truth[i])
            m = read_mask(t)
            if m.shape != raw.data.shape:
                raise ValueError(
                    f"{t}: truth mask of shape {m.shape} does not fit {path} "
                    f"(frames, height, width {raw.data.shape})"
                )
            job.truth = t
        jobs.append(job)
    return jobs


def _resample(image: np.ndarray, factor: float, *, order: int) -> np.ndarray:
    from skimage.transform import rescale

    return rescale(
        image, factor, order=order, anti_aliasing=order > 0 and factor < 1, preserve_range=True
    ).astype(image.dtype, copy=False)


def _back_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    out = resize(mask, shape, order=0, preserve_range=True, anti_aliasing=False)
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------- outputs


def _overlay(image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None, path: Path) -> None:
    """PNG of the image (at most 1024 px a side) with the mask's outline in red (the truth's
    in cyan)."""
    from skimage.io import imsave
    from skimage.measure import block_reduce
    from skimage.segmentation import find_boundaries

    k = max(1, math.ceil(max(image.shape) / OVERLAY_MAX_SIDE))
    small = block_reduce(image.astype(np.float32), (k, k), np.mean)
    lo, hi = np.percentile(small, [1, 99])
    grey = np.clip((small - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    layers = [(truth, (0, 220, 255))] if truth is not None else []
    for m, colour in [*layers, (mask, (255, 40, 40))]:
        edge = block_reduce(find_boundaries(m > 0, mode="inner"), (k, k), np.max)
        rgb[edge[: rgb.shape[0], : rgb.shape[1]]] = colour
    imsave(path, rgb, check_contrast=False)


def _histogram(particles, truth_particles, path: Path) -> None:
    """Histogram of the equivalent-circle diameters of interior particles (and the truth's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temseg.particles import interior_diameters

    inner = interior_diameters(particles)
    truth = None if truth_particles is None else interior_diameters(truth_particles)
    both = np.concatenate([inner.to_numpy(), [] if truth is None else truth.to_numpy()])
    bins = np.histogram_bin_edges(both, bins=30) if both.size else 10
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(inner, bins=bins, color="tab:red", alpha=0.7, label=f"segmented (n={len(inner)})")
    if truth is not None:
        ax.hist(
            truth, bins=bins, histtype="step", color="k", lw=1.5, label=f"truth (n={len(truth)})"
        )
    ax.set_xlabel("equivalent-circle diameter (nm), particles not touching the border")
    ax.set_ylabel("particles")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _index_html(out: Path, summary, model: SegmentModel, overlays: list[str], notes: list[str]):
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in summary.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
        for r in summary.itertuples(index=False)
    )
    figs = "".join(
        f'<figure><img src="{html.escape(f)}" width="512"><figcaption>{html.escape(f)}'
        "</figcaption></figure>"
        for f in overlays
    )
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>temseg segment</title>"
        "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right}"
        "figure{display:inline-block;margin:4px}</style>"
        f"<h1>Segmented micrographs</h1><p>Model: {html.escape(model.describe())}</p>"
        f"<ul>{note}</ul><h2>Summary</h2><table><tr>{head}</tr>{rows}</table>"
        "<p>Files: <a href='particles.csv'>particles.csv</a>, "
        "<a href='summary.csv'>summary.csv</a>, masks <code>&lt;name&gt;_mask.tif</code>.</p>"
        '<h2>Size distribution</h2><img src="sizes.png">'
        f"<h2>Overlays</h2><p>Red: segmented outline; cyan: truth.</p>{figs}"
    )


def _progress(total: int, enabled: bool):
    """A tqdm bar over frames if tqdm is installed, else one stderr line per image."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="frame", desc="segment", file=sys.stderr)


def segment(
    images: Sequence[str | os.PathLike],
    *,
    model: SegmentModel,
    out: str | os.PathLike,
    pixel_size_nm: float | None = None,
    truth: Sequence[str | os.PathLike] | None = None,
    resample: bool = False,
    xray_threshold: float | None = None,
    min_diameter_nm: float = DEFAULT_MIN_DIAMETER_NM,
    tile: int = DEFAULT_TILE,
    batch_size: int = DEFAULT_BATCH,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Segment micrographs and write masks, particle tables and a report into ``out``.

    Parameters
    ----------
    images
        Files ``temseg ingest`` reads (.dm3, .dm4, .ser, .emd, TIFF, PNG, .npy); a 3-D stack
        is segmented frame by frame.
    model
        From :func:`load_model`.
    out
        Folder to create (refused if it exists, unless ``overwrite``). Everything is written
        to a temporary sibling first and renamed at the end: a failure leaves nothing.
    pixel_size_nm
        Pixel size of every image, overriding the files' calibration (required for files
        without one).
    truth
        One binary mask per image (same frames and shape): adds dice and size errors.
    resample
        Resample images whose pixel size differs from the model's onto it (scikit-image,
        bilinear, anti-aliased when shrinking; the mask comes back at the image's own size).
        Without it, an image more than 10 % off is refused before anything runs.
    xray_threshold
        T of the x-ray removal; default by regime from the image's pixel size, as ingest.
    min_diameter_nm
        Components of the network's mask with an equivalent-circle diameter below this are
        removed before the mask is written and measured (single-pixel specks in the
        background would otherwise count as particles); 0 keeps every component. The
        number removed is ``removed_specks`` in summary.csv.
    tile, batch_size
        See :func:`predict_tiled`.

    Returns
    -------
    Path
        ``out``, holding ``<name>_mask.tif`` per image (uint8 0/1, the image's shape, ImageJ
        calibration), ``particles.csv``, ``summary.csv``, ``<name>_overlay.png``,
        ``sizes.png`` and ``index.html``.
    """
    import pandas as pd

    from temseg import particles as pt
    from temseg.data.preprocess import preprocess, standardize
    from temseg.data.readers import read_mask, read_raw, write_calibrated_tiff

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    if tile < 1:
        raise ValueError(f"--tile must be >= 1 px, got {tile}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if not min_diameter_nm >= 0:
        raise ValueError(f"--min-diameter-nm must be >= 0 nm, got {min_diameter_nm}")
    if xray_threshold is not None and not xray_threshold > 0:
        raise ValueError(f"--xray-threshold must be > 0 raw counts, got {xray_threshold}")
    jobs = _check_images(
        images,
        truth,
        pixel_size_nm=pixel_size_nm,
        model_pixel_size_nm=model.pixel_size_nm,
        resample=resample,
    )
    say(f"model: {model.describe()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    notes: list[str] = []
    tables, truth_tables, summaries, overlays = [], [], [], []
    bar = _progress(sum(j.frames for j in jobs), progress)
    try:
        for n, job in enumerate(jobs, 1):
            raw = read_raw(job.path)
            true = read_mask(job.truth) if job.truth else None
            factor = job.pixel_size_nm / model.pixel_size_nm
            scaled = resample and abs(factor - 1) > 1e-6
            if scaled:
                msg = (
                    f"{job.path.name}: resampled from {job.pixel_size_nm:g} to "
                    f"{model.pixel_size_nm:g} nm/px (x{factor:.4g}, scikit-image) for the "
                    "network; mask resampled back to the image's size"
                )
                notes.append(msg)
                say(msg)
            masks = np.zeros(raw.data.shape, np.uint8)
            for f, frame in enumerate(raw.data):
                std, record = preprocess(
                    frame, pixel_size_nm=job.pixel_size_nm, xray_threshold=xray_threshold
                )
                if scaled:
                    # x-rays removed at the native sampling, then resampled and standardized
                    # again (interpolation narrows the spread when shrinking)
                    net_in = standardize(_resample(std, factor, order=1))
                else:
                    net_in = std
                mask = predict_tiled(model.net, net_in, tile=tile, batch_size=batch_size)
                if scaled:
                    mask = _back_to(mask, frame.shape)
                mask, removed = pt.remove_specks(mask, job.pixel_size_nm, min_diameter_nm)
                masks[f] = mask
                labels = pt.label_particles(mask)
                table = pt.particle_table(
                    mask, job.pixel_size_nm, image=job.name, frame=f, labels=labels
                )
                row = {
                    "image": job.name,
                    "frame": f,
                    "pixel_size_nm": job.pixel_size_nm,
                    "resampled": scaled,
                    "xray_replaced": record["xray_replaced"],
                    "removed_specks": removed,
                    **pt.summarize(table),
                }
                if true is not None:
                    tl = pt.label_particles(true[f])
                    tt = pt.particle_table(
                        true[f], job.pixel_size_nm, image=job.name, frame=f, labels=tl
                    )
                    row.update(pt.compare_with_truth(table, labels, tt, tl))
                    truth_tables.append(tt)
                tables.append(table)
                summaries.append(row)
                if f == 0:
                    _overlay(
                        std,
                        mask,
                        None if true is None else true[0],
                        tmp / f"{job.name}_overlay.png",
                    )
                    overlays.append(f"{job.name}_overlay.png")
                if bar is not None:
                    bar.update(1)
            if raw.data.shape[0] == 1:  # a single image (read as one frame) stays 2-D
                masks = masks[0]
            write_calibrated_tiff(tmp / f"{job.name}_mask.tif", masks, job.pixel_size_nm)
            if bar is None and progress:
                say(f"segment: {n}/{len(jobs)} {job.path.name} ({job.frames} frame(s))")
        if bar is not None:
            bar.close()
        particles = pd.concat(tables, ignore_index=True) if tables else None
        particles.to_csv(tmp / "particles.csv", index=False)
        columns = ["image", "frame", "pixel_size_nm", "resampled", "xray_replaced"]
        columns += ["removed_specks"]
        columns += pt.SUMMARY_COLUMNS + (pt.TRUTH_COLUMNS if truth else [])
        summary = pd.DataFrame(summaries, columns=columns)
        summary.to_csv(tmp / "summary.csv", index=False)
        true_particles = pd.concat(truth_tables, ignore_index=True) if truth_tables else None
        _histogram(particles, true_particles, tmp / "sizes.png")
        if any(j.frames > 1 for j in jobs):
            notes.append("stacks: the overlay shows frame 0; every frame is in the tables")
        _index_html(tmp, summary, model, overlays, notes)
        if out.exists():  # overwrite: swap, then drop the old folder
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
