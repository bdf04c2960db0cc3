"""Tiling arithmetic for seamless whole-micrograph inference (pure numpy, no torch).

The residual UNet pads every convolution with zeros, so near a tile's edge its output
differs from whole-image inference. An output pixel is unaffected by a tile edge when its
exact reach (:func:`temseg.receptive_field.reach_interval`, interval propagation through the
network) lies inside the tile, or when that edge is the image's own border (where whole-image
inference pads the same zeros). So each tile keeps only its core, a margin of the largest
reach on each side (rounded up to the product P of the pools) away from every inner tile
edge; tiles start at multiples of P so every pooling level sees the same cells as the whole
image; BatchNorm in eval mode is a per-channel affine map and sees no tile at all. The image
is padded with zeros (the standardized mean) to a multiple of P on the bottom and right, as
the network needs, and cropped back. All tiles have one shape, so they go in batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from temseg.receptive_field import pool_product, reach_interval


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


def pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:  # zeros are the standardized image's mean
        image = np.pad(image, ((0, ph), (0, pw)))
    return image
