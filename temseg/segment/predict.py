"""Run a network over a standardized image: whole, or by tiles stitched to equal it.

``tests/test_segment.py`` checks that no pixel of a 1024 x 1024 mask differs from whole-image
inference, and that a margin one pool cell short does differ (:mod:`temseg.segment.tiling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from temseg.receptive_field import pool_product
from temseg.segment.tiling import pad_to, tile_margins, tile_spans

if TYPE_CHECKING:  # torch is imported where it runs, so `temseg --help` stays instant
    import torch

    from temseg.model import ResidualUNet
    from temseg.segment.models import SegmentModel

DEFAULT_TILE = 1024
DEFAULT_BATCH = 4


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
    x = torch.from_numpy(pad_to(np.asarray(image, np.float32), p))[None, None].to(device)
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
    padded = pad_to(np.asarray(image, np.float32), p)
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


def predict_ensemble(
    models: Sequence[SegmentModel], image: np.ndarray, *, tile: int, batch_size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The ensemble's mask (mean probability > 0.5) and each network's own mask."""
    logits = [
        predict_tiled(m.net, image, tile=tile, batch_size=batch_size, logits=True) for m in models
    ]
    members = [(z > 0).astype(np.uint8) for z in logits]
    if len(models) == 1:
        return members[0], members
    mean = np.mean([1.0 / (1.0 + np.exp(-z.astype(np.float64))) for z in logits], axis=0)
    return (mean > 0.5).astype(np.uint8), members
